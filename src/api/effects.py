"""Effects for a command's response: wait (bounded) for the rule policy to pass the command, then read them.

A background thread ``LISTEN``s for the followers' progress notifications and keeps the policy's checkpoint in
memory; a request waits on a condition variable (woken by the notification, not by sleeping in steps) until the
checkpoint reaches the command's last log position. It also re-reads the checkpoint every second, so a lost
notification costs at most that. On timeout the response carries what is known and ``Rulestream-Effects: pending``.

The same thread hears the evaluations each policy batch recorded (``projections.policy.EFFECTS_CHANNEL``, sent
before the batch's progress) and keeps them until a response takes its own: for a command the listener heard
every batch of, its effects are in memory, and an evaluation not there was not recorded (the policy records one
only when it says something), so the response reads nothing from the log. Positions at or below ``floor`` (before
the listener connected, or whose evaluations were dropped to bound the memory) are read from the log as before.

Dry runs do not wait: they call the same decision function in-process, on the would-be events, reading the
policy's state without writing any of it.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from domain.application import Outcome, Rulestream
from domain.effects import Evaluation, evaluation_id, numeric
from domain.evaluation import Result, evaluate, trigger_of
from domain.rules.context import HistoryItem
from domain.rules.decide import RuleIndex
from domain.session import CustomerSession
from domain.settlement import answered
from projections.follower import PROGRESS_CHANNEL
from projections.policy import EFFECTS_CHANNEL, RulePolicy, build_index
from projections.policy_state import PolicyState

log = logging.getLogger("rulestream.effects")


@dataclass
class Effects:
    """What a response carries of the rules: effects, failure reasons, and whether the policy was too slow."""

    effects: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    pending: bool = False
    booked: Decimal = Decimal(0)
    """A dry run's points that would be credited to the profile (its ``loyalty`` answers as if they were)."""
    pending_points: Decimal = Decimal(0)
    """A dry run's change of the profile's pending points (a session's points, pending while it is open)."""


TOO_BIG = StoredEvent(UUID(int=0), 0, "", b"")
"""Stands for an evaluation whose notification said only that it exists (too big to send): read it from the log."""
HEARD_LIMIT = 20_000
"""Evaluations heard and kept for responses, at most (those of other processes' commands are never taken)."""
BATCHES_LIMIT = 10_000
"""Batches whose evaluations are remembered, at most (a response waits seconds at most, not 10,000 batches)."""


