"""What rule effects mean for a session over its life: current discounts, pending points, credits and rollbacks.

RULES.md semantics, as a pure function of the session's ledger and one evaluation:

- while a session is open, ``setDiscount*`` effects are its current discounts (the same name overwrites) and
  loyalty points are *pending* (the same rule and name overwrites, so a rule triggered by every update does not
  count twice); the latest evaluation of a rule decides what it holds: when it fires again its earlier effects
  give way to the new ones, and when it no longer holds (``Decision.lapsed``: its condition fails on the
  changed cart) they are dropped — neither credited at close nor rolled back later;
- closing credits the pending points to the profile's loyalty ledger and freezes the discounts;
- cancelling an open session rolls back its current discounts (``rollbackDiscount``); revoking a closed (or
  partially returned) session, or reopening it, rolls back its discounts and the points its close credited
  (``rollbackAddedLoyaltyPoints`` / ``rollbackDeductedLoyaltyPoints``);
- a partial return rolls back the same, pro rata by the value returned; the last rollback takes exactly what is
  left, so no rounding is ever lost;
- points from custom events and profile events are credited at once and never rolled back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from domain.effects import LedgerEntry, numeric, plain
from domain.rules.decide import lapses

CENT = Decimal("0.01")
POINT_EFFECTS = {"addLoyaltyPoints": 1, "deductLoyaltyPoints": -1}
DISCOUNT_EFFECTS = ("setDiscount", "setDiscountPerItem")
ROLLBACK_OF = {
    "addLoyaltyPoints": "rollbackAddedLoyaltyPoints",
    "deductLoyaltyPoints": "rollbackDeductedLoyaltyPoints",
}
ROLLBACK_TYPES = frozenset({*ROLLBACK_OF.values(), "rollbackDiscount"})

Effect = dict[str, Any]
"""Talon.One's ``Effect``: campaignId, rulesetId, ruleIndex, ruleName, effectType, props (amounts as Decimal)."""


def _key(effect: Mapping[str, Any]) -> str:
    return f"{effect['campaignId']}:{effect['props'].get('name', '')}"


def _value(effect: Mapping[str, Any]) -> Decimal:
    return Decimal(effect["props"].get("value", 0))


@dataclass
class SessionLedger:
    """What the policy remembers of one session's effects (stored as JSON between evaluations)."""

    discounts: dict[str, Effect] = field(default_factory=dict)
    pending: dict[str, Effect] = field(default_factory=dict)
    credited: dict[str, Effect] = field(default_factory=dict)
    """Effects settled at close; their ``props.value`` is what is still left to roll back."""
    value_at_close: Decimal = Decimal(0)
    value_left: Decimal = Decimal(0)

    @property
    def pending_points(self) -> Decimal:
        return sum((POINT_EFFECTS[e["effectType"]] * _value(e) for e in self.pending.values()), Decimal(0))

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = plain(
            {
                "discounts": self.discounts,
                "pending": self.pending,
                "credited": self.credited,
                "valueAtClose": self.value_at_close,
                "valueLeft": self.value_left,
            }
        )
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> SessionLedger:
        if not record:
            return cls()
        return cls(
            discounts=numeric(record.get("discounts", {})),
            pending=numeric(record.get("pending", {})),
            credited=numeric(record.get("credited", {})),
            value_at_close=Decimal(record.get("valueAtClose", "0")),
            value_left=Decimal(record.get("valueLeft", "0")),
        )


@dataclass(frozen=True)
class Settlement:
    """The effects to record and answer, the ledger entries they make, and the session's ledger after."""

    effects: list[Effect]
    entries: list[LedgerEntry]
    ledger: SessionLedger | None


def settle(
    event_type: str,
    effects: Sequence[Effect],
    ledger: SessionLedger | None,
    profile_id: str | None,
    *,
    session_value: Decimal = Decimal(0),
    lapsed: Collection[int] = (),
) -> Settlement:
    """Settle one evaluation's ``effects`` for an event of ``event_type``.

    ``ledger`` is the session's ledger (None for events without a session); ``session_value`` the session's
    cart value after the event (for closes and returns); ``lapsed`` the rules the event triggered that no
    longer hold.
    """
    if ledger is not None:  # a copy: the caller's ledger (maybe cached) stays as it was
        ledger = SessionLedger(
            dict(ledger.discounts),
            dict(ledger.pending),
            dict(ledger.credited),
            ledger.value_at_close,
            ledger.value_left,
        )
    out, entries = list(effects), []
    if ledger is None or event_type not in SESSION_EVENTS:
        entries = [_entry(profile_id, e) for e in effects if e["effectType"] in POINT_EFFECTS]
        if ledger is not None:
            ledger.discounts.update({e["props"]["name"]: e for e in effects if e["effectType"] in DISCOUNT_EFFECTS})
        return Settlement(out, [e for e in entries if e is not None], ledger)

    if event_type in ("talon_session_created", "talon_session_updated", "talon_session_closed"):
        _hold(ledger, effects, lapsed)
    if event_type == "talon_session_closed":
        ledger.credited = dict(ledger.pending)
        entries = [_entry(profile_id, e) for e in ledger.pending.values()]
        ledger.credited.update({f"discount:{n}": e for n, e in ledger.discounts.items()})
        ledger.pending = {}
        ledger.value_at_close = ledger.value_left = session_value
    elif event_type == "talon_session_cancelled":
        out += [_rollback("rollbackDiscount", e, _value(e)) for e in ledger.discounts.values()]
        ledger = SessionLedger()
    elif event_type in ("talon_session_revoked", "talon_session_reopened"):
        rolled, entries = _roll_back(ledger, profile_id, Decimal(1))
        out += rolled
        ledger = SessionLedger()
    elif event_type == "talon_session_partially_returned":
        returned = ledger.value_left - session_value
        share = returned / ledger.value_left if ledger.value_left > 0 else Decimal(0)
        rolled, entries = _roll_back(ledger, profile_id, share)
        out += rolled
        ledger.value_left = session_value
    return Settlement(out, [e for e in entries if e is not None], ledger)


