"""The rule policy: follows the log and records, for every event rules react to, an ``Evaluation`` of it.

Each batch is one transaction: the evaluations (new events in the log), the policy's state tables and its
checkpoint commit together, so a policy killed mid-batch resumes at its checkpoint and records each effect exactly
once (the evaluation id derives from its cause, so even a second policy could not record one twice).

Rules are part of the log too: the policy applies a rule's new version when it reaches it, so a replay of the log
evaluates every event with the rule versions in force when it happened.

Delayed rules (``domain.delays``): for a rule with ``delay`` the policy records ``DelayScheduled`` in the same
transaction, and keeps the trigger in ``policy_delays``; events of a ``cancelIf`` type mark it cancelled there; on
``DelayCameDue`` (recorded by ``projections.timers``) it evaluates the rule as it is then, against the session and
profile as they are at that point of the log, and records the ``Evaluation`` with the ``DelayCameDue`` as cause.

A batch's commit also sends the evaluations it recorded, as stored, on ``EFFECTS_CHANNEL`` (before its progress on
``PROGRESS_CHANNEL``): a command's response reads its effects from there (``api.effects``), not from the log.
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg.rows import DictRow

from domain.anonymous import AnonymousEvent
from domain.application import Rulestream, profile_id
from domain.base import Stream
from domain.delays import Delay, PendingDelay, delay_id
from domain.effects import Cause, Evaluation
from domain.evaluation import Result, Trigger, evaluate, trigger_of
from domain.profile import CustomerProfile
from domain.rules.aggregate import Rule
from domain.rules.compiler import compile_rule
from domain.rules.decide import DelayedEvaluation, RuleIndex
from domain.rules.language import parse_rule
from domain.session import CustomerSession
from projections.follower import Follower, Recorded
from projections.policy_state import PolicyCache, PolicyState

log = logging.getLogger("rulestream.policy")

EFFECTS_CHANNEL = "rulestream_effects"
"""What the policy's batch recorded, sent with its commit: a line per evaluation, ``<originator id> <topic>
<state in base64>``, or ``<originator id> -`` for one too big to send (read it from the log). A notification's
payload is shorter than 8,000 bytes: a batch sends as many as it takes."""
NOTIFY_LIMIT = 7_900


def effects_payloads(evaluations: Sequence[StoredEvent]) -> list[str]:
    """The ``EFFECTS_CHANNEL`` payloads that carry these stored evaluations (module docstring)."""
    payloads: list[str] = []
    lines: list[str] = []
    size = 0
    for stored in evaluations:
        line = f"{stored.originator_id} {stored.topic} {base64.b64encode(stored.state).decode()}"
        if len(line) > NOTIFY_LIMIT:
            line = f"{stored.originator_id} -"
        if lines and size + 1 + len(line) > NOTIFY_LIMIT:
            payloads.append("\n".join(lines))
            lines, size = [], 0
        lines.append(line)
        size += len(line) + 1
    if lines:
        payloads.append("\n".join(lines))
    return payloads


CACHE_SIZE = 20_000
"""Sessions and profiles kept by default (``POLICY_CACHE_MAXSIZE`` of the application's environment)."""


def cache_size(app: Rulestream, name: str, default: int) -> int:
    """A cache's bound from the application's environment (``api.db.eventsourcing_env`` puts the settings there)."""
    value = app.env.get(name)
    return int(value) if value else default


def build_index(rows: Sequence[dict[str, Any]]) -> RuleIndex:
    """Compile stored rule versions into an index (rules that no longer parse are skipped, loudly)."""
    index = RuleIndex()
    for row in rows:
        try:
            definition = {**row["definition"], "enabled": row["enabled"]}
            index.put(compile_rule(row["rule_id"], row["version"], parse_rule(definition)))
        except Exception:  # noqa: BLE001 - one broken rule must not stop every other rule
            log.exception("rule %s v%s does not compile; skipped", row["rule_id"], row["version"])
    return index


class RulePolicy(Follower):
    """The ``policy`` follower."""

    name = "policy"
    batch_size = 500
    announces = True  # the responses of commands wait for it (api.effects.PolicyProgress)
    reads = (CustomerSession.Event, CustomerProfile.Event, AnonymousEvent.Tracked, Rule.Event, Delay.DelayCameDue)
    """Not its own evaluations."""
    pipelined = True  # a batch's writes (state tables, evaluations, checkpoint) go out together

    def __init__(self, app: Rulestream) -> None:
        self.app = app
        self.rules = RuleIndex()
        self.streams: OrderedDict[UUID, Any] = OrderedDict()
        """Sessions and profiles as of the last event the policy read of each (an LRU cache)."""
        self.cancel_types: set[str] = set()
        """Event types that may cancel a pending delay: only events of these types look at ``policy_delays``."""
        self.cache_size = cache_size(app, "POLICY_CACHE_MAXSIZE", CACHE_SIZE)
        self.state_cache_size = cache_size(app, "POLICY_STATE_CACHE_MAXSIZE", PolicyCache.LIMIT)
        self.cache = PolicyCache(self.state_cache_size)

    def setup(self, cursor: psycopg.Cursor[DictRow]) -> None:
        PolicyState.create_tables(cursor)

    def start(self, cursor: psycopg.Cursor[DictRow]) -> None:
        self.cache = PolicyCache(self.state_cache_size)
        state = PolicyState(cursor)
        self.rules = build_index(state.rules())
        self.cancel_types = state.delay_cancel_types()
        self.streams.clear()

    def rolled_back(self) -> None:
        # The cached aggregates and rules may include the failed batch: start from the committed state.
        # (``cancel_types`` may keep types of the failed batch: a superset only costs a query.)
        self.streams.clear()
        self.cache.clear()
        self._reload_rules = True

    def committed(self) -> None:
        pass

    _reload_rules = False

    _recorded = 0
    """How many events the current batch recorded."""
    _evaluations: Sequence[StoredEvent] = ()
    """The evaluations among them, as stored (``EFFECTS_CHANNEL``)."""

    def apply(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        self._recorded, self._evaluations = 0, ()
        state = PolicyState(cursor, self.cache)
        if self._reload_rules:
            self.rules = build_index(state.rules())
            self._reload_rules = False
        state.prefetch(*self._keys_of(batch))
        recorded_now: list[Stream] = []
        for recorded in batch:
            event = recorded.event
            if isinstance(event, Rule.Event):
                self._apply_rule(state, event)
                continue
            if isinstance(event, Delay.DelayCameDue):
                recorded_now += self._came_due(state, cursor, recorded)
                continue
            if isinstance(event, AnonymousEvent.Tracked):  # no session, no profile: rules still react to it
                recorded_now += self._evaluate(state, cursor, recorded, None)
                continue
            aggregate = self._advance(cursor, event, recorded.position)
            if aggregate is None:
                continue
            recorded_now += self._evaluate(state, cursor, recorded, aggregate)
        state.flush()
        if recorded_now:
            self._record(cursor, recorded_now)

    def _keys_of(self, batch: Sequence[Recorded]) -> tuple[set[str], set[str]]:
        """The profiles and sessions whose balances and ledgers the batch will likely read, as far as the events
        and the cached streams tell (a guess: what it misses is read when needed, what it adds costs a row)."""
        profiles: set[str] = set()
        sessions: set[str] = set()
        for recorded in batch:
            event: Any = recorded.event
            if isinstance(event, CustomerProfile.Registered):
                profiles.add(event.integration_id)
            elif isinstance(event, CustomerSession.Created):
                sessions.add(event.integration_id)
            elif isinstance(event, CustomerSession.Event | CustomerProfile.Event):
                known = self.streams.get(event.originator_id)
                if isinstance(known, CustomerProfile):
                    profiles.add(known.integration_id)
                elif isinstance(known, CustomerSession):
                    sessions.add(known.integration_id)
                    if known.profile_id:
                        profiles.add(known.profile_id)
            changes = getattr(event, "changes", None) or {}
            for profile in (getattr(event, "profile_id", None), changes.get("profileId")):
                if isinstance(profile, str) and profile:
                    profiles.add(profile)
        return profiles, sessions

    # -- the log's streams, as of each event ----------------------------------------------------------

    def _advance(self, cursor: psycopg.Cursor[DictRow], event: Any, position: int) -> Any:
        """Bring the event's session or profile up to the event; None for streams the policy does not follow."""
        if not isinstance(event, CustomerSession.Event | CustomerProfile.Event):
            return None
        aggregate = self.streams.pop(event.originator_id, None)
        if aggregate is not None and aggregate.version == event.originator_version - 1:
            event.mutate(aggregate)
        elif event.originator_version == 1:
            aggregate = event.mutate(None)
        else:
            aggregate = self.app.repository.get(event.originator_id, version=event.originator_version)
        self._keep(event.originator_id, aggregate)
        return aggregate

    def _keep(self, stream: UUID, aggregate: Any) -> None:
        self.streams[stream] = aggregate
        while len(self.streams) > self.cache_size:
            self.streams.popitem(last=False)

    def _profile_as_of(self, cursor: psycopg.Cursor[DictRow], integration_id: str, position: int) -> Any:
        return self._stream_as_of(cursor, profile_id(integration_id), position)

    def _stream_as_of(self, cursor: psycopg.Cursor[DictRow], stream: UUID, position: int) -> Any:
        cached = self.streams.get(stream)
        if cached is not None:
            return cached
        cursor.execute(
            f'SELECT max(originator_version) AS v FROM "{self.app.recorder.events_table_name}" '  # type: ignore[attr-defined]
            "WHERE originator_id = %s AND notification_id <= %s",
            (stream, position),
        )
        row = cursor.fetchone()
        if not row or row["v"] is None:
            return None
        aggregate: Any = self.app.repository.get(stream, version=row["v"])
        self._keep(stream, aggregate)
        return aggregate

    # -- evaluating -----------------------------------------------------------------------------------

    def _evaluate(
        self, state: PolicyState, cursor: psycopg.Cursor[DictRow], recorded: Recorded, aggregate: Any
    ) -> list[Stream]:
        event = recorded.event
        session = aggregate if isinstance(aggregate, CustomerSession) else None
        trigger = trigger_of(event, session)
        if trigger is None:
            return []
        profile = aggregate if isinstance(aggregate, CustomerProfile) else None
        profile_key = profile.integration_id if profile else trigger.profile_integration_id
        session_key = session.integration_id if session else None
        if profile_key:
            state.remember_event(profile_key, trigger.event_type, trigger.at, recorded.position, trigger.attributes)
        if trigger.event_type in self.cancel_types:
            state.cancel_delays(trigger.event_type, profile_key, session_key, recorded.position)
        if not self.rules.for_event(trigger.event_type) and not _settles(trigger, session):
            return []
        if profile is None and profile_key:  # only what is evaluated needs its profile
            profile = self._profile_as_of(cursor, profile_key, recorded.position)
        ledger = state.session_ledger(session.integration_id) if session else None
        active, _ = state.balance(profile_key) if profile_key else (Decimal(0), Decimal(0))
        result = evaluate(
            self.rules, trigger, position=recorded.position, session=session, profile=profile,
            balance=active, ledger=ledger, state=state,
        )  # fmt: skip
        cause = Cause(
            position=recorded.position,
            originator_id=str(event.originator_id),
            originator_version=event.originator_version,
            event_type=trigger.event_type,
            profile_id=profile_key,
            session_id=session_key,
        )
        delays: list[Stream] = [self._schedule(state, cause, trigger, d) for d in result.decision.delayed]
        evaluation = self._settle(state, cause, result, session, ledger)
        return delays + ([evaluation] if evaluation is not None else [])

    def _settle(
        self, state: PolicyState, cause: Cause, result: Result, session: CustomerSession | None, ledger: Any
    ) -> Evaluation | None:
        """Keep what the decision changes of the policy's state; the evaluation to record, if it says anything."""
        state.remember_decision(result.decision)
        if session is not None and ledger is not None and result.settlement.ledger is not None:
            state.keep_session(session.integration_id, cause.profile_id, ledger, result.settlement.ledger)
        state.book(result.settlement.entries)
        if not (result.effects or result.decision.failures or result.settlement.entries):
            return None
        return Evaluation.record(cause, result.effects, result.failure_reasons(), result.settlement.entries)

    # -- delayed rules --------------------------------------------------------------------------------

    def _schedule(self, state: PolicyState, cause: Cause, trigger: Trigger, delayed: DelayedEvaluation) -> Delay:
        state.keep_delay(pending_delay(cause, trigger, delayed))
        self.cancel_types |= delayed.cancel_if
        return Delay.schedule(cause.to_record(), delayed.rule_id, delayed.rule_version, delayed.due_at,
                              sorted(delayed.cancel_if))  # fmt: skip

    def _came_due(self, state: PolicyState, cursor: psycopg.Cursor[DictRow], recorded: Recorded) -> list[Stream]:
        event: Any = recorded.event
        pending = state.take_delay(event.originator_id)
        if pending is None:
            log.warning("delay %s came due but is not pending (already evaluated?)", event.originator_id)
            return []
        cause = Cause(
            position=recorded.position,
            originator_id=str(event.originator_id),
            originator_version=event.originator_version,
            event_type=str(Delay.DelayCameDue.talon_type),
            profile_id=pending.profile_id,
            session_id=pending.session_id,
        )
        rule = self.rules.get(pending.rule_id)
        if pending.cancelled_by is not None or rule is None:
            return [Evaluation.record(cause, [], [not_evaluated(pending, rule)], [])]
        position = recorded.position
        session = self._stream_as_of(cursor, pending.session_stream, position) if pending.session_stream else None
        profile = self._profile_as_of(cursor, pending.profile_id, position) if pending.profile_id else None
        ledger = state.session_ledger(session.integration_id) if session else None
        active, _ = state.balance(pending.profile_id) if pending.profile_id else (Decimal(0), Decimal(0))
        result = evaluate(
            self.rules, due_trigger(pending), position=position, session=session, profile=profile,
            balance=active, ledger=ledger, state=state, due=rule,
        )  # fmt: skip
        evaluation = self._settle(state, cause, result, session, ledger)
        return [evaluation] if evaluation is not None else []

    def _record(self, cursor: psycopg.Cursor[DictRow], aggregates: Sequence[Stream]) -> None:
        recorder: Any = self.app.recorder
        events = [e for aggregate in aggregates for e in aggregate.collect_events()]
        stored: list[StoredEvent] = [self.app.mapper.to_stored_event(e) for e in events]
        self._evaluations = [s for e, s in zip(events, stored, strict=True) if isinstance(e, Evaluation.Evaluated)]
        # The library's insert without its NOTIFY, which goes with the checkpoint's statement (``notifications``);
        # its positions are not read (``recorded``): nothing waits for them before the commit.
        recorder._lock_table(cursor)  # noqa: SLF001 - inside our own transaction, on purpose
        recorder._insert_only(cursor, stored)  # noqa: SLF001
        self._recorded = len(stored)

    def notifications(self) -> list[tuple[str, str]]:
        log_channel: str = self.app.recorder.channel_name  # type: ignore[attr-defined]
        effects = [(EFFECTS_CHANNEL, payload) for payload in effects_payloads(self._evaluations)]
        return effects + ([(log_channel, "")] if self._recorded else [])

    def recorded(self) -> int:
        # The policy has nothing to do with its own evaluations and delays: its checkpoint may pass them at once
        # (when no other writer appended in between: ``Follower.recorded``).
        return self._recorded

    def _apply_rule(self, state: PolicyState, event: Any) -> None:
        rule: Rule = self.app.repository.get(event.originator_id, version=event.originator_version)
        definition = rule.current_definition
        state.keep_rule(rule.rule_id, rule.current.version, rule.current.definition, rule.enabled)
        try:
            self.rules.put(compile_rule(rule.rule_id, rule.current.version, parse_rule(definition)))
        except Exception:  # noqa: BLE001 - a rule saved through the API always compiles; an old one may not
            log.exception("rule %s does not compile; removed from the index", rule.rule_id)
            self.rules.remove(rule.rule_id)


def _settles(trigger: Trigger, session: CustomerSession | None) -> bool:
    """Session life-cycle events settle (roll back, credit) even when no rule is triggered by them."""
    return session is not None and trigger.event_type.startswith("talon_session_")


def pending_delay(cause: Cause, trigger: Trigger, delayed: DelayedEvaluation) -> PendingDelay:
    """What is kept of a scheduled delay until it comes due (the policy in SQL, the replay in memory)."""
    return PendingDelay(
        delay_id=delay_id(UUID(cause.originator_id), cause.originator_version, delayed.rule_id),
        rule_id=delayed.rule_id,
        rule_version=delayed.rule_version,
        due_at=delayed.due_at,
        cancel_if=frozenset(delayed.cancel_if),
        event_type=trigger.event_type,
        attributes=dict(trigger.attributes),
        profile_id=cause.profile_id,
        session_id=cause.session_id,
        session_stream=trigger.session_stream,
    )


def due_trigger(pending: PendingDelay) -> Trigger:
    """The trigger of a delay that came due: the triggering event, seen at the due time."""
    return Trigger(pending.event_type, pending.attributes, pending.due_at, pending.session_stream, pending.profile_id)


def not_evaluated(pending: PendingDelay, rule: Any) -> dict[str, Any]:
    """The failure reason of a delay that came due but was cancelled (or whose rule is gone)."""
    details = (
        f"cancelled by {pending.cancelled_by}" if pending.cancelled_by else "the rule no longer exists"
    )
    name = rule.name if rule is not None else ""
    return {
        "campaignID": pending.rule_id, "campaignName": name, "rulesetID": pending.rule_version, "ruleIndex": 0,
        "ruleName": name, "conditionIndex": None, "effectIndex": None, "details": details,
    }  # fmt: skip
