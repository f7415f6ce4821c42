"""The right to be forgotten: ``IntegrationApi.delete_customer_data`` shreds a customer's personal data."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
import talon_one
from talon_one.exceptions import ApiException

from domain.application import profile_id
from domain.base import int_id
from tests.builders import declare
from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server

ERASED = {"erased": True}
MANAGE = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}


def get(server: Server, path: str, **params: Any) -> Any:
    response = httpx.get(server.url + path, params=params, headers=MANAGE, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check: Callable[[], Any]) -> Any:
    """The read models follow the log: wait (bounded) until they show what ``check`` wants."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stored_anywhere(server: Server, text: str) -> bool:
    """Whether the bytes of ``text`` appear in any stored event, sealed or not."""
    with psycopg.connect(server.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM rulestream_events WHERE position(convert_to(%s, 'UTF8') IN state) > 0",
            (text,),
        ).fetchone()
    assert row is not None
    return bool(row[0])


@pytest.fixture(scope="module")
def customer(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> dict[str, str]:
    """A customer with personal attributes, a closed session, custom events on the profile and the session."""
    declare(management, "CustomerProfile", "email")
    declare(management, "Event", "note", event_type="wrote_review")
    pid, sid = f"forget-{uuid.uuid4().hex[:8]}", f"forget-s-{uuid.uuid4().hex[:8]}"
    email, note = f"{pid}@example.com", f"secret note of {pid}"
    integration.update_customer_profile_v2(
        pid, talon_one.CustomerProfileIntegrationRequestV2(attributes={"email": email}), run_rule_engine=True
    )
    item = talon_one.CartItem(sku="shoe", price=20, quantity=1)
    for state in ("open", "closed"):
        integration.update_customer_session_v2(
            sid, talon_one.IntegrationRequest(customer_session=talon_one.NewCustomerSessionV2(
                profile_id=pid, state=state, cart_items=[item]))
        )  # fmt: skip
    integration.track_event_v2(
        talon_one.IntegrationEventV2Request(profile_id=pid, type="wrote_review", attributes={"note": note})
    )
    bound = httpx.post(  # ``sessionId`` is Rulestream's: the SDK's model does not carry it
        f"{server.url}/v2/events", headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}, timeout=30,
        json={"profileId": pid, "sessionId": sid, "type": "wrote_review", "attributes": {"note": note}},
    )  # fmt: skip
    assert bound.status_code == 200, bound.text
    return {"pid": pid, "sid": sid, "email": email, "note": note}


def test_personal_attributes_are_stored_sealed(server: Server, customer: dict[str, str]) -> None:
    assert not stored_anywhere(server, customer["email"])
    assert not stored_anywhere(server, customer["note"])
    history = get(server, f"/v1/audit/profiles/{customer['pid']}/history")["data"]
    assert {"email": customer["email"]} in [e["data"].get("attributes") for e in history]


def test_a_forgotten_customer_keeps_a_countable_verifiable_history_without_personal_data(
    server: Server, customer: dict[str, str], integration: talon_one.IntegrationApi
) -> None:
    pid = customer["pid"]
    before = get(server, f"/v1/audit/profiles/{pid}/history")["data"]
    log_before = eventually(lambda: _events_log(server, pid, expect=5))

    integration.delete_customer_data(pid)

    after = get(server, f"/v1/audit/profiles/{pid}/history")["data"]
    assert len(after) == len(before) + 1
    assert [e["type"] for e in after[:-1]] == [e["type"] for e in before]
    assert all(
        e["data"]["attributes"] in (ERASED, {}) for e in after if "attributes" in e["data"]
    ), after
    assert get(server, "/v1/audit/verify")["ok"] is True
    session = get(server, f"/v1/audit/sessions/{customer['sid']}/history")["data"]
    assert [e["data"]["attributes"] for e in session if e["type"] == "wrote_review"] == [ERASED]

    def erased_in_read_models() -> list[dict[str, Any]]:
        rows = _events_log(server, pid, expect=len(log_before))
        assert all(r["attributes"] == ERASED for r in rows), rows
        profile = get(server, f"/v1/applications/1/customers/{int_id(profile_id(pid))}")
        assert profile["attributes"] == {}, profile
        return rows

    rows = eventually(erased_in_read_models)
    assert [r["type"] for r in rows] == [r["type"] for r in log_before]


def test_forgetting_again_is_harmless_and_an_unknown_customer_is_404(
    server: Server, customer: dict[str, str], integration: talon_one.IntegrationApi
) -> None:
    integration.delete_customer_data(customer["pid"])
    integration.delete_customer_data(customer["pid"])
    with pytest.raises(ApiException) as refused:
        integration.delete_customer_data(f"nobody-{uuid.uuid4().hex}")
    assert refused.value.status == 404


def test_a_forgotten_customer_may_come_back_with_new_data(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    declare(management, "CustomerProfile", "email")
    pid = f"back-{uuid.uuid4().hex[:8]}"
    attributes = lambda email: talon_one.CustomerProfileIntegrationRequestV2(  # noqa: E731
        attributes={"email": email}, response_content=["customerProfile"]
    )
    integration.update_customer_profile_v2(pid, attributes("old@example.com"))
    integration.delete_customer_data(pid)
    answer = integration.update_customer_profile_v2(pid, attributes("new@example.com"), run_rule_engine=True)
    assert answer.customer_profile.attributes == {"email": "new@example.com"}
    history = get(server, f"/v1/audit/profiles/{pid}/history")["data"]
    assert [e["data"].get("attributes") for e in history if "attributes" in e["data"]] == [
        ERASED, {"email": "new@example.com"}
    ]  # fmt: skip


def _events_log(server: Server, pid: str, expect: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = get(server, "/v1/applications/1/events/no_total", profile=pid)["data"]
    assert len(rows) >= expect, rows
    return rows