SESSION_EVENTS = frozenset(
    {
        "talon_session_created",
        "talon_session_updated",
        "talon_session_closed",
        "talon_session_cancelled",
        "talon_session_revoked",
        "talon_session_reopened",
        "talon_session_partially_returned",
    }
)


def _hold(ledger: SessionLedger, effects: Sequence[Effect], lapsed: Collection[int]) -> None:
    decided = {*lapsed, *(e["campaignId"] for e in effects)}
    if decided:
        ledger.discounts = {n: e for n, e in ledger.discounts.items() if e["campaignId"] not in decided}
        ledger.pending = {k: e for k, e in ledger.pending.items() if e["campaignId"] not in decided}
    for effect in effects:
        if effect["effectType"] in DISCOUNT_EFFECTS:
            ledger.discounts[effect["props"]["name"]] = effect
        elif effect["effectType"] in POINT_EFFECTS:
            ledger.pending[_key(effect)] = effect


def _roll_back(ledger: SessionLedger, profile_id: str | None, share: Decimal) -> tuple[list[Effect], list[Any]]:
    """Roll back ``share`` (1 = all that is left) of what the close settled."""
    effects, entries = [], []
    for key, effect in ledger.credited.items():
        left = _value(effect)
        amount = left if share >= 1 else min(left, (left * share).quantize(CENT, ROUND_HALF_EVEN))
        if amount <= 0:
            continue
        kind = effect["effectType"]
        rollback = _rollback(ROLLBACK_OF.get(kind, "rollbackDiscount"), effect, amount)
        effects.append(rollback)
        if kind in POINT_EFFECTS:
            entries.append(_entry(profile_id, rollback, sign=-POINT_EFFECTS[kind]))
        ledger.credited[key] = {**effect, "props": {**effect["props"], "value": left - amount}}
    return effects, entries


def _rollback(kind: str, effect: Effect, amount: Decimal) -> Effect:
    return {**effect, "effectType": kind, "props": {**effect["props"], "value": amount}}


def _entry(profile_id: str | None, effect: Effect, sign: int | None = None) -> LedgerEntry | None:
    if profile_id is None:
        return None
    direction = POINT_EFFECTS.get(effect["effectType"], 1) if sign is None else sign
    return LedgerEntry(
        profile_id=profile_id,
        amount=direction * _value(effect),
        reason=effect["effectType"],
        rule_id=effect.get("campaignId"),
        name=str(effect["props"].get("name", "")),
    )


def answered(evaluations: Sequence[tuple[Sequence[Effect], Sequence[Effect]]]) -> tuple[list[Effect], list[Effect]]:
    """The effects and failure reasons one request answers, from the ``(effects, failures)`` of each event it
    recorded, in order. Talon.One evaluates once per request; a request of ours may record several events (a
    session created closed: created, then closed), and a rule triggered by both must not be answered twice. So,
    as in the session's ledger, a rule's last evaluation in the request decides: a firing, whose effects are
    answered (its earlier ones are not), or a failure of its own (``lapses``), whose reason is. Rollbacks are
    all answered, and a failure on a limit does not hide what the rule fired before it."""
    last: dict[int, int] = {}
    for i, (effects, failures) in enumerate(evaluations):
        for effect in effects:
            if effect["effectType"] not in ROLLBACK_TYPES:
                last[effect["campaignId"]] = i
        for failure in failures:
            if lapses(failure.get("conditionIndex"), failure.get("effectIndex")) or failure["campaignID"] not in last:
                last[failure["campaignID"]] = i
    answer: list[Effect] = [
        e for i, (effects, _) in enumerate(evaluations) for e in effects
        if e["effectType"] in ROLLBACK_TYPES or last.get(e["campaignId"]) == i
    ]  # fmt: skip
    fired = {e["campaignId"] for e in answer}
    reasons = {f["campaignID"]: f for i, (_, failures) in enumerate(evaluations) for f in failures
               if last.get(f["campaignID"]) == i and f["campaignID"] not in fired}  # fmt: skip
    return answer, list(reasons.values())
