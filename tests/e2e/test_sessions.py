"""Customer sessions through the official Talon.One SDK."""

from __future__ import annotations

import uuid

import pytest
import talon_one
from talon_one.exceptions import ApiException


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def session_request(profile: str, state: str = "open", items=None, **extra):  # type: ignore[no-untyped-def]
    items = items if items is not None else [talon_one.CartItem(sku="shoe", name="Shoe", price=49.5, quantity=2)]
    return talon_one.IntegrationRequest(
        customer_session=talon_one.NewCustomerSessionV2(profile_id=profile, state=state, cart_items=items, **extra),
        response_content=["customerSession", "customerProfile", "event"],
    )


def test_a_session_is_created_updated_and_closed_through_the_sdk(integration: talon_one.IntegrationApi) -> None:
    sid, pid = new_id("s"), new_id("p")
    created = integration.update_customer_session_v2(sid, session_request(pid))
    assert created.customer_session.state == "open"
    assert created.customer_session.total == 99
    assert created.event.type == "talon_session_created"
    assert created.effects == []

    items = [talon_one.CartItem(sku="shoe", price=49.5, quantity=2), talon_one.CartItem(sku="sock", price=0.1, quantity=3)]
    updated = integration.update_customer_session_v2(
        sid, session_request(pid, items=items, additional_costs={"shipping": talon_one.AdditionalCost(price=4.9)})
    )
    assert updated.event.type == "talon_session_updated"
    assert updated.customer_session.cart_item_total == pytest.approx(99.3)
    assert updated.customer_session.total == pytest.approx(104.2)
    assert updated.customer_session.update_count == 2

    closed = integration.update_customer_session_v2(sid, session_request(pid, state="closed", items=items))
    assert closed.customer_session.state == "closed"
    assert closed.event.type == "talon_session_closed"
    assert closed.customer_profile.closed_sessions == 1
    assert closed.customer_profile.total_sales == pytest.approx(104.2)

    fetched = integration.get_customer_session(sid)
    assert fetched.customer_session.state == "closed"


def test_an_illegal_transition_is_refused_with_400_naming_both_states(integration: talon_one.IntegrationApi) -> None:
    sid, pid = new_id("s"), new_id("p")
    integration.update_customer_session_v2(sid, session_request(pid, state="closed"))
    with pytest.raises(ApiException) as refused:
        integration.update_customer_session_v2(sid, session_request(pid, state="closed"))
    assert refused.value.status == 400
    assert "'closed' to 'closed'" in refused.value.body


def test_revoking_and_reopening_take_the_sale_out_of_the_profile(integration: talon_one.IntegrationApi) -> None:
    pid = new_id("p")
    first, second = new_id("s"), new_id("s")
    integration.update_customer_session_v2(first, session_request(pid, state="closed"))
    integration.update_customer_session_v2(second, session_request(pid, state="closed"))
    revoked = integration.update_customer_session_v2(first, session_request(pid, state="cancelled"))
    assert revoked.event.type == "talon_session_revoked"
    assert (revoked.customer_profile.closed_sessions, revoked.customer_profile.total_sales) == (1, 99)
    reopened = integration.reopen_customer_session(second)
    assert reopened.effects == []
    state = integration.update_customer_session_v2(second, session_request(pid))
    assert state.customer_session.state == "open"
    assert (state.customer_profile.closed_sessions, state.customer_profile.total_sales) == (0, 0)


def test_partial_returns_keep_quantities_and_reduce_sales(integration: talon_one.IntegrationApi) -> None:
    sid, pid = new_id("s"), new_id("p")
    items = [talon_one.CartItem(sku="a", price=10, quantity=3), talon_one.CartItem(sku="b", price=5, quantity=1)]
    integration.update_customer_session_v2(sid, session_request(pid, state="closed", items=items))
    returned = integration.return_cart_items(
        sid,
        talon_one.ReturnIntegrationRequest(
            var_return=talon_one.NewReturn(returned_cart_items=[talon_one.ReturnedCartItem(position=0, quantity=2)]),
            response_content=["customerSession", "customerProfile"],
        ),
    )
    line = returned.customer_session.cart_items[0]
    assert returned.customer_session.state == "partially_returned"
    assert (line.returned_quantity, line.remaining_quantity) == (2, 1)
    assert returned.customer_profile.total_sales == 15
    with pytest.raises(ApiException) as refused:
        integration.return_cart_items(
            sid,
            talon_one.ReturnIntegrationRequest(
                var_return=talon_one.NewReturn(returned_cart_items=[talon_one.ReturnedCartItem(position=0, quantity=5)])
            ),
        )
    assert refused.value.status == 400
    assert "/return/returnedCartItems/0/quantity" in refused.value.body


