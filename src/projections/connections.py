"""The two long-lived connections a process's followers share: one holds their election locks, one listens.

Each follower used to open two connections of its own (its election lock, its ``LISTEN``), and the timers and
deliveries threads one more each: a ``rulestream serve`` held 18 besides its pool, and a few of them (or test
suites) ran PostgreSQL out of its 100. Per process and database there is now:

- ``Elections``: one connection holding every election lock of the process's followers, as session-level
  advisory locks. PostgreSQL lets a session take its own lock again, so two runners of one name in one process
  are told apart here, not by the server. If the connection drops, every lock is gone at once: each lease
  says so (``Lease.check`` raises ``ElectionLost``) and its runner stands for election again on a new
  connection.
- ``Notifier``: one connection ``LISTEN``ing on every channel a subscriber asked for, which wakes the subscribers
  of a channel (``Subscription.wait``). A ``NOTIFY`` may still be lost (between a drop and the reconnect, or
  before a new channel is listened to): subscribers keep polling, and every subscriber of a channel is woken
  when it starts to be listened to.

Both are opened by the first user and closed with the last (``shared``), outside the pool: they are held for
a long time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg

log = logging.getLogger("rulestream.followers")

LISTEN_TICK = 0.25
"""How often the listener looks for channels to add and whether it should stop (seconds)."""
CHECK_EVERY = 1.0
"""How often, at most, the election connection is checked to be alive (seconds)."""


class ElectionLost(RuntimeError):
    """The connection that held the election locks dropped: every follower of the process stands again."""


def connect(params: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(**params, autocommit=True, connect_timeout=10)


class Lease:
    """One election lock held on the shared connection."""

    def __init__(self, elections: Elections, key: tuple[int, int], generation: int) -> None:
        self.elections, self.key, self.generation = elections, key, generation

    def check(self) -> None:
        """Raise ``ElectionLost`` if the lock is no longer held (its connection dropped)."""
        if not self.elections.alive(self.generation):
            raise ElectionLost(f"election lock {self.key} lost with its connection")

    def release(self) -> None:
        self.elections.release(self)


class Elections:
    """The election locks of one process on one database (see the module)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._generation = 0
        """Counts connections: a lease of an older one was released by the server."""
        self._held: dict[tuple[int, int], Lease] = {}
        self._checked = 0.0

    def try_acquire(self, key: tuple[int, int]) -> Lease | None:
        """The lease of ``key`` if this process can take it now (no other session or runner holds it)."""
        with self._lock:
            if key in self._held:
                return None
            try:
                conn = self._connection()
                row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
            except psycopg.OperationalError:
                self._drop()
                raise
            if not (row and row[0]):
                return None
            lease = Lease(self, key, self._generation)
            self._held[key] = lease
            return lease

    def release(self, lease: Lease) -> None:
        with self._lock:
            if self._held.get(lease.key) is not lease:
                return
            del self._held[lease.key]
            if self._conn is not None and lease.generation == self._generation:
                try:
                    self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", lease.key)
                except psycopg.Error:
                    self._drop()

    def alive(self, generation: int) -> bool:
        """Whether the connection of ``generation`` still holds its locks (checked at most every second)."""
        with self._lock:
            if generation != self._generation or self._conn is None:
                return False
            if time.monotonic() - self._checked >= CHECK_EVERY:
                try:
                    self._conn.execute("SELECT 1")
                except psycopg.Error:
                    self._drop()
                    return False
                self._checked = time.monotonic()
            return True

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.params)
            self._generation += 1
            self._checked = time.monotonic()
        return self._conn

    def _drop(self) -> None:
        # Whatever the server still thinks, closing the session releases every lock: leases must know.
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
            if self._held:  # a close with no lease held (the last follower left) is no news
                log.warning("the election connection closed: %d follower(s) stand again", len(self._held))
        self._conn = None
        self._generation += 1
        self._held.clear()


class Subscription:
    """Wake-ups of one subscriber to one channel."""

    def __init__(self, notifier: Notifier, channel: str) -> None:
        self.notifier, self.channel = notifier, channel
        self.event = threading.Event()

    def wait(self, timeout: float) -> bool:
        """Wait for a notification of the channel, at most ``timeout`` seconds; answer whether one came."""
        woken = self.event.wait(timeout)
        self.event.clear()
        return woken

    def clear(self) -> None:
        """Forget a notification that came before now (what it asked for is being done)."""
        self.event.clear()

    def close(self) -> None:
        self.notifier.unsubscribe(self)


class Notifier:
    """One ``LISTEN`` connection that wakes every subscriber of the process (see the module)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def subscribe(self, channel: str) -> Subscription:
        subscription = Subscription(self, channel)
        with self._lock:
            self._subscribers.setdefault(channel, set()).add(subscription)
            if self._thread is None or not self._thread.is_alive():
                self._stopping = threading.Event()
                self._thread = threading.Thread(target=self._listen_forever, name="notifier", daemon=True)
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._subscribers.get(subscription.channel, set())
            subscribers.discard(subscription)
            if not subscribers:
                self._subscribers.pop(subscription.channel, None)

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _wake(self, channel: str | None) -> None:
        with self._lock:
            targets = [s for c, subs in self._subscribers.items() if channel in (None, c) for s in subs]
        for subscription in targets:
            subscription.event.set()

    def _listen_forever(self) -> None:
        stopping = self._stopping
        while not stopping.is_set():
            try:
                self._listen(stopping)
            except psycopg.Error:
                log.warning("the notifier's connection failed; reconnecting in 1 s", exc_info=True)
                self._wake(None)  # whatever was sent meanwhile is lost: everyone polls
                stopping.wait(1.0)

    def _listen(self, stopping: threading.Event) -> None:
        with connect(self.params) as conn:
            listening: set[str] = set()
            while not stopping.is_set():
                with self._lock:
                    wanted = set(self._subscribers)
                for channel in wanted - listening:
                    conn.execute(f'LISTEN "{channel}"')  # channel names come from code, not from input
                    listening.add(channel)
                    self._wake(channel)  # what it missed before listening: read now
                for channel in listening - wanted:
                    conn.execute(f'UNLISTEN "{channel}"')
                    listening.discard(channel)
                for notification in conn.notifies(timeout=LISTEN_TICK):
                    self._wake(notification.channel)


_registry_lock = threading.Lock()
_registry: dict[tuple[Any, ...], tuple[Elections, Notifier, list[int]]] = {}


def params_of(datastore: Any) -> dict[str, Any]:
    """The connection parameters of a datastore's pool (its role included), for connections of our own."""
    return {k: v for k, v in datastore.pool.kwargs.items() if k != "row_factory"}


@contextmanager
def shared(datastore: Any) -> Iterator[tuple[Elections, Notifier]]:
    """The process's ``Elections`` and ``Notifier`` for the datastore's database, while the block runs."""
    params = params_of(datastore)
    key = tuple(sorted((k, str(v)) for k, v in params.items()))
    with _registry_lock:
        if key not in _registry:
            _registry[key] = (Elections(params), Notifier(params), [0])
        elections, notifier, users = _registry[key]
        users[0] += 1
    try:
        yield elections, notifier
    finally:
        with _registry_lock:
            users[0] -= 1
            last = users[0] == 0
            if last:
                del _registry[key]
        if last:
            elections.close()
            notifier.close()
