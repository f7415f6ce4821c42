"""Gameball-compatible ingest over plain HTTP: a map of events of one customer, all recorded or none.

(The ``gameball`` PyPI client 1.0.0 does not import on Python 3, so these tests speak its wire format.)
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import talon_one

from tests.builders import declare
from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server

V4 = "/api/v4.0/integrations/events"
LEGACY = "/api/v2.0/event"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def send(
    server: Server, path: str, body: dict[str, Any], key: str | None = INTEGRATION_KEY
) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers={"apikey": key} if key else {})


def attributes_of(management: talon_one.ManagementApi, kind: str) -> list[str]:
    return [
        a.name for a in management.get_attributes(entity="Event", page_size=1000).data if a.event_type == kind
    ]


def test_events_of_a_customer_are_processed(server: Server, management: talon_one.ManagementApi) -> None:
    review, order = new_id("review"), new_id("place_order")
    declare(management, "Event", "stars", "number", event_type=review, schema_mode="discover")
    declare(management, "Event", "total", "number", event_type=order)

    body = {
        "customerId": new_id("c"),
        "events": {review: {"stars": 5, "product": "shoe"}, order: {"total": 120}},
    }
    response = send(server, V4, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "message": "Events processed"}
    assert attributes_of(management, review) == ["stars", "product"]


def test_one_bad_event_refuses_the_whole_map(server: Server, management: talon_one.ManagementApi) -> None:
    review, order = new_id("review"), new_id("place_order")
    declare(management, "Event", "stars", "number", event_type=review, schema_mode="discover")
    declare(management, "Event", "total", "number", event_type=order)

    body = {
        "customerId": new_id("c"),
        "events": {review: {"stars": 5, "product": "shoe"}, order: {"total": "lots"}},
    }
    response = send(server, V4, body)
    assert response.status_code == 400
    assert [e["source"]["pointer"] for e in response.json()["errors"]] == [f"/events/{order}/total"]
    assert attributes_of(management, review) == ["stars"], (
        "the good event's discovery was not recorded either"
    )

    unknown = send(server, V4, {"customerId": "c", "events": {"never-declared": {"a": 1}}})
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["source"]["pointer"] == "/events/never-declared"


def test_the_legacy_shape_stores_player_attributes_on_the_profile(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    order = new_id("place_order")
    declare(management, "Event", "total", "number", event_type=order)
    declare(management, "CustomerProfile", "displayName")
    declare(management, "CustomerProfile", "tier")
    player = new_id("player")

    body = {
        "playerUniqueId": player,
        "events": {order: {"total": 12.5}},
        "playerAttributes": {"displayName": "Ada", "custom": {"tier": "gold"}},
    }
    response = send(server, LEGACY, body)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    profile = integration.update_customer_profile_v2(
        player,
        talon_one.CustomerProfileIntegrationRequestV2(attributes={}, response_content=["customerProfile"]),
    )
    assert profile.customer_profile.attributes == {"displayName": "Ada", "tier": "gold"}

    body["playerAttributes"] = {"custom": {"shoeSize": 42}}
    refused = send(server, LEGACY, body)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["source"]["pointer"] == "/playerAttributes/custom/shoeSize"


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("nope", 401), (MANAGEMENT_KEY, 403)])
def test_ingest_needs_an_integration_key_in_the_apikey_header(
    server: Server, key: str | None, status: int
) -> None:
    response = send(server, V4, {"customerId": "c", "events": {"x": {}}}, key=key)
    assert response.status_code == status


def test_a_malformed_body_is_a_400_with_pointers(server: Server) -> None:
    response = send(server, V4, {"customerId": "c", "events": {}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == "/events"