def test_a_dry_update_records_nothing(integration: talon_one.IntegrationApi) -> None:
    sid, pid = new_id("s"), new_id("p")
    dry = integration.update_customer_session_v2(sid, session_request(pid, state="closed"), dry=True)
    assert dry.customer_session.state == "closed"
    with pytest.raises(ApiException) as missing:
        integration.get_customer_session(sid)
    assert missing.value.status == 404


def test_a_bad_cart_item_is_refused_with_a_pointer(integration: talon_one.IntegrationApi, server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from tests.conftest import INTEGRATION_KEY

    response = httpx.put(
        f"{server.url}/v2/customer_sessions/{new_id('s')}",
        json={"customerSession": {"cartItems": [{"sku": "a", "price": 1, "quantity": 0}]}},
        headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == "/customerSession/cartItems/0/quantity"


def test_parallel_updates_of_one_session_all_succeed(server) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.conftest import INTEGRATION_KEY

    sid = new_id("s")
    url = f"{server.url}/v2/customer_sessions/{sid}"
    headers = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}

    def put(n: int) -> int:
        body = {"customerSession": {"cartItems": [{"sku": f"k{n}", "price": 1, "quantity": 1}]}}
        return httpx.put(url, json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(put, range(20)))
    assert statuses == [200] * 20
    session = httpx.get(url, headers=headers).json()["customerSession"]
    assert session["updateCount"] == 20


def test_a_refused_reopen_or_return_points_at_what_the_request_holds(integration: talon_one.IntegrationApi) -> None:
    import json

    sid = new_id("s")
    integration.update_customer_session_v2(sid, session_request(new_id("p")))
    with pytest.raises(ApiException) as reopened:
        integration.reopen_customer_session(sid)
    (error,) = json.loads(reopened.value.body)["errors"]
    assert reopened.value.status == 400 and error["source"] == {} and "'open' to 'open'" in error["details"]
    returned = talon_one.ReturnIntegrationRequest.from_dict({"return": {"returnedCartItems": [{"position": 0}]}})
    with pytest.raises(ApiException) as refused:
        integration.return_cart_items(sid, returned)
    assert json.loads(refused.value.body)["errors"][0]["source"] == {"pointer": "/return"}


def test_ids_with_a_slash_work_through_the_sdk(integration: talon_one.IntegrationApi) -> None:
    sid, pid = f"orders/{new_id('s')}/cart", f"team/{new_id('p')}"
    created = integration.update_customer_session_v2(sid, session_request(pid, state="closed"))
    assert created.customer_session.integration_id == sid and created.customer_session.profile_id == pid
    assert integration.get_customer_session(sid).customer_session.state == "closed"
    returned = integration.return_cart_items(sid, talon_one.ReturnIntegrationRequest.from_dict(
        {"return": {"returnedCartItems": [{"position": 0, "quantity": 1}]}}))  # fmt: skip
    assert returned.customer_session.state == "partially_returned"
    reopen_target = f"orders/{new_id('s')}/reopen"  # an id ending like the reopen endpoint is still an id
    integration.update_customer_session_v2(reopen_target, session_request(pid, state="closed"))
    assert integration.get_customer_session(reopen_target).customer_session.state == "closed"
    assert integration.reopen_customer_session(reopen_target).effects == []
    assert integration.get_customer_session(reopen_target).customer_session.state == "open"
    profile = integration.update_customer_profile_v2(pid, talon_one.CustomerProfileIntegrationRequestV2(
        response_content=["customerProfile"]), run_rule_engine=True)  # fmt: skip
    assert profile.customer_profile.integration_id == pid
    import httpx

    from tests.conftest import MANAGEMENT_KEY

    config = integration.api_client.configuration
    history = httpx.get(f"{config.host}/v1/audit/sessions/{sid.replace('/', '%2F')}/history",
                        headers={"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}).json()  # fmt: skip
    assert [e["type"] for e in history["data"]][:2] == ["talon_session_created", "talon_session_closed"]


def test_a_cancel_naming_another_profile_still_takes_the_sale_from_the_owner(
    integration: talon_one.IntegrationApi,
) -> None:
    owner, other, sid = new_id("p"), new_id("p"), new_id("s")
    integration.update_customer_session_v2(sid, session_request(owner, state="closed"))
    revoked = integration.update_customer_session_v2(sid, session_request(other, state="cancelled"))
    assert revoked.customer_session.profile_id == owner and revoked.customer_profile.integration_id == owner
    assert (revoked.customer_profile.closed_sessions, revoked.customer_profile.total_sales) == (0, 0)
