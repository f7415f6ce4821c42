"""The rule policy: follows the log and records, for every event rules react to, an ``Evaluation`` of it.

Each batch is one transaction: the evaluations (new events in the log), the policy's state tables and its
checkpoint commit together, so a policy killed mid-batch resumes at its checkpoint and records each effect exactly
once (the evaluation id derives from its cause, so even a second policy could not record one twice).

Rules are part of the log too: the policy applies a rule's new version when it reaches it, so a replay of the log
evaluates every event with the rule versions in force when it happened.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg.rows import DictRow

from domain.application import Rulestream, profile_id
from domain.effects import Cause, Evaluation
from domain.evaluation import Trigger, evaluate, trigger_of
from domain.profile import CustomerProfile
from domain.rules.aggregate import Rule
from domain.rules.compiler import compile_rule
from domain.rules.decide import RuleIndex
from domain.rules.language import parse_rule
from domain.session import CustomerSession
from projections.follower import Follower, Recorded
from projections.policy_state import PolicyState

log = logging.getLogger("rulestream.policy")

CACHE_SIZE = 20_000


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

    def __init__(self, app: Rulestream) -> None:
        self.app = app
        self.rules = RuleIndex()
        self.streams: OrderedDict[UUID, Any] = OrderedDict()
        """Sessions and profiles as of the last event the policy read of each (an LRU cache)."""

    def setup(self, cursor: psycopg.Cursor[DictRow]) -> None:
        PolicyState.create_tables(cursor)

    def start(self, cursor: psycopg.Cursor[DictRow]) -> None:
        self.rules = build_index(PolicyState(cursor).rules())
        self.streams.clear()

    def rolled_back(self) -> None:
        # The cached aggregates and rules may include the failed batch: start from the committed state.
        self.streams.clear()
        self._reload_rules = True

    def committed(self) -> None:
        pass

    _reload_rules = False

    def apply(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        state = PolicyState(cursor)
        if self._reload_rules:
            self.rules = build_index(state.rules())
            self._reload_rules = False
        evaluations: list[Evaluation] = []
        for recorded in batch:
            event = recorded.event
            if isinstance(event, Rule.Event):
                self._apply_rule(state, event)
                continue
            aggregate = self._advance(cursor, event, recorded.position)
            if aggregate is None:
                continue
            evaluation = self._evaluate(state, cursor, recorded, aggregate)
            if evaluation is not None:
                evaluations.append(evaluation)
        if evaluations:
            self._record(cursor, evaluations)

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
        self.streams[event.originator_id] = aggregate
        if len(self.streams) > CACHE_SIZE:
            self.streams.popitem(last=False)
        return aggregate

    def _profile_as_of(self, cursor: psycopg.Cursor[DictRow], integration_id: str, position: int) -> Any:
        stream = profile_id(integration_id)
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
        profile = self.app.repository.get(stream, version=row["v"])
        self.streams[stream] = profile
        return profile

    # -- evaluating -----------------------------------------------------------------------------------

    def _evaluate(
        self, state: PolicyState, cursor: psycopg.Cursor[DictRow], recorded: Recorded, aggregate: Any
    ) -> Evaluation | None:
        event = recorded.event
        session = aggregate if isinstance(aggregate, CustomerSession) else None
        trigger = trigger_of(event, session)
        if trigger is None:
            return None
        profile = aggregate if isinstance(aggregate, CustomerProfile) else None
        profile_key = profile.integration_id if profile else trigger.profile_integration_id
        if profile is None and profile_key:
            profile = self._profile_as_of(cursor, profile_key, recorded.position)
        if profile_key:
            state.remember_event(profile_key, trigger.event_type, trigger.at, recorded.position, trigger.attributes)
        if not self.rules.for_event(trigger.event_type) and not _settles(trigger, session):
            return None
        ledger = state.session_ledger(session.integration_id) if session else None
        active, _ = state.balance(profile_key) if profile_key else (0, 0)
        result = evaluate(
            self.rules, trigger, position=recorded.position, session=session, profile=profile,
            balance=active, ledger=ledger, state=state,
        )  # fmt: skip
        state.remember_decision(result.decision)
        if session is not None and ledger is not None and result.settlement.ledger is not None:
            state.keep_session(session.integration_id, profile_key, ledger, result.settlement.ledger)
        state.book(result.settlement.entries)
        if not (result.effects or result.decision.failures or result.settlement.entries):
            return None
        cause = Cause(
            position=recorded.position,
            originator_id=str(event.originator_id),
            originator_version=event.originator_version,
            event_type=trigger.event_type,
            profile_id=profile_key,
            session_id=session.integration_id if session else None,
        )
        return Evaluation.record(cause, result.effects, result.failure_reasons(), result.settlement.entries)

    def _record(self, cursor: psycopg.Cursor[DictRow], evaluations: list[Evaluation]) -> None:
        recorder: Any = self.app.recorder
        stored: list[StoredEvent] = [
            self.app.mapper.to_stored_event(e) for evaluation in evaluations for e in evaluation.collect_events()
        ]
        recorder._insert_stored_events(cursor, stored)  # noqa: SLF001 - inside our own transaction, on purpose

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
