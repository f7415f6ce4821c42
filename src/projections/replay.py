"""Replaying the log in memory: rule simulation over history, and the check that replay reproduces the effects.

The replay reads every event in log order, rebuilds sessions and profiles in memory, and evaluates rules with the
same decision path as the policy (``domain.evaluation``), keeping history, limits, session ledgers and balances in
memory. It writes nothing. With ``rules=None`` it follows the rule versions recorded in the log, as the policy does.

Delayed rules come due where the log's ``DelayCameDue`` events say (the timer's record of time), so a replay gives
the effects the policy recorded. Candidate rules (a simulation) have no timers in the log: their delays come due
in memory, before the first event recorded at or after their due time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.application import Rulestream, profile_id
from domain.delays import Delay, DelayBook, PendingDelay
from domain.effects import Cause
from domain.evaluation import Result, evaluate, trigger_of
from domain.profile import CustomerProfile
from domain.rules.aggregate import Rule
from domain.rules.compiler import compile_rule
from domain.rules.context import InMemoryHistory, InMemoryLimits
from domain.rules.decide import RuleIndex
from domain.rules.language import RuleDefinition, parse_rule
from domain.session import CustomerSession
from domain.settlement import SessionLedger
from projections.policy import due_trigger, pending_delay

PAGE = 1000


class MemoryState:
    """History and limits in memory: the replay's stand-in for the policy's tables."""

    def __init__(self) -> None:
        self.history = InMemoryHistory()
        self.limits = InMemoryLimits()
        self.record = self.history.record
        self.record_decision = self.limits.record
        self.events = self.history.events
        self.firings = self.limits.firings
        self.matches = self.limits.matches
        self.budget_used = self.limits.budget_used


@dataclass(frozen=True)
class Replayed:
    position: int
    originator_id: UUID
    originator_version: int
    at: datetime
    event_type: str
    profile_id: str | None
    session_id: str | None
    result: Result


@dataclass
class Replay:
    app: Rulestream
    rules: RuleIndex | None = None
    state: MemoryState = field(default_factory=MemoryState)
    ledgers: dict[str, SessionLedger] = field(default_factory=dict)
    balances: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    streams: dict[UUID, Any] = field(default_factory=dict)
    delays: DelayBook = field(default_factory=DelayBook)

    def run(self, until: datetime | None = None) -> Iterator[Replayed]:
        follow_log = self.rules is None
        index = self.rules if self.rules is not None else RuleIndex()
        start = 0
        while True:
            page = self.app.recorder.select_notifications(start=start, limit=PAGE, inclusive_of_start=False)
            if not page:
                return
            for notification in page:
                event: Any = self.app.mapper.to_domain_event(notification)
                if until is not None and event.timestamp > until:
                    return
                if not follow_log:
                    yield from self._due_in_memory(index, notification.id, event.timestamp)
                if isinstance(event, Delay.DelayCameDue):
                    if follow_log:
                        replayed = self._came_due(index, notification.id, event.originator_id,
                                                  event.originator_version, self.delays.take(event.originator_id))
                        if replayed is not None:
                            yield replayed
                    continue
                if isinstance(event, Rule.Event):
                    if follow_log:
                        rule: Rule = self.app.repository.get(event.originator_id, version=event.originator_version)
                        index.put(compile_rule(rule.rule_id, rule.current.version, parse_rule(rule.current_definition)))
                    continue
                replayed = self._evaluate(index, notification.id, event)
                if replayed is not None:
                    yield replayed
            start = page[-1].id

    def _evaluate(self, index: RuleIndex, position: int, event: Any) -> Replayed | None:
        if not isinstance(event, CustomerSession.Event | CustomerProfile.Event):
            trigger = trigger_of(event)
            aggregate = None
        else:
            aggregate = self.streams.get(event.originator_id)
            aggregate = event.mutate(aggregate if event.originator_version > 1 else None)
            self.streams[event.originator_id] = aggregate
            trigger = trigger_of(event, aggregate if isinstance(aggregate, CustomerSession) else None)
        if trigger is None:
            return None
        session = aggregate if isinstance(aggregate, CustomerSession) else None
        profile = aggregate if isinstance(aggregate, CustomerProfile) else None
        key = profile.integration_id if profile else trigger.profile_integration_id
        if profile is None and key:
            profile = self.streams.get(profile_id(key))
        if key:
            self.state.record(key, trigger.event_type, trigger.at, trigger.attributes)
        session_key = session.integration_id if session else None
        self.delays.observe(trigger.event_type, key, session_key, position)
        ledger = self.ledgers.get(session.integration_id, SessionLedger()) if session else None
        result = evaluate(
            index, trigger, position=position, session=session, profile=profile,
            balance=self.balances[key] if key else Decimal(0), ledger=ledger, state=self.state,
        )  # fmt: skip
        self._settle(session, result)
        cause = Cause(position, str(event.originator_id), event.originator_version, trigger.event_type, key,
                      session_key)  # fmt: skip
        for delayed in result.decision.delayed:
            self.delays.schedule(pending_delay(cause, trigger, delayed))
        return Replayed(
            position, event.originator_id, event.originator_version, trigger.at, trigger.event_type, key,
            session_key, result,
        )  # fmt: skip

    def _settle(self, session: CustomerSession | None, result: Result) -> None:
        self.state.record_decision(result.decision)
        if session is not None and result.settlement.ledger is not None:
            self.ledgers[session.integration_id] = result.settlement.ledger
        for entry in result.settlement.entries:
            self.balances[entry.profile_id] += entry.amount

    def _came_due(
        self, index: RuleIndex, position: int, originator_id: UUID, version: int, pending: PendingDelay | None
    ) -> Replayed | None:
        """A delay came due: evaluate its rule as the policy does (``RulePolicy._came_due``)."""
        if pending is None:
            return None
        rule = index.get(pending.rule_id)
        if pending.cancelled_by is not None or rule is None:
            return None
        session = self.streams.get(pending.session_stream) if pending.session_stream else None
        profile = self.streams.get(profile_id(pending.profile_id)) if pending.profile_id else None
        ledger = self.ledgers.get(session.integration_id, SessionLedger()) if session else None
        key = pending.profile_id
        result = evaluate(
            index, due_trigger(pending), position=position, session=session, profile=profile,
            balance=self.balances[key] if key else Decimal(0), ledger=ledger, state=self.state, due=rule,
        )  # fmt: skip
        self._settle(session, result)
        return Replayed(
            position, originator_id, version, pending.due_at, pending.event_type, key, pending.session_id, result
        )

    def _due_in_memory(self, index: RuleIndex, position: int, now: datetime) -> Iterator[Replayed]:
        for pending in self.delays.due(now):
            replayed = self._came_due(index, position, pending.delay_id, 2, pending)
            if replayed is not None:
                yield replayed


def simulate(
    app: Rulestream,
    definitions: Sequence[RuleDefinition],
    *,
    since: datetime | None,
    until: datetime | None,
    sample: int = 20,
) -> dict[str, Any]:
    """What candidate rules would have emitted over the recorded events in ``[since, until]``."""
    index = RuleIndex(compile_rule(n + 1, 1, d) for n, d in enumerate(definitions))
    totals: dict[int, dict[str, Any]] = {
        n + 1: {"rule": n + 1, "name": d.name, "firings": 0, "effects": Counter(), "points": Decimal(0),
                "discount": Decimal(0)}
        for n, d in enumerate(definitions)
    }  # fmt: skip
    evaluated, firings = 0, list[dict[str, Any]]()
    for replayed in Replay(app, index).run(until):
        if since is not None and replayed.at < since:
            continue
        evaluated += 1
        for firing in replayed.result.decision.firings:
            total = totals[firing.rule_id]
            total["firings"] += 1
            total["points"] += firing.points
            total["discount"] += firing.discount
        for effect in replayed.result.effects:
            totals[effect["campaignId"]]["effects"][effect["effectType"]] += 1
        if replayed.result.effects and len(firings) < sample:
            firings.append(
                {"position": replayed.position, "type": replayed.event_type, "at": replayed.at,
                 "profileId": replayed.profile_id, "sessionId": replayed.session_id,
                 "effects": replayed.result.effects}
            )  # fmt: skip
    return {
        "from": since,
        "to": until,
        "evaluatedEvents": evaluated,
        "rules": [{**t, "effects": dict(t["effects"])} for t in totals.values()],
        "sample": firings,
    }
