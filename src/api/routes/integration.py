"""The Integration API: Talon.One's ``/v2`` endpoints, driven unmodified by ``talon_one.IntegrationApi``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from api.deps import ApplicationDep, CorrelationId, EffectsDep, IntegrationKey, LoyaltyDep
from api.direct import DirectRoute
from api.effects import Effects
from api.limits import SLASHES
from api.wire import talon
from api.wire.content import extras
from api.wire.integration import (
    CustomerProfileIntegrationRequest,
    IntegrationEventRequest,
    IntegrationRequest,
    ReturnIntegrationRequest,
)
from api.wire.json import FastJSONResponse
from domain.application import Outcome, Rulestream
from domain.base import recording
from domain.session import ReturnedItem

router = APIRouter(tags=["Integration API"], default_response_class=FastJSONResponse, route_class=DirectRoute)

SessionId = Annotated[str, Path(alias="customerSessionId", min_length=1, max_length=1000), SLASHES]
ProfileId = Annotated[str, Path(alias="integrationId", min_length=1, max_length=1000), SLASHES]
Dry = Annotated[bool, Query(description="Evaluate and answer as if the write happened, recording nothing.")]


def _built_in_event(outcome: Outcome, effects: Effects) -> dict[str, Any] | None:
    """The last Talon.One-typed event of the command, as ``Event`` (the ``event`` of ``responseContent``)."""
    for recorded in reversed(outcome.events):
        talon_type = getattr(type(recorded), "talon_type", None)
        if talon_type is None:
            continue
        session = outcome.session
        profile = outcome.profile
        on_session = session is not None and recorded.originator_id == session.id
        return talon.event(
            recorded,
            outcome.position_of(recorded),
            event_type=talon_type,
            attributes=(session.attributes if on_session and session else profile.attributes if profile else {}),
            profile_id=profile.integration_id if profile else None,
            session_id=session.integration_id if on_session and session else None,
            effects=effects.effects,
        )
    return None


def _custom_event(outcome: Outcome, event_type: str) -> dict[str, Any]:
    recorded = next(e for e in outcome.events if getattr(e, "event_type", None) == event_type)
    return talon.event(
        recorded,
        outcome.position_of(recorded),
        event_type=event_type,
        attributes=getattr(recorded, "attributes", {}),  # as recorded: normalised by the catalog (times in UTC, ...)
        profile_id=outcome.profile.integration_id if outcome.profile else None,
        session_id=outcome.session.integration_id if outcome.session else None,
    )


def _state(
    outcome: Outcome,
    effects: Effects,
    content: Sequence[str] | None,
    *,
    with_session: bool,
    event: dict[str, Any] | None = None,
    loyalty: LoyaltyDep | None = None,
    app: Rulestream | None = None,
) -> FastJSONResponse:
    """The Talon.One integration state, with the effects; ``Rulestream-Effects: pending`` if they came late."""
    wanted = set(content or ())
    if event is not None:
        event = {**event, "effects": effects.effects}
    body = talon.integration_state(
        effects=effects.effects,
        session=talon.customer_session(outcome.session) if with_session and outcome.session else None,
        profile=talon.customer_profile(outcome.profile)
        if "customerProfile" in wanted and outcome.profile
        else None,
        event=(event or _built_in_event(outcome, effects)) if "event" in wanted else None,
        loyalty=loyalty.of(outcome.profile.integration_id, booked=effects.booked, pending_change=effects.pending_points)
        if loyalty is not None and "loyalty" in wanted and outcome.profile
        else None,
        rule_failure_reasons=effects.failures if "ruleFailureReasons" in wanted else None,
    )
    if app is not None:
        body.update(extras(app, outcome, effects.effects, wanted))
    headers = {"Rulestream-Effects": "pending"} if effects.pending else None
    return FastJSONResponse(body, headers=headers)


@router.put("/v2/customer_sessions/{customerSessionId}", summary="Update customer session")
def update_customer_session(
    customer_session_id: SessionId,
    body: IntegrationRequest,
    app: ApplicationDep,
    key: IntegrationKey,
    correlation_id: CorrelationId,
    effects: EffectsDep,
    loyalty: LoyaltyDep,
    dry: Dry = False,
) -> Any:
    """Create or update a customer session and move it through its states (``open``, ``closed``, ``cancelled``).

    An illegal transition answers 400 and records nothing. ``dry=true`` answers as if the update happened.
    """
    with recording(correlationId=correlation_id, keyName=key.name):
        outcome = app.update_session(
            customer_session_id, body.customer_session.changes(), body.customer_session.state, dry=dry
        )
    found = effects.of(outcome, body.customer_session.evaluable_campaign_ids)
    return _state(outcome, found, body.response_content, with_session=True, loyalty=loyalty, app=app)


@router.get("/v2/customer_sessions/{customerSessionId}", summary="Get customer session")
def get_customer_session(
    customer_session_id: SessionId, app: ApplicationDep, _: IntegrationKey, loyalty: LoyaltyDep
) -> Any:
    """The session as it is now, with its current effects (those not rolled back)."""
    session = app.get_session(customer_session_id)
    current = loyalty.session_effects(session.integration_id, session.state)
    return FastJSONResponse({"customerSession": talon.customer_session(session), "effects": current})


@router.post("/v2/customer_sessions/{customerSessionId}/returns", summary="Return cart items")
def return_cart_items(
    customer_session_id: SessionId,
    body: ReturnIntegrationRequest,
    app: ApplicationDep,
    key: IntegrationKey,
    correlation_id: CorrelationId,
    effects: EffectsDep,
    loyalty: LoyaltyDep,
    dry: Dry = False,
) -> Any:
    """Return some units of a closed session's cart items; the session becomes ``partially_returned``."""
    items = [ReturnedItem(i.position, i.quantity, i.sku) for i in body.return_.returned_cart_items]
    with recording(correlationId=correlation_id, keyName=key.name):
        outcome = app.return_items(customer_session_id, items, dry=dry)
    return _state(outcome, effects.of(outcome), body.response_content, with_session=True, loyalty=loyalty, app=app)