class PolicyProgress:
    """The policy's checkpoint as this process last heard it, and the evaluations its batches sent."""

    def __init__(self, app: Rulestream) -> None:
        self.app = app
        self.checkpoint = 0
        self.floor = 0
        """Evaluations of positions above this were all heard (and are kept unless taken)."""
        self._heard: dict[UUID, StoredEvent] = {}
        self._batches: deque[tuple[int, list[UUID]]] = deque()
        """The heard evaluations by the checkpoint of the batch that sent them, oldest first (to drop them)."""
        self._unplaced: list[UUID] = []
        """Heard since the last progress notification: their batch's checkpoint comes next."""
        self._lock = threading.Lock()
        self._waiters: list[tuple[int, int, Any]] = []
        """A heap of (position, tie-breaker, lock held for the waiter): only the requests the new checkpoint
        passes are woken, each by the release of its lock (a C-level wake; a ``threading.Event`` is a Python
        ``Condition``)."""
        self._ticket = itertools.count()
        self.stopping = threading.Event()
        self.listening = threading.Event()
        """Set once the listener has connected and read the checkpoint (tests wait for it)."""
        self._thread = threading.Thread(target=self._listen, name="policy-progress", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 0.0) -> None:
        self.stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _advance(self, position: int, *, heard: bool = True) -> None:
        """The policy passed ``position``; ``heard``: as its notification said, else as read from its table (the
        notifications of batches up to there may not have been heard, or not yet: their effects are read from the
        log)."""
        with self._lock:
            if heard and self._unplaced:
                self._batches.append((position, self._unplaced))
                self._unplaced = []
                self._bound()
            if not heard and position > self.checkpoint:
                self.floor = max(self.floor, position)
            if position <= self.checkpoint:
                return
            self.checkpoint = position
            passed = []
            while self._waiters and self._waiters[0][0] <= position:
                passed.append(heapq.heappop(self._waiters)[2])
        for waiter in passed:
            waiter.release()

    def _read(self, conn: psycopg.Connection[Any]) -> None:
        table = self.app.recorder.tracking_table_name  # type: ignore[attr-defined]
        try:
            row = conn.execute(
                f'SELECT notification_id FROM "{table}" WHERE application_name = %s', (RulePolicy.name,)
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return
        if row and row[0] is not None:
            self._advance(int(row[0]), heard=False)

    def _hear(self, payload: str) -> None:
        """Keep the evaluations of an ``EFFECTS_CHANNEL`` notification for the responses that will take them."""
        heard: dict[UUID, StoredEvent] = {}
        for line in payload.split("\n"):
            originator, _, rest = line.partition(" ")
            topic, _, state = rest.partition(" ")
            key = UUID(originator)
            heard[key] = TOO_BIG if topic == "-" else StoredEvent(key, 1, topic, base64.b64decode(state))
        with self._lock:
            self._heard.update(heard)
            self._unplaced.extend(heard)
            self._bound()

    def _bound(self) -> None:
        """Drop the oldest batches' evaluations beyond the limits (under the lock): their positions are read from
        the log from now on."""
        while self._batches and (len(self._heard) > HEARD_LIMIT or len(self._batches) > BATCHES_LIMIT):
            checkpoint, dropped = self._batches.popleft()
            for key in dropped:
                self._heard.pop(key, None)
            self.floor = max(self.floor, checkpoint)

    def _reset(self) -> None:
        """A new connection: what was sent while there was none is lost; the checkpoint read next is the floor."""
        with self._lock:
            self._heard.clear()
            self._batches.clear()
            self._unplaced = []
            self.floor = max(self.floor, self.checkpoint)

    def take(self, first: int, causes: Sequence[tuple[UUID, int]]) -> list[StoredEvent] | None:
        """The heard evaluations of these events (originator id, version; at positions from ``first`` on, which
        the policy has passed), taken out; ``None`` if they must be read from the log (not all heard, or one too
        big). Nothing heard at all (no rule fired lately), no evaluation ids are even derived."""
        with self._lock:
            if first <= self.floor:
                return None
            if not self._heard:
                return []
            ids = [evaluation_id(*cause) for cause in causes]
            found = [self._heard.pop(i) for i in ids if i in self._heard]
        return None if any(e is TOO_BIG for e in found) else found

    def _listen(self) -> None:
        params = {k: v for k, v in self.app.recorder.datastore.pool.kwargs.items() if k != "row_factory"}  # type: ignore[attr-defined]
        while not self.stopping.is_set():
            try:
                with psycopg.connect(**params, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f'LISTEN "{PROGRESS_CHANNEL}"; LISTEN "{EFFECTS_CHANNEL}"')
                    self._reset()
                    self._read(conn)
                    self.listening.set()
                    while not self.stopping.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if note.channel == EFFECTS_CHANNEL:
                                self._hear(note.payload)
                                continue
                            name, _, position = note.payload.partition(":")
                            if name == RulePolicy.name:
                                self._advance(int(position))
                        self._read(conn)
            except Exception:  # noqa: BLE001 - the database may be restarting: keep trying
                log.warning("policy progress listener lost its connection; reconnecting", exc_info=True)
                self.stopping.wait(1.0)

    def wait(self, position: int, timeout: float) -> bool:
        """Wait until the policy has passed ``position``; False on timeout."""
        # One lock per waiting request: a condition variable's notify_all woke all of them (64 under load)
        # on every batch the policy committed, for the few whose position it passed.
        with self._lock:
            if self.checkpoint >= position:
                return True
            waiter = threading.Lock()
            waiter.acquire()
            heapq.heappush(self._waiters, (position, next(self._ticket), waiter))
        if waiter.acquire(timeout=timeout):
            return True
        with self._lock:
            passed = self.checkpoint >= position
            if not passed:  # leave no dead entry behind (a slow policy must not grow the heap)
                self._waiters = [w for w in self._waiters if w[2] is not waiter]
                heapq.heapify(self._waiters)
        return passed


class EffectsReader:
    """Effects of recorded commands (after the policy), and of would-be ones (dry runs)."""

    def __init__(self, app: Rulestream, wait_seconds: float) -> None:
        self.app = app
        self.wait_seconds = wait_seconds
        self.progress = PolicyProgress(app)
        self._rules: tuple[str, RuleIndex] = ("", RuleIndex())
        self._rules_lock = threading.Lock()
        recorder: Any = app.recorder
        self._recorded_statement = (
            sql.SQL(
                "SELECT originator_id, originator_version, topic, state FROM {} "
                "WHERE originator_id = ANY(%s) AND originator_version = 1"
            )
            .format(sql.Identifier(recorder.events_table_name))
            .as_bytes(None)
        )
        """Rendered once: psycopg renders an ``sql.Composed`` again on every execution."""

    def stop(self, timeout: float = 0.0) -> None:
        self.progress.stop(timeout)

    def settled(self, head: int, timeout: float) -> int:
        """The position a read must see for every write up to ``head`` and the rule policy's evaluations of them:
        once the policy has passed ``head`` (waiting at most ``timeout``), the log's head then — the evaluations
        commit with the checkpoint, but not always right after the events they answer (another write may come
        between), so the checkpoint itself may stop short of them; else ``head``."""
        if self.progress.checkpoint >= head or self.progress.wait(head, timeout):
            return max(head, self.app.recorder.max_notification_id() or 0)
        return head

    def of(self, outcome: Outcome, evaluable: Sequence[int] | None = None) -> Effects:
        """The effects of a command; of a dry one, evaluated here (``evaluable``: Talon.One's
        ``evaluableCampaignIds``, only these rules, even disabled ones; ignored by a command that records)."""
        if outcome.dry:
            return self.dry(outcome, evaluable)
        last = outcome.last_position
        if last is None:
            return Effects()
        done = self.progress.wait(last, self.wait_seconds)
        causes = [(e.originator_id, e.originator_version) for e in outcome.events]
        heard = self.progress.take(min(outcome.positions), causes) if done else None
        result = self.recorded(causes) if heard is None else self._effects(heard)
        result.pending = not done
        return result

    def recorded(self, causes: Sequence[tuple[Any, int]]) -> Effects:
        """The evaluations the policy recorded for these events, in one query.

        Not through the repository: that is a query per cause (most have no evaluation), and each evaluation
        read would take a place in the aggregate cache that the sessions and profiles being written need.
        """
        ids = [evaluation_id(originator_id, version) for originator_id, version in causes]
        recorder: Any = self.app.recorder
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(self._recorded_statement, (ids,), prepare=True)
            rows = cursor.fetchall()
        by_id = {
            row["originator_id"]: StoredEvent(
                row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])
            )
            for row in rows
        }
        return self._effects([by_id[i] for i in ids if i in by_id])

    def _effects(self, evaluations: Sequence[StoredEvent]) -> Effects:
        """The effects and failures of these stored evaluations, in their order."""
        each = []
        for stored in evaluations:
            evaluated = self.app.mapper.to_domain_event(stored)
            if isinstance(evaluated, Evaluation.Evaluated):
                each.append((numeric(evaluated.effects), evaluated.failures))
        return Effects(*answered(each))

    # -- dry runs -------------------------------------------------------------------------------------

    def rules(self, state: PolicyState) -> RuleIndex:
        state.cursor.execute(
            "SELECT coalesce(string_agg(rule_id || ':' || version || ':' || enabled, ',' ORDER BY rule_id), '') "
            "AS k FROM policy_rules"
        )
        row = state.cursor.fetchone()
        key = row["k"] if row else ""
        with self._rules_lock:
            if key != self._rules[0]:
                self._rules = (key, build_index(state.rules()))
            return self._rules[1]

    def dry(self, outcome: Outcome, evaluable: Sequence[int] | None = None) -> Effects:
        """Evaluate the would-be events of a dry command as the policy would, storing nothing; with
        ``evaluable``, only those rules (their current versions), enabled or not: a campaign is tried out before
        it is switched on."""
        each: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
        datastore: Any = self.app.recorder.datastore  # type: ignore[attr-defined]
        with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            try:
                cursor.execute("SET TRANSACTION READ ONLY")
                PolicyState(cursor).rules()
            except psycopg.errors.UndefinedTable:
                return Effects()  # the policy never ran: no rules yet
            state = DryState(cursor)
            if evaluable:
                wanted = set(evaluable)
                rules = build_index([{**r, "enabled": True} for r in state.rules() if r["rule_id"] in wanted])
            else:
                rules = self.rules(state)
            ledgers: dict[str, Any] = {}
            pending_before: dict[str, Decimal] = {}
            booked = Decimal(0)
            for event in outcome.events:
                session = outcome.session if isinstance(event, CustomerSession.Event) else None
                trigger = trigger_of(event, session)
                if trigger is None:
                    continue
                profile = outcome.profile
                key = profile.integration_id if profile else trigger.profile_integration_id
                if key:
                    state.would_be.append((key, trigger.event_type, HistoryItem(trigger.at, trigger.attributes)))
                ledger = None
                if session is not None:
                    ledger = ledgers.get(session.integration_id) or state.session_ledger(session.integration_id)
                    pending_before.setdefault(session.integration_id, ledger.pending_points if ledger else Decimal(0))
                active = (state.balance(key)[0] + booked) if key else Decimal(0)
                evaluated: Result = evaluate(
                    rules, trigger, position=None, session=session, profile=profile,
                    balance=active, ledger=ledger, state=state,
                )  # fmt: skip
                if session is not None and evaluated.settlement.ledger is not None:
                    ledgers[session.integration_id] = evaluated.settlement.ledger
                each.append((evaluated.effects, evaluated.failure_reasons()))
                booked += sum((e.amount for e in evaluated.settlement.entries if e.profile_id == key), Decimal(0))
        pending = sum((ledgers[s].pending_points - before for s, before in pending_before.items() if s in ledgers),
                      Decimal(0))  # fmt: skip
        return Effects(*answered(each), booked=booked, pending_points=pending)


class DryState(PolicyState):
    """The policy's state, read-only, plus the would-be events of a dry run (history conditions count them)."""

    def __init__(self, cursor: Any) -> None:
        super().__init__(cursor)
        self.would_be: list[tuple[str, str, HistoryItem]] = []

    def events(self, profile_id: str, event_type: str, since: Any) -> Sequence[HistoryItem]:
        recorded = list(super().events(profile_id, event_type, since))
        extra = [
            item for (p, t, item) in self.would_be
            if p == profile_id and t == event_type and (since is None or item.at >= since)
        ]  # fmt: skip
        return recorded + extra
