"""Customer profiles and custom events through the official Talon.One SDK."""

from __future__ import annotations

import uuid

import httpx
import pytest
import talon_one
from talon_one.exceptions import ApiException

from tests.builders import declare
from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def declare_catalog(management: talon_one.ManagementApi) -> None:
    """What these tests write, declared first: the catalog validates every write, as in Talon.One."""
    for name in ("Name", "City"):
        declare(management, "CustomerProfile", name)
    declare(management, "Event", "url", event_type="page_view")
    declare(management, "Event", "source", event_type="visit")
    declare(management, "Event", "sku", event_type="add_to_cart")


def test_a_profile_stores_attributes_and_records_built_in_events(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    declare_catalog(management)
    pid = new_id("p")
    body = talon_one.CustomerProfileIntegrationRequestV2(
        attributes={"Name": "Ada"}, response_content=["customerProfile", "event"]
    )
    created = integration.update_customer_profile_v2(pid, body, run_rule_engine=True)
    assert created.customer_profile.attributes == {"Name": "Ada"}
    assert created.event.type == "talon_profile_created"
    body.attributes = {"City": "Berlin"}
    updated = integration.update_customer_profile_v2(pid, body, run_rule_engine=True)
    assert updated.event.type == "talon_profile_updated"
    assert updated.customer_profile.attributes == {"Name": "Ada", "City": "Berlin"}


def test_without_the_rule_engine_attributes_are_stored_but_no_built_in_event(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    declare_catalog(management)
    pid = new_id("p")
    body = talon_one.CustomerProfileIntegrationRequestV2(attributes={"Name": "Bo"}, response_content=["customerProfile"])
    stored = integration.update_customer_profile_v2(pid, body)
    assert stored.customer_profile.attributes == {"Name": "Bo"}
    assert stored.event is None


def test_a_custom_event_is_tracked_for_a_profile(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    declare_catalog(management)
    pid = new_id("p")
    response = integration.track_event_v2(
        talon_one.IntegrationEventV2Request(
            profile_id=pid, type="page_view", attributes={"url": "/shoes"}, response_content=["customerProfile"]
        )
    )
    assert response.effects == []
    assert response.customer_profile.integration_id == pid


def test_a_reserved_event_type_is_refused(integration: talon_one.IntegrationApi) -> None:
    with pytest.raises(ApiException) as refused:
        integration.track_event_v2(talon_one.IntegrationEventV2Request(profile_id=new_id("p"), type="talon_session_closed"))
    assert refused.value.status == 400
    assert '"/type"' in refused.value.body


def test_silent_tracking_answers_204(server: Server, management: talon_one.ManagementApi) -> None:
    declare_catalog(management)
    response = httpx.post(
        f"{server.url}/v2/events?silent=yes",
        json={"profileId": new_id("p"), "type": "visit"},
        headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"},
    )
    assert response.status_code == 204


def test_an_event_bound_to_a_session_names_it(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    declare_catalog(management)
    sid, pid = new_id("s"), new_id("p")
    integration.update_customer_session_v2(
        sid, talon_one.IntegrationRequest(customer_session=talon_one.NewCustomerSessionV2(profile_id=pid))
    )
    response = httpx.post(
        f"{server.url}/v2/events",
        json={"profileId": pid, "sessionId": sid, "type": "add_to_cart", "attributes": {"sku": "a"},
              "responseContent": ["event"]},
        headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"},
    )
    assert response.status_code == 200
    assert response.json()["event"]["sessionId"] == sid
    unknown = httpx.post(
        f"{server.url}/v2/events",
        json={"profileId": pid, "sessionId": "nope-" + sid, "type": "add_to_cart"},
        headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"},
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["source"]["pointer"] == "/sessionId"


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("ApiKey-v1 not-a-key", 401),
        ("Basic abc", 401),
        (f"ManagementKey-v1 {MANAGEMENT_KEY}", 403),
        (f"ApiKey-v1 {INTEGRATION_KEY}", 200),
    ],
)
def test_the_integration_api_needs_an_integration_key(
    server: Server, management: talon_one.ManagementApi, authorization: str | None, status: int
) -> None:
    declare_catalog(management)
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(f"{server.url}/v2/events", json={"profileId": "p", "type": "visit"}, headers=headers)
    assert response.status_code == status
    if status != 200:
        assert response.json()["message"]


def test_malformed_json_is_a_400_not_a_500(server: Server) -> None:
    response = httpx.put(
        f"{server.url}/v2/customer_sessions/x",
        content=b'{"customerSession": ',
        headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}", "content-type": "application/json"},
    )
    assert response.status_code == 400


def test_an_events_attributes_that_sessions_have_become_the_sessions(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    """Talon.One: "When the event is triggered for a given customer session, the url attribute and its value are
    added to the customer session. You can then use this attribute in the Rule Engine and Integration API." """
    pageview = f"pageview_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "url", "string", event_type=pageview)
    declare(management, "Event", "seconds", "number", event_type=pageview)
    declare(management, "CustomerSession", "url", "string")
    rule = httpx.post(f"{server.url}/v1/rules", headers={"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}, json={
        "name": f"promo visitors {pageview}", "trigger": ["talon_session_closed", pageview],
        "condition": {"all": [{"attr": "session.attributes.url", "op": "eq", "value": f"/promo/{pageview}"}]},
        "effects": [{"effectType": "customEffect", "props": {"name": "promo", "payload": {}}}]})  # fmt: skip
    assert rule.status_code == 201, rule.text
    sid, pid = new_id("s"), new_id("p")
    request = talon_one.IntegrationRequest(customer_session=talon_one.NewCustomerSessionV2(profile_id=pid))
    integration.update_customer_session_v2(sid, request)
    tracked = integration.track_event_v2(talon_one.IntegrationEventV2Request(
        profile_id=pid, type=pageview, attributes={"url": f"/promo/{pageview}", "seconds": 3}))  # fmt: skip
    assert tracked.effects == []  # without sessionId: the profile's event, the session is not touched
    bound = httpx.post(f"{server.url}/v2/events", headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}, json={
        "profileId": pid, "sessionId": sid, "type": pageview,
        "attributes": {"url": f"/promo/{pageview}", "seconds": 3}})  # fmt: skip
    assert [e["effectType"] for e in bound.json()["effects"]] == ["customEffect"]  # the event's own rules see it
    session = integration.get_customer_session(sid).customer_session
    assert session.attributes == {"url": f"/promo/{pageview}"} and session.update_count == 1
    listed = httpx.get(f"{server.url}/v1/applications/1/sessions/{sid}",
                       headers={"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}).json()  # fmt: skip
    assert listed["attributes"] == {"url": f"/promo/{pageview}"}
    closed = integration.update_customer_session_v2(sid, talon_one.IntegrationRequest(
        customer_session=talon_one.NewCustomerSessionV2(profile_id=pid, state="closed")))  # fmt: skip
    assert [e.effect_type for e in closed.effects] == ["customEffect"]  # and later ones
    httpx.post(f"{server.url}/v2/events", headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}, json={
        "profileId": pid, "sessionId": sid, "type": pageview, "attributes": {"url": "/later"}})  # fmt: skip
    after_close = integration.get_customer_session(sid).customer_session.attributes
    assert after_close == {"url": f"/promo/{pageview}"}  # a closed session's content no longer changes
    httpx.post(f"{server.url}/v1/rules/{rule.json()['id']}/disable",
               headers={"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"})  # fmt: skip