@router.put("/v2/customer_sessions/{customerSessionId}/reopen", summary="Reopen customer session")
def reopen_customer_session(
    customer_session_id: SessionId,
    app: ApplicationDep,
    key: IntegrationKey,
    correlation_id: CorrelationId,
    effects: EffectsDep,
) -> Any:
    """Reopen a closed session: its discounts and credited points are rolled back, and it can change again."""
    with recording(correlationId=correlation_id, keyName=key.name):
        outcome = app.reopen_session(customer_session_id)
    found = effects.of(outcome)
    headers = {"Rulestream-Effects": "pending"} if found.pending else None
    return FastJSONResponse({"effects": found.effects}, headers=headers)


@router.put("/v2/customer_profiles/{integrationId}", summary="Update customer profile")
def update_customer_profile(
    integration_id: ProfileId,
    body: CustomerProfileIntegrationRequest,
    app: ApplicationDep,
    key: IntegrationKey,
    correlation_id: CorrelationId,
    effects: EffectsDep,
    loyalty: LoyaltyDep,
    run_rule_engine: Annotated[bool, Query(alias="runRuleEngine")] = False,
    dry: Dry = False,
) -> Any:
    """Create or update a customer profile's attributes.

    With ``runRuleEngine=true`` this records ``talon_profile_created`` / ``talon_profile_updated`` and rules run.
    """
    with recording(correlationId=correlation_id, keyName=key.name):
        outcome = app.update_profile(
            integration_id, body.attributes or {}, run_rule_engine=run_rule_engine, dry=dry and run_rule_engine
        )
    found = effects.of(outcome, body.evaluable_campaign_ids)
    return _state(outcome, found, body.response_content, with_session=False, loyalty=loyalty, app=app)


@router.post("/v2/events", summary="Track event", responses={204: {"description": "`silent=yes`: no body"}})
def track_event(
    body: IntegrationEventRequest,
    app: ApplicationDep,
    key: IntegrationKey,
    correlation_id: CorrelationId,
    effects: EffectsDep,
    loyalty: LoyaltyDep,
    dry: Dry = False,
    silent: Annotated[Literal["yes", "no"], Query()] = "no",
) -> Any:
    """Record a custom event for a profile (or for a session, with ``sessionId``); rules react to it."""
    attributes = body.attributes or {}
    with recording(correlationId=correlation_id, keyName=key.name):
        outcome = app.track_event(body.type, attributes, body.profile_id or None, body.session_id, dry=dry)
    if silent == "yes":
        return Response(status_code=204)
    event = _custom_event(outcome, body.type)
    found = effects.of(outcome, body.evaluable_campaign_ids)
    return _state(outcome, found, body.response_content, with_session=False, event=event, loyalty=loyalty, app=app)

