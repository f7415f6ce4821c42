"""Effects, as recorded: one ``Evaluation`` per evaluated event, written by the rule policy.

An evaluation names the event that caused it (its log position, stream and version, type), lists the effects in
Talon.One's ``Effect`` shape (``campaignId`` = rule id, ``rulesetId`` = rule version), the rules that were triggered
but did not fire, and the loyalty ledger entries the effects make. A loyalty balance is the fold of these entries;
nothing else stores it.

The evaluation's aggregate id is derived from the cause, so an event can be evaluated once only: a second attempt
collides on the event store's primary key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.base import Stream, natural_id

LOYALTY_PROGRAM_ID = 1


def evaluation_id(originator_id: uuid.UUID, originator_version: int) -> uuid.UUID:
    """The id of the evaluation of the event at ``originator_version`` of stream ``originator_id``."""
    return natural_id("evaluation", f"{originator_id}:{originator_version}")


@dataclass(frozen=True)
class Cause:
    """The event an evaluation answers."""

    position: int
    originator_id: str
    originator_version: int
    event_type: str
    profile_id: str | None
    session_id: str | None

    def to_record(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "originatorId": self.originator_id,
            "originatorVersion": self.originator_version,
            "type": self.event_type,
            "profileId": self.profile_id,
            "sessionId": self.session_id,
        }


@dataclass(frozen=True)
class LedgerEntry:
    """Points added to (positive) or taken from (negative) a profile's loyalty ledger, and why."""

    profile_id: str
    amount: Decimal
    reason: str
    """The effect type that made the entry: ``addLoyaltyPoints``, ``deductLoyaltyPoints``,
    ``rollbackAddedLoyaltyPoints`` or ``rollbackDeductedLoyaltyPoints``."""
    rule_id: int | None = None
    name: str = ""

    def to_record(self) -> dict[str, Any]:
        return {
            "profileId": self.profile_id,
            "amount": str(self.amount),
            "reason": self.reason,
            "ruleId": self.rule_id,
            "name": self.name,
        }


class Evaluation(Stream):
    """What the rule policy concluded for one event."""

    class Evaluated(Stream.Created):
        cause: dict[str, Any]
        effects: list[dict[str, Any]]
        failures: list[dict[str, Any]]
        ledger: list[dict[str, Any]]

    def __init__(
        self,
        cause: dict[str, Any],
        effects: list[dict[str, Any]],
        failures: list[dict[str, Any]],
        ledger: list[dict[str, Any]],
    ) -> None:
        self.cause = cause
        self.effects = effects
        self.failures = failures
        self.ledger = ledger

    @classmethod
    def record(
        cls,
        cause: Cause,
        effects: Sequence[Mapping[str, Any]],
        failures: Sequence[Mapping[str, Any]],
        ledger: Sequence[LedgerEntry],
    ) -> Evaluation:
        evaluation: Evaluation = cls._create(
            cls.Evaluated,
            id=evaluation_id(uuid.UUID(cause.originator_id), cause.originator_version),
            cause=cause.to_record(),
            effects=[plain(e) for e in effects],
            failures=[plain(f) for f in failures],
            ledger=[e.to_record() for e in ledger],
        )
        return evaluation


def plain(value: Any) -> Any:
    """A JSON-ready copy: Decimals become strings (exact), containers are copied."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def numeric(value: Any) -> Any:
    """The inverse of ``plain`` for effect props on the wire: decimal strings of amounts become Decimals.

    A rule's ``payload`` (``customEffect``, ``triggerWebhook``) is the author's JSON, answered as written: its
    ``"value": "gold"`` is no amount, and its ``"value": "5"`` stays a string."""
    if isinstance(value, Mapping):
        return {
            k: v if k in OPAQUE_KEYS else _amount(v) if k in AMOUNT_KEYS else numeric(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [numeric(v) for v in value]
    return value


def _amount(value: Any) -> Any:
    if not isinstance(value, str):
        return numeric(value)
    try:
        return Decimal(value)
    except ArithmeticError:  # not a decimal string: not one of ours
        return value


AMOUNT_KEYS = frozenset({"value", "price", "amount"})
OPAQUE_KEYS = frozenset({"payload"})
