"""Response shapes of Talon.One (the SDK's strict models are the judge), built from domain objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from domain.base import int_id
from domain.profile import CustomerProfile
from domain.session import CustomerSession

APPLICATION_ID = 1
ACCOUNT_ID = 1


def customer_session(session: CustomerSession) -> dict[str, Any]:
    """``CustomerSessionV2``."""
    return {
        "id": int_id(session.id),
        "created": session.created_on,
        "integrationId": session.integration_id,
        "applicationId": APPLICATION_ID,
        "profileId": session.profile_id or "",
        "storeIntegrationId": session.store_integration_id,
        "couponCodes": session.coupon_codes,
        "referralCode": session.referral_code or "",
        "loyaltyCards": session.loyalty_cards,
        "state": session.state,
        "cartItems": [
            {
                **item.extra,
                "name": item.name,
                "sku": item.sku,
                "quantity": item.quantity,
                "returnedQuantity": item.returned_quantity,
                "remainingQuantity": item.remaining_quantity,
                "price": item.price,
                "category": item.category,
                "position": position,
                "attributes": dict(item.attributes),
            }
            for position, item in enumerate(session.cart_items)
        ],
        "additionalCosts": {name: {"price": price} for name, price in session.additional_costs.items()},
        "identifiers": session.identifiers,
        "attributes": session.attributes,
        "firstSession": session.first_session,
        "updateCount": session.update_count,
        "total": session.total,
        "cartItemTotal": session.cart_item_total,
        "additionalCostTotal": session.additional_cost_total,
        "updated": session.modified_on,
    }


def customer_profile(profile: CustomerProfile) -> dict[str, Any]:
    """``CustomerProfile``."""
    return {
        "id": int_id(profile.id),
        "created": profile.created_on,
        "integrationId": profile.integration_id,
        "attributes": profile.attributes,
        "accountId": ACCOUNT_ID,
        "closedSessions": profile.closed_sessions,
        "totalSales": profile.total_sales,
        "loyaltyMemberships": None,
        "audienceMemberships": [],
        "lastActivity": profile.modified_on,
        "sandbox": False,
    }


def event(
    recorded: DomainEventProtocol[UUID],
    position: int | None,
    *,
    event_type: str,
    attributes: Mapping[str, Any],
    profile_id: str | None,
    session_id: str | None,
    effects: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """``Event``: a built-in or custom event as Talon.One shows it."""
    return {
        "id": position or 0,
        "created": getattr(recorded, "timestamp", None),
        "applicationId": APPLICATION_ID,
        "profileId": profile_id or "",
        "type": event_type,
        "attributes": dict(attributes),
        "sessionId": session_id or "",
        "effects": list(effects),
    }


def integration_state(
    *,
    effects: Sequence[Mapping[str, Any]],
    session: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
    loyalty: dict[str, Any] | None = None,
    rule_failure_reasons: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``IntegrationStateV2`` / ``TrackEventV2Response`` / ``CustomerProfileIntegrationResponseV2``."""
    state: dict[str, Any] = {"effects": list(effects), "createdCoupons": [], "createdReferrals": []}
    for key, value in (
        ("customerSession", session),
        ("customerProfile", profile),
        ("event", event),
        ("loyalty", loyalty),
        ("ruleFailureReasons", rule_failure_reasons),
    ):
        if value is not None:
            state[key] = value
    return state


def error(message: str, problems: Iterable[Mapping[str, Any]], status: int | None = None) -> dict[str, Any]:
    """``ErrorResponse`` (and ``ErrorResponseWithStatus`` when ``status`` is given)."""
    body: dict[str, Any] = {"message": message, "errors": list(problems)}
    if status is not None:
        body["StatusCode"] = status
    return body
