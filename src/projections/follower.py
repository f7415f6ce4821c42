"""Following the log: one named follower applies new events in order, in batches, exactly once.

A follower (a read model, the rule policy, ...) implements ``Follower``; ``FollowerRunner`` feeds it:

- **election**: a session-level PostgreSQL advisory lock keyed by the follower's name; a second runner of the same
  name waits for it and takes over when the first one's connection dies;
- **order**: events are read by notification id after the checkpoint; the event store's writers serialise on a
  table lock, so ids commit in order and nothing committed late is skipped;
- **exactly once**: the follower's writes and its tracking row are one transaction;
- **wake-up**: ``LISTEN`` on the events channel, with a polling timeout so a lost ``NOTIFY`` never stalls it.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.domain import DomainEventProtocol
from psycopg.rows import DictRow

from domain.application import Rulestream

log = logging.getLogger("rulestream.followers")

POLL_SECONDS = 1.0
PROGRESS_CHANNEL = "rulestream_progress"
"""Every follower ``NOTIFY``s this channel with ``name:checkpoint`` when a batch commits."""


@dataclass(frozen=True)
class Recorded:
    """An event as read from the log: its global position and the decoded domain event."""

    position: int
    event: DomainEventProtocol[UUID]
    topic: str


class Follower(ABC):
    """Something that builds state from the log. Subclasses say what tables they need and how a batch applies."""

    name: str
    batch_size: int = 500

    def setup(self, cursor: psycopg.Cursor[DictRow]) -> None:  # noqa: B027 - optional hook
        """Create the follower's tables (idempotent)."""

    def start(self, cursor: psycopg.Cursor[DictRow]) -> None:  # noqa: B027 - optional hook
        """Load whatever the follower keeps in memory, after election and before the first batch."""

    @abstractmethod
    def apply(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        """Apply a batch inside the transaction that also moves the checkpoint."""

    def rolled_back(self) -> None:  # noqa: B027 - optional hook
        """The batch's transaction failed: forget in-memory state that the batch changed."""

    def committed(self) -> None:  # noqa: B027 - optional hook
        """The batch's transaction committed."""


class FollowerRunner:
    """Runs one follower until stopped; use ``thread()`` to run it in the background."""

    def __init__(self, app: Rulestream, follower: Follower, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.app = app
        self.follower = follower
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()
        self.elected = threading.Event()
        self.checkpoint = 0
        self.error: BaseException | None = None
        recorder: Any = app.recorder
        self.datastore = recorder.datastore
        self.events_table = recorder.events_table_name
        self.tracking_table = recorder.tracking_table_name
        self.channel = recorder.channel_name

    # -- running --------------------------------------------------------------------------------------

    def thread(self) -> threading.Thread:
        worker = threading.Thread(target=self.run_forever, name=f"follower-{self.follower.name}", daemon=True)
        worker.start()
        return worker

    def stop(self) -> None:
        self.stopping.set()

    def run_forever(self) -> None:
        """Run, and after a failure (e.g. the database restarted) start over from the committed checkpoint."""
        while not self.stopping.is_set():
            try:
                self._run()
            except Exception as error:  # noqa: BLE001 - a follower must survive outages; it logs and retries
                self.error = error
                log.exception("follower %s failed; restarting in 1 s", self.follower.name)
                self.stopping.wait(1.0)

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (not from the pool): it holds the election lock or listens, for a long time."""
        params = {k: v for k, v in self.datastore.pool.kwargs.items() if k != "row_factory"}
        return psycopg.connect(**params, autocommit=True, connect_timeout=10)

    def _run(self) -> None:
        with self._connect() as lock_conn, self._connect() as listen_conn:
            self._elect(lock_conn)
            if self.stopping.is_set():
                return
            listen_conn.execute(f'LISTEN "{self.channel}"')
            with self.datastore.get_connection() as conn:
                with conn.transaction(), conn.cursor() as cursor:
                    self._setup(cursor)
                    self.follower.setup(cursor)
                    self.checkpoint = self._read_checkpoint(cursor)
                    self.follower.start(cursor)
            self.elected.set()
            self.error = None
            while not self.stopping.is_set():
                if not self.step():
                    for _ in listen_conn.notifies(timeout=self.poll_seconds, stop_after=1):
                        pass

    def _elect(self, lock_conn: psycopg.Connection[Any]) -> None:
        key = zlib.crc32(f"rulestream-follower:{self.follower.name}".encode())
        while not self.stopping.is_set():
            row = lock_conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (7_001, key)).fetchone()
            if row and row[0]:
                return
            self.stopping.wait(self.poll_seconds)

    def step(self) -> int:
        """Apply the next batch, if any; answer how many events it held."""
        notifications = self.app.recorder.select_notifications(
            start=self.checkpoint, limit=self.follower.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        batch = [
            Recorded(n.id, self.app.mapper.to_domain_event(n), n.topic)
            for n in notifications
        ]
        last = notifications[-1].id
        try:
            with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
                self.follower.apply(cursor, batch)
                self._write_checkpoint(cursor, last)
                cursor.execute("SELECT pg_notify(%s, %s)", (PROGRESS_CHANNEL, f"{self.follower.name}:{last}"))
        except BaseException:
            self.follower.rolled_back()
            raise
        self.checkpoint = last
        self.follower.committed()
        return len(batch)

    def run_until_caught_up(self) -> None:
        """Apply batches until the log has nothing new (for tests, rebuilds and the CLI)."""
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            self._setup(cursor)
            self.follower.setup(cursor)
            self.checkpoint = self._read_checkpoint(cursor)
            self.follower.start(cursor)
        while self.step():
            pass

    # -- the checkpoint -------------------------------------------------------------------------------

    def _setup(self, cursor: psycopg.Cursor[DictRow]) -> None:
        cursor.execute(
            f'CREATE TABLE IF NOT EXISTS "{self.tracking_table}" '
            "(application_name text PRIMARY KEY, notification_id bigint)"
        )

    def _read_checkpoint(self, cursor: psycopg.Cursor[DictRow]) -> int:
        cursor.execute(
            f'SELECT notification_id FROM "{self.tracking_table}" WHERE application_name = %s',
            (self.follower.name,),
        )
        row = cursor.fetchone()
        return int(row["notification_id"]) if row and row["notification_id"] is not None else 0

    def _write_checkpoint(self, cursor: psycopg.Cursor[DictRow], position: int) -> None:
        cursor.execute(
            f'INSERT INTO "{self.tracking_table}" (application_name, notification_id) VALUES (%s, %s) '
            "ON CONFLICT (application_name) DO UPDATE SET notification_id = EXCLUDED.notification_id "
            f'WHERE "{self.tracking_table}".notification_id < EXCLUDED.notification_id RETURNING notification_id',
            (self.follower.name, position),
        )
        if cursor.fetchone() is None:
            raise RuntimeError(f"follower {self.follower.name}: checkpoint {position} is not ahead (two runners?)")


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until true (tests)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)
