"""The database went away: answer 503 quickly instead of holding clients for as long as the outage lasts.

Without this, a request during an outage waits for the pool (``POSTGRES_CONNECT_TIMEOUT``) once per retry of
the library (ten of them): minutes, for a client that would rather be told to come back. ``OutageGuard`` gives
each request ``DEADLINE_SECONDS`` to start answering; past that it probes the database on a connection of its
own, and if it is unreachable answers 503 (``Retry-After``) and remembers the outage, so that the following
requests get their 503 at once until a probe (at most one a second) finds the database back. The pool and the
library reconnect by themselves; nothing here restarts anything.

A request answered 503 may still complete once the database returns (its thread cannot be stopped): the
outcome of a write that got 503 is unknown, which is what ``Idempotency-Key`` makes safe to retry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping

import psycopg
from psycopg.conninfo import make_conninfo
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.wire.json import dumps

log = logging.getLogger("rulestream.outage")

DEADLINE_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 2
PASS_THROUGH = ("/health", "/metrics")


def database_reachable(conninfo: Mapping[str, str], timeout: int = PROBE_TIMEOUT_SECONDS) -> bool:
    """Whether a new connection to the database succeeds within ``timeout`` seconds (bypassing the pool)."""
    try:
        with psycopg.connect(make_conninfo("", **conninfo), connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


class OutageGuard:
    def __init__(self, app: ASGIApp, conninfo: Mapping[str, str], deadline: float = DEADLINE_SECONDS) -> None:
        self.app = app
        self.conninfo = dict(conninfo)
        self.deadline = deadline
        self.down = False
        self._probed_at = 0.0
        self._probe_lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PASS_THROUGH:
            await self.app(scope, receive, send)
            return
        if self.down and not await self._back():
            await self._unavailable(send)
            return
        watch = _Watch(self, send)
        try:
            await self.app(scope, receive, watch.send)
        except Exception:
            if not watch.answered:
                raise
            log.warning("a request answered 503 during an outage failed afterwards", exc_info=True)
        finally:
            watch.finished = True
            watch.cancel()

    async def _back(self) -> bool:
        """Probe again (at most once a second, one probe at a time) whether the outage is over."""
        if time.monotonic() - self._probed_at < 1.0 or not self._probe_lock.acquire(blocking=False):
            return False
        try:
            self._probed_at = time.monotonic()
            if await run_in_threadpool(database_reachable, self.conninfo):
                self.down = False
            return not self.down
        finally:
            self._probe_lock.release()

    @staticmethod
    async def _unavailable(send: Send) -> None:
        problem = {"title": "Unavailable", "details": "The database is unavailable", "source": {}}
        body = dumps({"message": "The database is unavailable; try again shortly", "errors": [problem]})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_PROBES: set[asyncio.Task[None]] = set()


class _Watch:
    """One request's deadline: a timer, not a task of its own around the request (a task and an ``asyncio.wait``
    per request were 4 % of the API's CPU under load). When it fires before the response started, a probe of the
    database runs; unreachable, the client gets its 503 at once and whatever the request sends later is dropped
    (it runs on until its thread returns); reachable, the request gets another deadline."""

    def __init__(self, guard: OutageGuard, send: Send) -> None:
        self.guard = guard
        self.raw_send = send
        self.started = self.answered = self.finished = False
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(guard.deadline, self._overdue)

    async def send(self, message: Message) -> None:
        if self.answered:
            return  # the client already has its 503
        self.started = True
        await self.raw_send(message)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _overdue(self) -> None:
        self.timer = None
        if not (self.started or self.finished):
            probe = self.loop.create_task(self._probe())
            _PROBES.add(probe)  # held until done: the loop keeps only weak references to tasks
            probe.add_done_callback(_PROBES.discard)

    async def _probe(self) -> None:
        reachable = await run_in_threadpool(database_reachable, self.guard.conninfo)
        if self.started or self.finished:
            return
        if reachable:  # slow, not down: keep waiting
            self.timer = self.loop.call_later(self.guard.deadline, self._overdue)
            return
        self.guard.down, self.guard._probed_at = True, time.monotonic()
        self.answered = True
        await self.guard._unavailable(self.raw_send)
