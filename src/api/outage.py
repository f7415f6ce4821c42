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
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.wire.json import dumps

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
        started = asyncio.Event()
        answered_by_guard = False

        async def tracked_send(message: Message) -> None:
            if answered_by_guard:
                return  # the client already has its 503
            started.set()
            await send(message)

        inner = asyncio.ensure_future(self.app(scope, receive, tracked_send))
        while True:
            done, _ = await asyncio.wait({inner}, timeout=self.deadline)
            if done or started.is_set():
                await inner
                return
            if await run_in_threadpool(database_reachable, self.conninfo):
                continue  # slow, not down: keep waiting
            self.down, self._probed_at = True, time.monotonic()
            answered_by_guard = True
            await self._unavailable(send)
            inner.add_done_callback(_consume)
            return

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


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned request's error is not "never retrieved"
