"""The timer: records ``DelayCameDue`` when a delayed rule evaluation's due time has passed.

Two halves, one module:

- ``Timers``, a follower of the log: each ``DelayScheduled`` becomes a row of ``rulestream_timers`` (due time,
  delay id), written with its checkpoint in one transaction, so a restart loses no timer; a ``DelayCameDue`` read
  later deletes the row if still there (a follower rebuilt from the start does not fire twice). It ``NOTIFY``s
  ``rulestream_timers`` when it adds one, which wakes the alarm.
- the alarm, a thread the elected follower starts: it reads the earliest due time (an index lookup), sleeps until
  then on ``LISTEN rulestream_timers`` (so a new, earlier timer wakes it at once), and fires what is due: in one
  transaction, ``DelayCameDue`` events appended to the log and their rows deleted. Exactly once: the rows are
  locked (``FOR UPDATE SKIP LOCKED``) and deleted with the append, and the event's id (the delay's stream at
  version 2) cannot be recorded twice anyway.

The alarm re-reads at least every ``MAX_SLEEP`` seconds: a lost ``NOTIFY`` (a dropped connection) costs at most that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg.rows import DictRow

from domain.application import Rulestream
from domain.clock import Clock, SystemClock
from domain.delays import Delay
from projections.connections import Subscription, shared
from projections.follower import GATHER_SECONDS, Follower, Recorded

log = logging.getLogger("rulestream.timers")

CHANNEL = "rulestream_timers"
MAX_SLEEP = 10.0
FIRE_BATCH = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS rulestream_timers (delay_id uuid PRIMARY KEY, due_at timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS rulestream_timers_due ON rulestream_timers (due_at, delay_id);
"""


class Timers(Follower):
    """The ``timers`` follower (in ``registry.POLICY``), and the alarm that fires them."""

    name = "timers"
    batch_size = 1000
    gather_seconds = GATHER_SECONDS
    reads = (Delay.DelayScheduled, Delay.DelayCameDue)

    def __init__(self, app: Rulestream, clock: Clock | None = None, *, alarm: bool = True) -> None:
        self.app = app
        self.clock: Clock = clock or SystemClock()
        self.alarm = alarm
        self._alarm: threading.Thread | None = None
        self.stopping = threading.Event()
        self._wake: Subscription | None = None
        """What the alarm or sender sleeps on between tries (``stop`` wakes it)."""
        recorder: Any = app.recorder
        self.datastore = recorder.datastore
        self.events_table: str = recorder.events_table_name

    # -- Follower: the table of timers ----------------------------------------------------------------

    def setup(self, cursor: psycopg.Cursor[DictRow]) -> None:
        cursor.execute(SCHEMA)

    def start(self, cursor: psycopg.Cursor[DictRow]) -> None:
        if self.alarm and (self._alarm is None or not self._alarm.is_alive()):
            self._alarm = threading.Thread(target=self._ring_forever, name="timers-alarm", daemon=True)
            self._alarm.start()

    def apply(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        added = False
        for recorded in batch:
            event: Any = recorded.event
            if isinstance(event, Delay.DelayScheduled):
                cursor.execute(
                    "INSERT INTO rulestream_timers (delay_id, due_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (event.originator_id, event.due_at),
                )
                added = True
            elif isinstance(event, Delay.DelayCameDue):
                cursor.execute("DELETE FROM rulestream_timers WHERE delay_id = %s", (event.originator_id,))
        if added:
            cursor.execute("SELECT pg_notify(%s, '')", (CHANNEL,))

    def stop(self, timeout: float = 0.0) -> None:
        self.stopping.set()
        if self._wake is not None:  # it may be sleeping until the next try: now, not then
            self._wake.event.set()
        if self._alarm is not None and self._alarm is not threading.current_thread():
            self._alarm.join(timeout)

    # -- the alarm ------------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT min(due_at) AS due FROM rulestream_timers")
            row = cursor.fetchone()
        return row["due"] if row else None

    def fire_due(self) -> int:
        """Record ``DelayCameDue`` for every timer due now (by the clock); answer how many fired."""
        fired = 0
        while not self.stopping.is_set():
            count = self._fire_batch(self.clock.now())
            fired += count
            if count < FIRE_BATCH:
                return fired
        return fired

    def _fire_batch(self, now: datetime) -> int:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.execute(
                "SELECT delay_id FROM rulestream_timers WHERE due_at <= %s ORDER BY due_at, delay_id "
                "LIMIT %s FOR UPDATE SKIP LOCKED",
                (now, FIRE_BATCH),
            )
            due: list[UUID] = [row["delay_id"] for row in cursor.fetchall()]
            if not due:
                return 0
            cursor.execute(
                f'SELECT originator_id FROM "{self.events_table}" WHERE originator_id = ANY(%s) '
                "AND originator_version = 2",
                (due,),
            )
            already = {row["originator_id"] for row in cursor.fetchall()}
            stored: list[StoredEvent] = []
            for key in due:
                if key in already:
                    continue
                delay: Delay = self.app.repository.get(key)
                delay.come_due(now)
                stored += [self.app.mapper.to_stored_event(e) for e in delay.collect_events()]
            if stored:
                recorder: Any = self.app.recorder
                recorder._insert_stored_events(cursor, stored)  # noqa: SLF001 - with the deletes, on purpose
            cursor.execute("DELETE FROM rulestream_timers WHERE delay_id = ANY(%s)", (due,))
        return len(stored)

    def _ring_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                self._ring()
            except Exception as error:  # noqa: BLE001 - the alarm must survive outages; it logs and retries
                if isinstance(error.__cause__ or error, psycopg.errors.UndefinedTable):
                    # Started by ``start``, inside the transaction that creates the table: not committed yet.
                    log.debug("timer alarm: no timers table yet; retrying")
                    self.stopping.wait(0.1)
                    continue
                log.exception("timer alarm failed; restarting in 1 s")
                self.stopping.wait(1.0)

    def _ring(self) -> None:
        # Woken by the process's one listening connection (``projections.connections``), not one of its own.
        with shared(self.datastore) as (_, notifier):
            wake = self._wake = notifier.subscribe(CHANNEL)
            try:
                while not self.stopping.is_set():
                    self.fire_due()
                    due = self.next_due()
                    sleep = MAX_SLEEP if due is None else min(MAX_SLEEP, self.clock.seconds_until(due))
                    if sleep > 0:
                        wake.wait(sleep)
            finally:
                wake.close()
