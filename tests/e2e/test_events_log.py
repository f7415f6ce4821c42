"""The events log, sessions and projections through the official SDK's ManagementApi (and plain HTTP where the
SDK has no method)."""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import talon_one

from tests.builders import declare
from tests.conftest import MANAGEMENT_KEY, Server

AUTH = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def shop(integration: talon_one.IntegrationApi, management: talon_one.ManagementApi) -> tuple[str, str, int]:
    """A profile that opens and closes a session and tracks a custom event; answers ids and the last position."""
    declare(management, "Event", "page", event_type="page_viewed")
    pid, sid = new_id("p"), new_id("s")
    item = talon_one.CartItem(sku="a", quantity=2, price=10)
    for state in ("open", "closed"):
        integration.update_customer_session_v2(
            sid,
            talon_one.IntegrationRequest(
                customer_session=talon_one.NewCustomerSessionV2(profile_id=pid, state=state, cart_items=[item])
            ),
        )
    tracked = integration.track_event_v2(
        talon_one.IntegrationEventV2Request(
            profile_id=pid, type="page_viewed", attributes={"page": "/home"}, response_content=["event"]
        )
    )
    return pid, sid, tracked.event.id


def test_the_events_log_lists_a_customers_events_through_the_sdk(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    pid, sid, position = shop(integration, management)
    wait = {"Rulestream-Min-Position": str(position)}
    page = management.get_application_events_without_total_count(1, profile=pid, _headers=wait)
    assert [e.type for e in page.data] == ["talon_session_created", "talon_session_closed", "page_viewed"]
    assert page.has_more is False
    assert all(e.application_id == 1 and isinstance(e.effects, list) for e in page.data)
    assert page.data[2].attributes == {"page": "/home"}
    assert page.data[0].session_id == page.data[1].session_id is not None

    typed = management.get_application_events_without_total_count(1, profile=pid, type="page_viewed,nothing")
    assert [e.type for e in typed.data] == ["page_viewed"]
    in_session = management.get_application_events_without_total_count(1, session=sid, page_size=1)
    assert [e.type for e in in_session.data] == ["talon_session_created"] and in_session.has_more
    newest = management.get_application_events_without_total_count(1, profile=pid, sort="-created", skip=1)
    assert [e.type for e in newest.data] == ["talon_session_closed", "talon_session_created"]
    later = management.get_application_events_without_total_count(
        1, profile=pid, created_after=datetime.now(UTC) + timedelta(hours=1)
    )
    assert later.data == []


def test_a_read_without_min_position_sees_every_write_that_answered_before_it(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi, server: Server
) -> None:
    for _ in range(3):  # the read models pause between batches under load: a read right after a write waits
        pid, sid, position = shop(integration, management)
        page = httpx.get(f"{server.url}/v1/applications/1/events/no_total", params={"profile": pid}, headers=AUTH)
        assert [e["type"] for e in page.json()["data"]][-1] == "page_viewed"
        assert int(page.headers["Rulestream-Checkpoint"]) >= position and "Rulestream-Stale" not in page.headers
        customer = httpx.get(f"{server.url}/v1/applications/1/customers/{pid}", headers=AUTH).json()
        assert (customer["closedSessions"], customer["totalSales"]) == (1, 20)
        unwaited = httpx.get(f"{server.url}/v1/applications/1/sessions/{sid}",
                             headers={**AUTH, "Rulestream-Min-Position": "0"})  # fmt: skip
        assert unwaited.status_code in (200, 404)  # 0: answer at once, whatever the model has


def test_sessions_are_listed_and_read_by_internal_id(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi, server: Server
) -> None:
    pid, sid, position = shop(integration, management)
    wait = {"Rulestream-Min-Position": str(position)}
    listed = management.get_application_sessions(1, profile=pid, state="closed", _headers=wait)
    assert [(s.integration_id, s.total, s.profileintegrationid) for s in listed.data] == [(sid, 20, pid)]
    one = management.get_application_session(1, listed.data[0].id)
    assert (one.integration_id, one.state, one.cart_items[0].sku) == (sid, "closed", "a")
    customer = httpx.get(f"{server.url}/v1/applications/1/customers/{pid}", headers={**AUTH, **wait}).json()
    assert (customer["closedSessions"], customer["totalSales"]) == (1, 20)


def test_projections_report_their_state_and_rebuild_while_serving(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi, server: Server
) -> None:
    pid, _, position = shop(integration, management)
    wait = {"Rulestream-Min-Position": str(position)}
    before = management.get_application_events_without_total_count(1, profile=pid, _headers=wait)
    listed = httpx.get(f"{server.url}/v1/projections", headers=AUTH).json()["data"]
    events_log = next(p for p in listed if p["name"] == "events_log")
    assert {p["name"] for p in listed} >= {"events_log", "sessions", "profiles", "loyalty", "effects"}
    assert events_log["state"] in ("live", "rebuilding") and events_log["checkpoint"] >= position

    started = httpx.post(f"{server.url}/v1/projections/events_log/rebuild", headers=AUTH)
    assert started.status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = next(p for p in httpx.get(f"{server.url}/v1/projections", headers=AUTH).json()["data"]
                   if p["name"] == "events_log")  # fmt: skip
        assert management.get_application_events_without_total_count(1, profile=pid).data == before.data
        if now["state"] == "live" and now["generation"] > events_log["generation"]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the rebuild did not switch over")
    assert management.get_application_events_without_total_count(1, profile=pid).data == before.data
    assert "rulestream_follower_checkpoint" in httpx.get(f"{server.url}/metrics").text


def test_effects_export_as_csv(server: Server) -> None:
    answer = httpx.get(f"{server.url}/v1/applications/1/export_effects", headers=AUTH, params={"dateFormat": "excel"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    header = next(csv.reader(io.StringIO(answer.text)))
    assert header[:6] == ["applicationid", "campaignid", "couponid", "created", "event_type", "eventid"]


def test_bad_query_parameters_are_400_not_500(server: Server) -> None:
    url = f"{server.url}/v1/applications/1/events/no_total"
    for params in ({"attributesQuery": "[1]"}, {"createdAfter": "yesterday"}, {"sort": "type"}, {"pageSize": 1001}):
        assert httpx.get(url, headers=AUTH, params=params).status_code == 400, params
    assert httpx.get(f"{server.url}/v1/applications/2/events/no_total", headers=AUTH).status_code == 404
    assert httpx.post(f"{server.url}/v1/projections/nothing/rebuild", headers=AUTH).status_code == 404


def test_a_read_model_404_carries_its_checkpoint(server: Server) -> None:
    headers = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    for path in ["/v1/applications/1/sessions/no-such-session", "/v1/applications/1/customers/no-such-customer",
                 "/v1/applications/1/customers/no-such-customer/ledger"]:  # fmt: skip
        missing = httpx.get(f"{server.url}{path}", headers=headers)
        assert missing.status_code == 404 and int(missing.headers["Rulestream-Checkpoint"]) >= 0, path
        assert missing.json()["errors"][0]["title"] == "Not found"
