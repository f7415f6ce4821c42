"""Delayed rule evaluations as events: the policy schedules them, a timer says when they came due.

A rule with ``delay`` is not evaluated when its trigger happens. The policy records ``DelayScheduled`` (which
rule, from which event, due when, cancelled by which event types); the timer follower records ``DelayCameDue``
when the due time has passed; the policy then evaluates the rule against the state at that point of the log,
unless a ``cancelIf`` event of the same session (or profile, for triggers outside a session) came in between.
Both are events in the log, so time enters the log only through them and a replay gives the same effects.

A delay's id derives from its cause and rule, so each trigger schedules a rule once, and comes due once: a second
attempt collides on the event store's primary key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

from domain.base import Stream, natural_id


def delay_id(originator_id: uuid.UUID, originator_version: int, rule_id: int) -> uuid.UUID:
    """The id of the delay of rule ``rule_id`` triggered by the event at ``originator_version`` of a stream."""
    return natural_id("delay", f"{originator_id}:{originator_version}:{rule_id}")


class Delay(Stream):
    """One postponed evaluation of one rule for one triggering event."""

    class DelayScheduled(Stream.Created):
        talon_type: ClassVar[str | None] = "rulestream_delay_scheduled"
        rule_id: int
        rule_version: int
        due_at: datetime
        cancel_if: list[str]
        cause: dict[str, Any]
        """The triggering event, as an evaluation names its cause (``Cause.to_record()``)."""

    class DelayCameDue(Stream.Event):
        talon_type: ClassVar[str | None] = "rulestream_delay_came_due"
        fired_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.fired_at = self.fired_at

    def __init__(
        self, rule_id: int, rule_version: int, due_at: datetime, cancel_if: list[str], cause: dict[str, Any]
    ) -> None:
        self.rule_id = rule_id
        self.rule_version = rule_version
        self.due_at = due_at
        self.cancel_if = cancel_if
        self.cause = cause
        self.fired_at: datetime | None = None

    @classmethod
    def schedule(
        cls,
        cause: Mapping[str, Any],
        rule_id: int,
        rule_version: int,
        due_at: datetime,
        cancel_if: Sequence[str],
    ) -> Delay:
        delay: Delay = cls._create(
            cls.DelayScheduled,
            id=delay_id(uuid.UUID(cause["originatorId"]), cause["originatorVersion"], rule_id),
            rule_id=rule_id,
            rule_version=rule_version,
            due_at=due_at,
            cancel_if=sorted(cancel_if),
            cause=dict(cause),
        )
        return delay

    def come_due(self, now: datetime) -> None:
        """The due time has passed (``now`` is the timer's clock when it fired)."""
        if self.fired_at is None:
            self.trigger_event(self.DelayCameDue, fired_at=now)


@dataclass(frozen=True)
class PendingDelay:
    """What the policy keeps of a scheduled delay until it comes due: the trigger as rules see it, and whether a
    ``cancelIf`` event has happened since."""

    delay_id: uuid.UUID
    rule_id: int
    rule_version: int
    due_at: datetime
    cancel_if: frozenset[str]
    event_type: str
    attributes: Mapping[str, Any]
    profile_id: str | None
    session_id: str | None
    session_stream: uuid.UUID | None
    cancelled_by: str | None = None
    """``"<type>@<position>"`` of the event that cancelled it."""

    def cancelled_by_event(self, event_type: str, profile_id: str | None, session_id: str | None) -> bool:
        """Whether an event cancels this delay: a ``cancelIf`` type of the same session, or of the same profile
        when the trigger belonged to no session."""
        if event_type not in self.cancel_if:
            return False
        if self.session_id is not None:
            return session_id == self.session_id
        return self.profile_id is not None and profile_id == self.profile_id


@dataclass
class DelayBook:
    """Pending delays in memory (the replay's and the unit tests' stand-in for the policy's ``policy_delays``)."""

    pending: dict[uuid.UUID, PendingDelay] = field(default_factory=dict)

    def schedule(self, delay: PendingDelay) -> None:
        self.pending[delay.delay_id] = delay

    def observe(self, event_type: str, profile_id: str | None, session_id: str | None, position: int) -> None:
        """An event happened: cancel the pending delays it cancels."""
        for key, delay in self.pending.items():
            if delay.cancelled_by is None and delay.cancelled_by_event(event_type, profile_id, session_id):
                self.pending[key] = replace(delay, cancelled_by=f"{event_type}@{position}")

    def take(self, key: uuid.UUID) -> PendingDelay | None:
        """The delay that came due, no longer pending."""
        return self.pending.pop(key, None)

    def due(self, now: datetime) -> list[PendingDelay]:
        """The delays due at ``now``, earliest first (what a timer would fire), no longer pending."""
        ready = sorted(
            (d for d in self.pending.values() if d.due_at <= now), key=lambda d: (d.due_at, d.delay_id)
        )
        for delay in ready:
            del self.pending[delay.delay_id]
        return ready
