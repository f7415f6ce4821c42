"""Following the log: one named follower applies new events in order, in batches, exactly once.

A follower (a read model, the rule policy, ...) implements ``Follower``; ``FollowerRunner`` feeds it:

- **election**: a session-level PostgreSQL advisory lock keyed by the follower's name; a second runner of the same
  name waits for it and takes over when the first one stops or its connection dies. The locks of all followers
  of a process are held on one shared connection (``projections.connections``);
- **order**: events are read by notification id after the checkpoint; the event store's writers serialise on a
  table lock, so ids commit in order and nothing committed late is skipped;
- **exactly once**: each batch locks the follower's tracking row and reads the events after the checkpoint
  stored there (one statement), applies them and moves the checkpoint, all in one transaction. Two runners that
  both think they lead (or a rebuild that switches a read model over, see ``projections.rebuild``) therefore
  serialise on that row, and a runner whose checkpoint was moved under it starts again from the stored one
  instead of applying twice;
- **wake-up**: ``LISTEN`` on the events channel (one listening connection per process wakes every follower),
  with a polling timeout so a lost ``NOTIFY`` never stalls it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import weakref
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification
from eventsourcing.utils import TopicError, resolve_topic
from prometheus_client import Gauge
from psycopg import sql
from psycopg.rows import DictRow, tuple_row

from domain.application import Rulestream
from domain.profile import CustomerProfile
from projections.connections import ElectionLost, Elections, Lease, Subscription, shared

log = logging.getLogger("rulestream.followers")

POLL_SECONDS = 1.0
GATHER_SECONDS = 0.25
"""The pause of followers that nobody waits on (``Follower.gather_seconds``): the read models, timers and
deliveries. A reader waiting on a read model cuts it short (``READERS_CHANNEL``)."""
READERS_CHANNEL = "rulestream_readers"
"""A read that finds its read model behind ``NOTIFY``s this channel; read models (``Follower.hurried``) end their
pause and apply at once what has gathered."""
PROGRESS_CHANNEL = "rulestream_progress"
"""A follower that ``announces`` (the rule policy: responses wait for it) ``NOTIFY``s this channel with
``name:checkpoint`` when a batch commits. The others do not: nobody waits on them there, and each notification
wakes every listening process."""

CHECKPOINT = Gauge(
    "rulestream_follower_checkpoint", "Last log position applied by the follower", ["follower"]
)
HEAD = Gauge("rulestream_log_head", "Last log position recorded, as last seen by a follower", ["follower"])
LAG_EVENTS = Gauge(
    "rulestream_follower_lag_events", "Log positions recorded but not yet applied", ["follower"]
)
LAG_SECONDS = Gauge(
    "rulestream_follower_lag_seconds",
    "Age of the oldest event the follower has not applied yet",
    ["follower"],
)


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
    announces: bool = False
    """Whether each committed batch is announced on ``PROGRESS_CHANNEL``."""
    durable: bool = True
    """Whether a batch's commit waits for the WAL to reach disk. A follower whose tables are only derived from
    the log (a read model) need not: if PostgreSQL crashes, its last batches are lost together with the
    checkpoint that counted them (one transaction), and are applied again. The policy records effects in the
    log, and deliveries reach the outside world: they wait."""

    gather_seconds: float = 0.0
    """The least time from one step's start to the next, while new events keep coming: they gather meanwhile.
    After a quiet spell longer than that the next event is applied at once. Nobody waits on a read model's next
    batch the way a command's response waits on the policy's, and a step costs its round trips and CPU whether
    it applies one event or a hundred: without a pause every follower of the process woke and ran a transaction
    for every command, each competing with the policy for the CPU (and in one process for the interpreter
    lock). Under B1's load (``bench/ab.py``) the read models' process took 1.3–1.7 ms of CPU per command with a
    fixed 20 ms pause, 0.8–0.9 ms with a 100 ms window, a tenth less again with 250 ms (README, "Lag")."""

    hurried: bool = False
    """Whether a notification on ``READERS_CHANNEL`` (a reader is waiting) ends the pause."""

    pipelined: bool = False
    """Whether a batch runs in psycopg's pipeline mode: statements whose results are not read go out without
    waiting for each one's answer, so a batch costs a round trip per read (the checkpoint, the events, what
    ``apply`` fetches) and one for all its writes, the checkpoint and the commit. Not for followers that
    ``COPY`` (pipeline mode has no COPY)."""

    reads: tuple[type, ...] | None = None
    """The event classes ``apply`` looks at (``None``: all). The runner decodes no other event of the log: the
    policy would otherwise decode every evaluation it recorded itself, to skip it; its checkpoint still passes
    them. An event whose topic names no class is decoded (and fails) as before."""

    def reads_in(self, topics: frozenset[str]) -> tuple[type, ...] | None:
        """The event classes to decode of a batch holding events of these topics: ``reads`` unless the follower
        knows that, as it stands, it has nothing to do with some of them (it must then not need them later).
        Never more than ``reads``: the state of other events is not read at all."""
        return self.reads

    def setup(self, cursor: psycopg.Cursor[DictRow]) -> None:  # noqa: B027 - optional hook
        """Create the follower's tables (idempotent)."""

    def start(self, cursor: psycopg.Cursor[DictRow]) -> None:  # noqa: B027 - optional hook
        """Load whatever the follower keeps in memory, after election and before the first batch."""

    @abstractmethod
    def apply(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        """Apply a batch inside the transaction that also moves the checkpoint (empty when every event read was of a
        class the follower does not read)."""

    def notifications(self) -> list[tuple[str, str]]:
        """What the batch's commit notifies (channel, payload), besides the new checkpoint of a follower that
        ``announces`` (sent last)."""
        return []

    def recorded(self) -> int:
        """How many events of its own the batch appended to the log, under the log's table lock, last in its
        transaction (none: 0).

        The checkpoint then passes them too when they directly follow the batch's last event, as the database
        tells at the commit (the sequence's last value, drawn under the lock, is the last event's plus this many):
        nothing else is in between, and reading them back would only move the checkpoint past them, a
        transaction (and for the policy a round of every process's wake-ups) later. Asked in SQL, not from the
        positions the insert returns, so the batch does not wait for them before its commit."""
        return 0

    def rolled_back(self) -> None:  # noqa: B027 - optional hook
        """The batch's transaction failed: forget in-memory state that the batch changed."""

    def committed(self) -> None:  # noqa: B027 - optional hook
        """The batch's transaction committed."""

    def failed(self, error: BaseException) -> None:  # noqa: B027 - optional hook
        """The runner failed and will retry from the committed checkpoint (e.g. record the error for status)."""

    def stop(self, timeout: float) -> None:  # noqa: B027 - optional hook
        """Stop what runs beside the batches (an alarm, a sender), waiting at most ``timeout`` seconds for it: the
        process is shutting down, and its database may be next."""


class FollowerRunner:
    """Runs one follower until stopped; use ``thread()`` to run it in the background."""

    def __init__(self, app: Rulestream, follower: Follower, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.app = app
        self.follower = follower
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.elected = threading.Event()
        self.checkpoint = 0
        self.error: BaseException | None = None
        recorder: Any = app.recorder
        self.datastore = recorder.datastore
        self.events_table = recorder.events_table_name
        self.tracking_table = recorder.tracking_table_name
        self.channel = recorder.channel_name
        self._read_statement = (
            sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
                "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
            )
            .format(sql.Identifier(self.events_table))
            .as_bytes(None)
        )
        """Rendered once: psycopg renders an ``sql.Composed`` again on every execution."""
        self._lock_and_read_statement = (
            sql.SQL(
                "WITH checkpoint AS (SELECT notification_id FROM {tracking} WHERE application_name = %s FOR UPDATE) "
                "SELECT checkpoint.notification_id AS checkpoint, e.notification_id, e.originator_id, "
                "e.originator_version, e.topic, CASE WHEN e.topic = ANY(%s::text[]) THEN NULL ELSE e.state END "
                "AS state FROM checkpoint LEFT JOIN LATERAL ("
                "SELECT notification_id, originator_id, originator_version, topic, state FROM {events} "
                "WHERE notification_id > coalesce(checkpoint.notification_id, 0) ORDER BY notification_id LIMIT %s"
                ") e ON true ORDER BY e.notification_id"
            )
            .format(tracking=sql.Identifier(self.tracking_table), events=sql.Identifier(self.events_table))
            .as_bytes(None)
        )
        """One statement, one round trip: lock the checkpoint, and read the batch after it (module docstring),
        without the state of events of the topics the follower never reads (``_unread``)."""
        self._unread: list[str] = []
        """Topics seen whose events the follower never decodes (not of ``Follower.reads``): their state is not
        even sent (a policy's process read every evaluation three times, to skip it twice)."""
        self._sequence_literal: str | None = None

    # -- running --------------------------------------------------------------------------------------

    def thread(self) -> threading.Thread:
        worker = threading.Thread(target=self.run_forever, name=f"follower-{self.follower.name}", daemon=True)
        worker.start()
        self._thread = worker
        return worker

    def stop(self) -> None:
        self.stopping.set()

    def shut_down(self, timeout: float = 10.0) -> None:
        """Stop, and wait (at most ``timeout`` seconds) until the batch being applied and what runs beside the
        batches have finished: nothing of this runner uses the database afterwards."""
        self.stop()
        self.follower.stop(timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run_forever(self) -> None:
        """Run, and after a failure (e.g. the database restarted) start over from the committed checkpoint."""
        while not self.stopping.is_set():
            try:
                self._run()
            except ElectionLost as lost:
                log.warning("follower %s: %s; standing again", self.follower.name, lost)
                self.elected.clear()
            except Exception as error:  # noqa: BLE001 - a follower must survive outages; it logs and retries
                self.error = error
                log.exception("follower %s failed; restarting in 1 s", self.follower.name)
                try:
                    self.follower.failed(error)
                except Exception:  # noqa: BLE001 - the database may be what failed
                    log.warning("follower %s: could not record its failure", self.follower.name)
                self.stopping.wait(1.0)

    def _run(self) -> None:
        with shared(self.datastore) as (elections, notifier):
            lease = self._elect(elections)
            if lease is None:
                return
            wake = notifier.subscribe(self.channel)
            hurry = notifier.subscribe(READERS_CHANNEL) if self.follower.hurried else None
            try:
                with self.datastore.get_connection() as conn:
                    with conn.transaction(), conn.cursor() as cursor:
                        self._setup(cursor)
                        self.follower.setup(cursor)
                        self.checkpoint = self._read_checkpoint(cursor)
                        self.follower.start(cursor)
                self.elected.set()
                self.error = None
                observed = applied = 0.0
                while not self.stopping.is_set():
                    began = time.monotonic()
                    if hurry is not None:
                        hurry.clear()  # a reader that asked before this step is served by it
                    found = self.step()
                    if found:
                        applied = began  # an empty step (a poll) opens no window: the next event goes at once
                    if found >= self.follower.batch_size:
                        continue  # a backlog: the next batch is there already
                    # Caught up as of the batch's read: an event committed since has notified after the last
                    # wake-up was taken, so the wait returns at once (no empty step to find that out).
                    lease.check()
                    # Under load that is after every batch, so the gauges (a query) are refreshed at most once
                    # per poll interval.
                    if time.monotonic() - observed >= self.poll_seconds:
                        self.observe()
                        observed = time.monotonic()
                    wake.wait(self.poll_seconds)
                    self._pause(applied, hurry)
            finally:
                wake.close()
                if hurry is not None:
                    hurry.close()
                lease.release()

    def _pause(self, applied: float, hurry: Subscription | None) -> None:
        """Let events gather until ``gather_seconds`` after the last step that applied some began, unless a reader
        hurries us."""
        rest = applied + self.follower.gather_seconds - time.monotonic()
        if rest > 0:
            (hurry.wait if hurry is not None else self.stopping.wait)(rest)

    def _elect(self, elections: Elections) -> Lease | None:
        """Wait until this runner holds its follower's election lock (``None``: stopped first)."""
        key = (FOLLOWER_LOCK, follower_lock_key(self.follower.name))
        while not self.stopping.is_set():
            lease = elections.try_acquire(key)
            if lease is not None:
                return lease
            self.stopping.wait(self.poll_seconds)
        return None

    def step(self) -> int:
        """Apply the next batch, if any; answer how many events it held."""
        name = self.follower.name
        try:
            with self.datastore.get_connection() as conn:
                with (
                    conn.pipeline() if self.follower.pipelined else contextlib.nullcontext(),
                    conn.transaction(),
                    conn.cursor() as cursor,
                ):
                    if not self.follower.durable:
                        cursor.execute("SET LOCAL synchronous_commit = off")
                    stored, read, batch = self._lock_and_read(cursor)
                    if stored != self.checkpoint:
                        # A rebuild switched this read model over, or another runner went ahead: continue from
                        # there.
                        log.info("follower %s: checkpoint moved from %s to %s", name, self.checkpoint, stored)
                        self.checkpoint = stored
                        self.follower.start(cursor)
                    if not read:
                        return 0
                    self.follower.apply(cursor, batch)  # perhaps empty: it resets what the follower keeps per batch
                    moved = self._write_checkpoint(
                        cursor, read[-1], self.follower.notifications(), own=self.follower.recorded()
                    )
                last = moved()  # committed: the answer is in (pipelined, it came with the commit's)
        except BaseException:
            self.follower.rolled_back()
            raise
        self.checkpoint = last
        self.follower.committed()
        CHECKPOINT.labels(name).set(last)
        return len(read)

    def read(self, cursor: psycopg.Cursor[DictRow], after: int, limit: int) -> list[Recorded]:
        """The next ``limit`` events of the log after position ``after``, decoded, read in ``cursor``'s transaction."""
        cursor.execute(self._read_statement, (after, limit), prepare=True)
        return self._decoded(cursor.fetchall())

    def _lock_and_read(self, cursor: psycopg.Cursor[DictRow]) -> tuple[int, list[int], list[Recorded]]:
        """Lock the follower's tracking row; answer the checkpoint stored there, the positions read after it, and
        the batch of those the follower reads (``Follower.reads``), decoded.

        The events are read in the statement's snapshot, taken before the lock was granted: if another runner
        moved the checkpoint meanwhile, the lock answers its new value, and the read, after that value, sees a
        prefix of what follows it (positions commit in order), perhaps a shorter one; never an event twice."""
        cursor.execute(
            self._lock_and_read_statement,
            (self.follower.name, self._unread, self.follower.batch_size),
            prepare=True,
        )
        rows = cursor.fetchall()
        if not rows:
            raise RuntimeError(f"follower {self.follower.name}: no tracking row (setup did not run)")
        stored = int(rows[0]["checkpoint"] or 0)
        rows = [row for row in rows if row["notification_id"] is not None]
        read = [row["notification_id"] for row in rows]
        if not rows:
            return stored, read, []
        topics = frozenset(row["topic"] for row in rows)
        static = self.follower.reads
        self._unread += [t for t in topics if t not in self._unread and not self._reads(t, static)]
        # What the follower knows of itself holds from its own last batch on: not if another runner moved on.
        wanted = self.follower.reads_in(topics) if stored == self.checkpoint else static
        return stored, read, self._decoded([row for row in rows if self._reads(row["topic"], wanted)])

    @staticmethod
    def _reads(topic: str, wanted: tuple[type, ...] | None) -> bool:
        return wanted is None or topic_of(topic, wanted)

    def _decoded(self, rows: list[DictRow]) -> list[Recorded]:
        events = DecodedEvents.of(self.app).decode(rows)
        return [Recorded(row["notification_id"], event, row["topic"]) for row, event in zip(rows, events, strict=True)]

    def observe(self) -> None:
        """Publish the checkpoint, the log head and the lag as Prometheus gauges."""
        name = self.follower.name
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            lag = lag_of(cursor, self.events_table, self.app, self.checkpoint)
        CHECKPOINT.labels(name).set(self.checkpoint)
        HEAD.labels(name).set(lag.head)
        LAG_EVENTS.labels(name).set(lag.events)
        LAG_SECONDS.labels(name).set(lag.seconds)

    def run_until_caught_up(self) -> None:
        """Apply batches until the log has nothing new (for tests, rebuilds and the CLI)."""
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            self._setup(cursor)
            self.follower.setup(cursor)
            self.checkpoint = self._read_checkpoint(cursor)
            self.follower.start(cursor)
        while self.step():
            pass
        self.observe()

    # -- the checkpoint -------------------------------------------------------------------------------

    def _setup(self, cursor: psycopg.Cursor[DictRow]) -> None:
        # Followers set up one at a time (until their transactions end): concurrent CREATE ... IF NOT EXISTS of
        # the same table or type races in PostgreSQL and fails one of them.
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", (FOLLOWER_LOCK + 1,))
        cursor.execute(
            f'CREATE TABLE IF NOT EXISTS "{self.tracking_table}" '
            "(application_name text PRIMARY KEY, notification_id bigint)"
        )
        # The row exists from the start, so that every batch can lock it.
        cursor.execute(
            f'INSERT INTO "{self.tracking_table}" (application_name, notification_id) VALUES (%s, 0) '
            "ON CONFLICT (application_name) DO NOTHING",
            (self.follower.name,),
        )

    def _read_checkpoint(self, cursor: psycopg.Cursor[DictRow]) -> int:
        cursor.execute(
            f'SELECT notification_id FROM "{self.tracking_table}" WHERE application_name = %s',
            (self.follower.name,),
        )
        row = cursor.fetchone()
        return int(row["notification_id"]) if row and row["notification_id"] is not None else 0

    def _write_checkpoint(
        self,
        cursor: psycopg.Cursor[DictRow],
        position: int,
        notifications: Sequence[tuple[str, str]] = (),
        *,
        own: int = 0,
    ) -> Callable[[], int]:
        """Move the checkpoint to ``position`` (past ``own`` events the batch appended right after it, see
        ``Follower.recorded``), and send ``notifications`` (channel, payload) with the commit, then the new
        checkpoint if the follower announces; answer how to read the new checkpoint once committed.

        One statement: the notifications are ``pg_notify`` calls in its ``RETURNING`` list (psycopg's cost is
        per statement), evaluated in order, once, for the one row the update moves. A pipelined follower does not
        wait for its answer: the statement itself fails (a cast of the reason to ``bigint``) if the checkpoint
        is not ahead, and the failure surfaces at the commit, which it aborts: a round trip fewer per batch. Its
        answer arrives with the commit's, in a cursor of its own (the batch's is closed by then)."""
        target = (
            f"CASE WHEN currval({self._sequence(cursor)}) = %(at)s::bigint + %(own)s "
            "THEN %(at)s::bigint + %(own)s ELSE %(at)s END"
            if own
            else "%(at)s"
        )
        pairs = {f"c{i}": channel for i, (channel, _) in enumerate(notifications)}
        pairs |= {f"p{i}": payload for i, (_, payload) in enumerate(notifications)}
        notify = "".join(f", pg_notify(%(c{i})s, %(p{i})s)" for i in range(len(notifications)))
        if self.follower.announces:
            notify += f", pg_notify('{PROGRESS_CHANNEL}', %(name)s::text || ':' || notification_id)"
        update = (
            f'UPDATE "{self.tracking_table}" SET notification_id = {target} '
            f"WHERE application_name = %(name)s AND notification_id < %(at)s RETURNING notification_id{notify}"
        )
        params = {"at": position, "own": own, "name": self.follower.name, **pairs}
        if self.follower.pipelined:
            answer = cursor.connection.cursor()
            answer.execute(
                # The reason depends on the count: a constant would be cast (and fail) when planned.
                f"WITH moved AS ({update}) SELECT CASE WHEN count(*) = 1 THEN max(notification_id) "
                "ELSE (count(*) || ' moved: checkpoint not ahead (two runners?)')::bigint END AS moved FROM moved",
                params,
                prepare=True,
            )

            def moved() -> int:
                with answer:
                    row = answer.fetchone()
                assert row is not None
                return int(row["moved"])

            return moved
        cursor.execute(update, params, prepare=True)
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError(
                f"follower {self.follower.name}: checkpoint {position} is not ahead (two runners?)"
            )
        value = int(row["notification_id"])
        return lambda: value

    def _sequence(self, cursor: psycopg.Cursor[DictRow]) -> str:
        """The log's position sequence, as a quoted SQL literal (looked up once)."""
        if self._sequence_literal is None:
            with cursor.connection.cursor(row_factory=tuple_row) as lookup:
                lookup.execute(
                    "SELECT pg_get_serial_sequence(%s, 'notification_id')",
                    (sql.Identifier(self.events_table).as_string(cursor.connection),),
                )
                row = lookup.fetchone()
            if row is None or row[0] is None:
                raise RuntimeError(f"the log table {self.events_table} has no position sequence")
            self._sequence_literal = sql.Literal(str(row[0])).as_string(cursor.connection) + "::regclass"
        return self._sequence_literal


@functools.cache
def topic_of(topic: str, classes: tuple[type, ...]) -> bool:
    """Whether the events of ``topic`` are of one of ``classes``; yes for a topic that names no class (it is
    decoded, and fails, as before)."""
    try:
        return issubclass(resolve_topic(topic), classes)
    except (TopicError, TypeError):
        return True


FOLLOWER_LOCK = 7_001
"""First key of the advisory locks that elect followers (the second is ``lock_key`` of the name)."""


def follower_lock_key(name: str) -> int:
    """The second key of the advisory lock that elects the follower ``name`` (``FOLLOWER_LOCK`` the first)."""
    return lock_key(f"rulestream-follower:{name}")


def lock_key(text: str) -> int:
    """A stable signed 32-bit key for ``text`` (``pg_advisory_lock(int, int)`` takes int4 keys)."""
    return zlib.crc32(text.encode()) - 2**31


def _notification(row: DictRow) -> Notification:
    return Notification(
        id=row["notification_id"],
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )


class DecodedEvents:
    """The events a process's followers decoded last, by log position, shared by all of them.

    The followers of a process read the same events (the read models every one); without this each would decode
    them again (JSON, upcasting, unsealing personal data): the read models of ``worker projections`` five times
    over. Domain events are immutable, so the followers can share one object. An erasure empties the cache, so
    that nothing decoded before it is handed out after it (the key is gone; decoding again yields ``ERASED``).
    """

    SIZE = 8192
    _by_app: weakref.WeakKeyDictionary[Rulestream, DecodedEvents] = weakref.WeakKeyDictionary()
    _apps_lock = threading.Lock()

    def __init__(self, app: Rulestream) -> None:
        self.mapper = app.mapper
        self.events: OrderedDict[int, DomainEventProtocol[UUID]] = OrderedDict()
        self.lock = threading.Lock()

    @classmethod
    def of(cls, app: Rulestream) -> DecodedEvents:
        with cls._apps_lock:
            decoded = cls._by_app.get(app)
            if decoded is None:
                decoded = cls._by_app[app] = cls(app)
            return decoded

    def clear(self) -> None:
        with self.lock:
            self.events.clear()

    def decode(self, rows: Sequence[DictRow]) -> list[DomainEventProtocol[UUID]]:
        """The events of these rows of the log, decoded here only if no follower of the process did already."""
        with self.lock:
            found = [self.events.get(row["notification_id"]) for row in rows]
        new = [row for row, event in zip(rows, found, strict=True) if event is None]
        if not new:
            return [event for event in found if event is not None]
        stored = [_notification(row) for row in new]
        batch = getattr(self.mapper, "to_domain_events", None)  # the shredding mapper fetches keys per page
        decoded = iter(batch(stored) if batch else [self.mapper.to_domain_event(n) for n in stored])
        events = [event if event is not None else next(decoded) for event in found]
        with self.lock:
            for row, event in zip(rows, events, strict=True):
                if isinstance(event, CustomerProfile.DataErased):
                    self.events.clear()
                self.events[row["notification_id"]] = event
            while len(self.events) > self.SIZE:
                self.events.popitem(last=False)
        return events


@dataclass(frozen=True)
class Lag:
    head: int
    events: int
    seconds: float


LAG_COUNT_LIMIT = 1_000_000
"""Lag in events is counted exactly up to this many; beyond, the difference of positions stands in."""


def lag_of(cursor: psycopg.Cursor[DictRow], events_table: str, app: Rulestream, checkpoint: int) -> Lag:
    """How far ``checkpoint`` is behind the log: positions, events, and the age of the oldest unapplied event."""
    table = sql.Identifier(events_table)
    cursor.execute(sql.SQL("SELECT max(notification_id) AS head FROM {}").format(table))
    row = cursor.fetchone()
    head = int(row["head"] or 0) if row else 0
    if head <= checkpoint:
        return Lag(head, 0, 0.0)
    cursor.execute(
        sql.SQL(
            "SELECT count(*) AS n FROM (SELECT 1 FROM {} WHERE notification_id > %s LIMIT %s) behind"
        ).format(table),
        (checkpoint, LAG_COUNT_LIMIT),
    )
    counted = cursor.fetchone()
    events = int(counted["n"]) if counted else 0
    events = max(events, head - checkpoint) if events >= LAG_COUNT_LIMIT else events
    cursor.execute(
        sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT 1"
        ).format(table),
        (checkpoint,),
    )
    oldest = cursor.fetchone()
    seconds = 0.0
    if oldest is not None:
        decoded: Any = app.mapper.to_domain_event(_notification(oldest))
        recorded_at: datetime = decoded.timestamp
        seconds = max(0.0, (datetime.now(UTC) - recorded_at).total_seconds())
    return Lag(head, events, seconds)


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until true (tests)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)
