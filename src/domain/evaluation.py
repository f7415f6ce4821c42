"""From a recorded (or would-be) event to the effects it earns: the one decision path of the policy and dry runs.

``trigger_of`` says which events rules react to, and how they look to a rule; ``evaluate`` runs the triggered
rules (``domain.rules.decide``) and settles their effects over the session's life (``domain.settlement``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from domain.anonymous import AnonymousEvent
from domain.effects import LOYALTY_PROGRAM_ID
from domain.profile import CustomerProfile
from domain.rules.compiler import CompiledRule
from domain.rules.context import (
    CartItemView,
    EvaluationContext,
    EventView,
    HistoryReader,
    LimitsReader,
    ProfileView,
    SessionView,
)
from domain.rules.decide import Decision, RuleIndex, decide
from domain.session import CustomerSession
from domain.settlement import SessionLedger, Settlement, settle


@dataclass(frozen=True)
class Trigger:
    """An event as rules see it: its type and attributes, and the session and profile it belongs to."""

    event_type: str
    attributes: Mapping[str, Any]
    at: datetime
    session_stream: UUID | None
    profile_integration_id: str | None


def trigger_of(event: Any, session: CustomerSession | None = None) -> Trigger | None:
    """The trigger of a recorded event, or None for events rules do not react to (bookkeeping, rules, ...).

    ``session`` is the event's session after the event, for session streams.
    """
    if isinstance(event, CustomerSession.CustomEventTracked):
        profile = event.profile_id or (session.profile_id if session else None)
        return Trigger(event.event_type, event.attributes, event.timestamp, event.originator_id, profile)
    if isinstance(event, CustomerSession.Event) and event.talon_type:
        profile = session.profile_id if session else None
        attributes = session.attributes if session else {}
        return Trigger(event.talon_type, attributes, event.timestamp, event.originator_id, profile)
    if isinstance(event, CustomerProfile.CustomEventTracked):
        return Trigger(event.event_type, event.attributes, event.timestamp, None, _profile_key(event))
    if isinstance(event, CustomerProfile.Event) and event.talon_type:
        attributes = getattr(event, "attributes", {})
        return Trigger(event.talon_type, attributes, event.timestamp, None, _profile_key(event))
    if isinstance(event, AnonymousEvent.Tracked):
        return Trigger(event.event_type, event.attributes, event.timestamp, None, None)
    return None


def _profile_key(event: Any) -> str | None:
    # Profile events do not repeat the integration id; the policy fills it from the aggregate.
    return None


def session_view(session: CustomerSession) -> SessionView:
    return SessionView(
        integration_id=session.integration_id,
        state=session.state,
        total=session.total,
        cart_item_total=session.cart_item_total,
        coupon_codes=tuple(session.coupon_codes),
        attributes=session.attributes,
        cart_items=tuple(
            CartItemView(
                sku=item.sku,
                name=item.name or "",
                category=item.category,
                price=item.price,
                quantity=item.quantity,
                position=position,
                returned_quantity=item.returned_quantity,
                attributes=item.attributes,
            )
            for position, item in enumerate(session.cart_items)
        ),
    )


def profile_view(profile: CustomerProfile, balance: Decimal) -> ProfileView:
    return ProfileView(
        integration_id=profile.integration_id,
        attributes=profile.attributes,
        closed_sessions=profile.closed_sessions,
        total_sales=profile.total_sales,
        loyalty_balance=balance,
    )


class PolicyReader(HistoryReader, LimitsReader, Protocol):
    """The policy's state, as a rule reads it."""


@dataclass(frozen=True)
class Result:
    decision: Decision
    settlement: Settlement

    @property
    def effects(self) -> list[dict[str, Any]]:
        return self.settlement.effects

    def failure_reasons(self) -> list[dict[str, Any]]:
        """Talon.One's ``RuleFailureReason`` of each triggered rule that did not fire."""
        return [
            {
                "campaignID": f.rule_id,
                "campaignName": f.rule_name,
                "rulesetID": f.rule_version,
                "ruleIndex": 0,
                "ruleName": f.rule_name,
                "conditionIndex": f.condition_index,
                "effectIndex": f.effect_index,
                "details": f.details,
            }
            for f in self.decision.failures
        ]


def evaluate(
    rules: RuleIndex,
    trigger: Trigger,
    *,
    position: int | None,
    session: CustomerSession | None,
    profile: CustomerProfile | None,
    balance: Decimal,
    ledger: SessionLedger | None,
    state: PolicyReader,
    due: CompiledRule | None = None,
) -> Result:
    """Decide which triggered rules fire for the event and settle their effects.

    ``due`` is a delayed rule that came due: it alone is evaluated, now, for the event that triggered it.
    """
    profile_key = profile.integration_id if profile is not None else trigger.profile_integration_id
    ctx = EvaluationContext(
        event=EventView(
            type=trigger.event_type,
            attributes=trigger.attributes,
            at=trigger.at,
            profile_id=profile_key,
            session_id=session.integration_id if session is not None else None,
            position=position,
        ),
        session=session_view(session) if session is not None else None,
        profile=profile_view(profile, balance) if profile is not None else None,
        history=state,
        limits=state,
    )
    if due is not None:
        decision = decide([due], ctx, due=True)
    else:
        decision = decide(rules.for_event(trigger.event_type), ctx)
    effects = [_wire_effect(e, profile_key) for e in decision.effects]
    value = session.cart_item_total if session is not None else Decimal(0)
    settlement = settle(trigger.event_type, effects, ledger, profile_key, session_value=value, lapsed=decision.lapsed)
    return Result(decision, settlement)


def _wire_effect(effect: Any, profile_key: str | None) -> dict[str, Any]:
    props = dict(effect.props)
    if effect.effect_type in ("addLoyaltyPoints", "deductLoyaltyPoints"):
        props.setdefault("programId", LOYALTY_PROGRAM_ID)
        props.setdefault("subLedgerId", "")
        props.setdefault("recipientIntegrationId", profile_key or "")
    return {
        "campaignId": effect.rule_id,
        "rulesetId": effect.rule_version,
        "ruleIndex": 0,
        "ruleName": effect.rule_name,
        "effectType": effect.effect_type,
        "props": props,
    }
