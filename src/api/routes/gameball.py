"""Gameball-compatible ingest: a map of events of one customer, recorded as custom events, all or none.

Authenticated with Gameball's header ``apikey: <integration key>``. Each entry of ``events`` is a custom event
of the customer's profile, validated by the attribute catalog like any track event (an event type in
``discover`` mode registers new attributes on first sight); the whole map is one atomic append, so one bad
entry refuses them all with 400 and a pointer (``/events/<name>/<attribute>``) and records nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from api.auth import KeyCache
from api.deps import ApplicationDep, CorrelationId
from api.wire.gameball import PROCESSED, EventsRequest, LegacyEventRequest
from api.wire.json import FastJSONResponse
from domain.base import recording
from domain.errors import Unauthorized
from domain.keys import ApiKey

router = APIRouter(tags=["Gameball ingest"], default_response_class=FastJSONResponse)


def _gameball_key(request: Request, apikey: Annotated[str | None, Header()] = None) -> ApiKey:
    if not apikey or not apikey.strip():
        raise Unauthorized("Missing apikey header: send 'apikey: <integration key>'")
    keys: KeyCache = request.app.state.keys
    key = keys.authenticate(f"ApiKey-v1 {apikey.strip()}", "integration")
    request.state.key_name = key.name
    return key


GameballKey = Annotated[ApiKey, Depends(_gameball_key)]


@router.post("/api/v4.0/integrations/events", summary="Send events (Gameball v4)")
def send_events(
    body: EventsRequest, app: ApplicationDep, key: GameballKey, correlation_id: CorrelationId
) -> Any:
    """Record every event of ``events`` on the profile ``customerId`` (created if unknown), in one append."""
    with recording(correlationId=correlation_id, keyName=key.name):
        app.track_events(body.customer_id, body.events)
    return FastJSONResponse(PROCESSED)


@router.post("/api/v2.0/event", summary="Send events (Gameball v2, legacy)")
def send_legacy_event(
    body: LegacyEventRequest, app: ApplicationDep, key: GameballKey, correlation_id: CorrelationId
) -> Any:
    """The legacy shape: ``playerUniqueId``, ``events``, and ``playerAttributes`` stored on the profile.

    Player attributes (standard and ``custom``) are ``CustomerProfile`` attributes: undeclared ones are
    refused, as on ``PUT /v2/customer_profiles``; they are stored in the same append as the events.
    """
    attributes = body.player_attributes.groups() if body.player_attributes else {}
    with recording(correlationId=correlation_id, keyName=key.name):
        app.track_events(body.player_unique_id, body.events, attributes)
    return FastJSONResponse(PROCESSED)
