"""The audit API over HTTP: auditor and management keys may read the trail, integration keys may not."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
import talon_one

from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server


@pytest.fixture(scope="module")
def auditor_key(server: Server) -> str:
    """A key of role auditor, made the way an operator makes one: ``rulestream keys create``."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "keys",
            "create",
            "--role",
            "auditor",
            "--name",
            f"auditor-{uuid.uuid4().hex[:6]}",
        ],
        env={**os.environ, "DATABASE_URL": server.database_url},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def session_id(integration: talon_one.IntegrationApi) -> str:
    sid = f"audit-{uuid.uuid4().hex[:10]}"
    item = talon_one.CartItem(sku="shoe", price=49.5, quantity=2)
    integration.update_customer_session_v2(
        sid, talon_one.IntegrationRequest(customer_session=talon_one.NewCustomerSessionV2(
            profile_id=f"ada-{sid}", cart_items=[item], state="open"))
    )  # fmt: skip
    integration.update_customer_session_v2(
        sid, talon_one.IntegrationRequest(customer_session=talon_one.NewCustomerSessionV2(state="closed"))
    )
    return sid


def get(
    server: Server, path: str, key: str, scheme: str = "ManagementKey-v1", **params: Any
) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {key}"} if key else {}
    return httpx.get(server.url + path, params=params, headers=headers, timeout=30)


@pytest.mark.parametrize("who", ["auditor", "management"])
def test_the_history_of_a_session_lists_its_events_with_their_requests(
    server: Server, session_id: str, auditor_key: str, who: str
) -> None:
    key = auditor_key if who == "auditor" else MANAGEMENT_KEY
    answer = get(server, f"/v1/audit/sessions/{session_id}/history", key)
    assert answer.status_code == 200, answer.text
    entries = answer.json()["data"]
    assert [e["type"] for e in entries] == ["talon_session_created", "talon_session_closed"]
    assert [e["version"] for e in entries] == [1, 2]
    assert all(e["keyName"] == "seed-integration" and e["correlationId"] for e in entries)
    assert all(len(e["hash"]) == 64 and isinstance(e["effects"], list) for e in entries)


def test_the_history_of_a_profile_starts_with_its_registration(server: Server, session_id: str) -> None:
    answer = get(server, f"/v1/audit/profiles/ada-{session_id}/history", MANAGEMENT_KEY, limit=1)
    body = answer.json()
    assert body["hasMore"] and body["data"][0]["type"] == "CustomerProfile.Registered"


def test_the_state_as_of_a_version_or_a_moment_is_the_session_then(server: Server, session_id: str) -> None:
    first = get(server, f"/v1/audit/sessions/{session_id}/state", MANAGEMENT_KEY, version=1).json()
    assert first["version"] == 1 and first["customerSession"]["state"] == "open"
    assert first["customerSession"]["total"] == 99
    history = get(server, f"/v1/audit/sessions/{session_id}/history", MANAGEMENT_KEY).json()["data"]
    at = get(
        server, f"/v1/audit/sessions/{session_id}/state", MANAGEMENT_KEY, at=history[1]["recordedAt"]
    ).json()
    assert at["version"] == 2 and at["customerSession"]["state"] == "closed"
    before = get(server, f"/v1/audit/sessions/{session_id}/state", MANAGEMENT_KEY, at="2000-01-01T00:00:00Z")
    assert before.status_code == 404
    both = get(server, f"/v1/audit/sessions/{session_id}/state", MANAGEMENT_KEY)
    assert both.status_code == 400


def test_the_feed_pages_through_the_log_in_order(server: Server, session_id: str, auditor_key: str) -> None:
    first = get(server, "/v1/audit/feed", auditor_key, limit=3).json()
    second = get(server, "/v1/audit/feed", auditor_key, after=first["next"], limit=3).json()
    positions = [e["position"] for e in first["data"] + second["data"]]
    assert positions == sorted(positions) and len(set(positions)) == len(positions) == 6


def test_the_log_verifies(server: Server, session_id: str, auditor_key: str) -> None:
    body = get(server, "/v1/audit/verify", auditor_key).json()
    assert body["ok"] and body["broken"] == [] and body["events"] > 0


@pytest.mark.parametrize(
    "path",
    [
        "/v1/audit/feed",
        "/v1/audit/verify",
        "/v1/audit/sessions/x/history",
        "/v1/audit/profiles/x/history",
        "/v1/audit/sessions/x/state?version=1",
    ],
)
def test_an_integration_key_is_refused(server: Server, path: str) -> None:
    answer = get(server, path, INTEGRATION_KEY, scheme="ApiKey-v1")
    assert answer.status_code == 403
    assert get(server, path, "").status_code == 401


def test_histories_show_the_points_booked_and_evaluations_name_their_cause(
    server: Server, integration: talon_one.IntegrationApi
) -> None:
    tag = uuid.uuid4().hex[:8]
    payload = {"value": "gold", "s": "5", "n": 5}
    rule = httpx.post(f"{server.url}/v1/rules", headers={"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}, json={
        "name": f"audit points {tag}", "trigger": ["talon_session_created", "talon_session_updated"],
        "condition": {"cartItems": {"attr": "sku", "op": "eq", "value": f"sku-{tag}"}, "count": {"op": "gte", "value": 1}},
        "effects": [{"effectType": "addLoyaltyPoints", "props": {"name": "pts", "value": 7.5}},
                    {"effectType": "customEffect", "props": {"name": "c", "payload": payload}}],
    })  # fmt: skip
    assert rule.status_code == 201, rule.text
    sid, pid = f"audit-{tag}", f"audit-p-{tag}"
    item = talon_one.CartItem(sku=f"sku-{tag}", price=10, quantity=1)
    opened = integration.update_customer_session_v2(sid, talon_one.IntegrationRequest(
        customer_session=talon_one.NewCustomerSessionV2(profile_id=pid, cart_items=[item])))  # fmt: skip
    assert [e.props["payload"] for e in opened.effects if e.effect_type == "customEffect"] == [payload]
    integration.update_customer_session_v2(sid, talon_one.IntegrationRequest(
        customer_session=talon_one.NewCustomerSessionV2(profile_id=pid, state="closed", cart_items=[item])))  # fmt: skip

    entries = get(server, f"/v1/audit/sessions/{sid}/history", MANAGEMENT_KEY).json()["data"]
    created, closed = entries
    points = next(e for e in created["effects"] if e["effectType"] == "addLoyaltyPoints")
    assert points["props"]["value"] == 7.5 and points["ruleId"] == rule.json()["id"]
    assert created["ledger"] == []
    assert [(b["profileId"], b["amount"], b["reason"]) for b in closed["ledger"]] == [(pid, 7.5, "addLoyaltyPoints")]

    feed = get(server, "/v1/audit/feed", MANAGEMENT_KEY, after=created["position"] - 1, limit=20).json()["data"]
    evaluation = next(e for e in feed if e["type"] == "Evaluation.Evaluated")
    assert evaluation["causationId"] == str(created["position"])
    assert evaluation["correlationId"] == created["correlationId"]

    missing = get(server, "/v1/audit/sessions/no-such-session/history", MANAGEMENT_KEY)
    assert missing.status_code == 404 and "no-such-session" in missing.json()["message"]
