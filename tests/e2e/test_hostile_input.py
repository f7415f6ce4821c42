"""Input a client should not send: too large, too many, malformed — answered 400/413, never 500, nothing written."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server

HEADERS = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}


def put_session(server: Server, body: object, **kwargs: object) -> httpx.Response:
    return httpx.put(f"{server.url}/v2/customer_sessions/h-{uuid.uuid4().hex[:8]}", json=body, headers=HEADERS,
                     timeout=30, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def test_a_body_over_the_size_limit_answers_413(server: Server) -> None:
    response = httpx.put(
        f"{server.url}/v2/customer_sessions/big", content=b'{"x": "' + b"a" * (3 * 1024 * 1024) + b'"}',
        headers={**HEADERS, "content-type": "application/json"}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 413
    assert response.json()["message"]


def test_more_than_a_thousand_cart_items_are_refused(server: Server) -> None:
    items = [{"sku": f"s{i}", "price": 1, "quantity": 1} for i in range(1001)]
    response = put_session(server, {"customerSession": {"cartItems": items}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == "/customerSession/cartItems"


def test_more_than_ten_thousand_units_are_refused(server: Server) -> None:
    items = [{"sku": f"s{i}", "price": 1, "quantity": 5000} for i in range(3)]
    assert put_session(server, {"customerSession": {"cartItems": items}}).status_code == 400


def test_wrong_types_everywhere_are_400_with_pointers(server: Server) -> None:
    for body, pointer in [
        ({"customerSession": {"cartItems": [{"sku": "a", "price": "free", "quantity": 1}]}},
         "/customerSession/cartItems/0/price"),
        ({"customerSession": {"cartItems": [{"sku": "a", "price": 1, "quantity": True}]}},
         "/customerSession/cartItems/0/quantity"),
        ({"customerSession": {"state": "exploded"}}, "/customerSession/state"),
        ({"customerSession": {"couponCodes": "not-a-list"}}, "/customerSession/couponCodes"),
        ({"customerSession": []}, "/customerSession"),
        ([], "/"),
    ]:  # fmt: skip
        response = put_session(server, body)
        assert response.status_code == 400, (body, response.text)
        assert pointer in [e["source"].get("pointer") for e in response.json()["errors"]], (body, response.text)


def test_nonsense_query_parameters_are_400_not_500(server: Server) -> None:
    response = put_session(server, {"customerSession": {}}, params={"dry": "perhaps"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["parameter"] == "dry"


MANAGEMENT = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}


def raw_post(server: Server, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", content=body, timeout=30,
                      headers={**headers, "content-type": "application/json"})  # fmt: skip


def test_a_number_more_precise_than_a_number_holds_is_refused_at_its_pointer(server: Server) -> None:
    session = f"h-{uuid.uuid4().hex[:8]}"
    for price in ["18446744073709551616", "0.1000000000000000055511", "12345678901234.5678"]:
        body = '{"customerSession": {"profileId": "hp", "cartItems": [{"sku": "a", "price": %s, "quantity": 1}]}}'
        response = httpx.put(f"{server.url}/v2/customer_sessions/{session}", content=(body % price).encode(),
                             headers={**HEADERS, "content-type": "application/json"}, timeout=30)  # fmt: skip
        assert response.status_code == 400, (price, response.text)
        error = response.json()["errors"][0]
        assert error["title"] == "Number too precise"
        assert error["source"]["pointer"] == "/customerSession/cartItems/0/price"
    assert httpx.get(f"{server.url}/v2/customer_sessions/{session}", headers=HEADERS).status_code == 404


def test_a_lone_surrogate_in_a_string_or_a_name_is_refused_at_its_pointer(server: Server) -> None:
    profile = f"hs-{uuid.uuid4().hex[:8]}"
    response = raw_post(server, "/v2/events", b'{"profileId": "%s", "type": "x", "attributes": {"c": "a\\ud800b", '
                        b'"\\udfff": 1, "fine": "\\ud83d\\ude00"}}' % profile.encode(), HEADERS)  # fmt: skip
    assert response.status_code == 400, response.text
    pointers = [e["source"]["pointer"] for e in response.json()["errors"]]
    assert pointers == ["/attributes/c", "/attributes/\\udfff"]
    log = httpx.get(f"{server.url}/v1/applications/1/events/no_total", params={"profile": profile},
                    headers=MANAGEMENT).json()  # fmt: skip
    assert log["data"] == []


def test_large_amounts_and_rule_numbers_are_answered_exactly(server: Server, management: object) -> None:
    """Numbers short in digits but beyond 64 bits (a total of large prices, a rule's 1e18) are accepted, and every
    answer that carries them reads back through the SDK."""
    import talon_one

    rule = {"name": f"big-{uuid.uuid4().hex[:6]}", "trigger": ["talon_session_created"], "priority": 10**20,
            "condition": {"attr": "session.total", "op": "gt", "value": 1e18},
            "effects": [{"effectType": "setDiscount",
                         "props": {"name": "big", "value": {"mul": [{"attr": "session.total"}, 10**15]}}}]}  # fmt: skip
    created = httpx.post(f"{server.url}/v1/rules", json=rule, headers=MANAGEMENT, timeout=30)
    assert created.status_code == 201, created.text
    rule_id = created.json()["id"]
    try:
        assert httpx.get(f"{server.url}/v1/rules/{rule_id}", headers=MANAGEMENT).json()["priority"] == 10**20
        session, profile = f"h-{uuid.uuid4().hex[:8]}", f"hb-{uuid.uuid4().hex[:8]}"
        items = [{"sku": "gold", "price": 999999999999999, "quantity": 5000}] * 2
        integration = talon_one.IntegrationApi(management.api_client.__class__(  # type: ignore[attr-defined]
            talon_one.Configuration(host=server.url, api_key={"api_key_v1": INTEGRATION_KEY},
                                    api_key_prefix={"api_key_v1": "ApiKey-v1"})))  # fmt: skip
        state = integration.update_customer_session_v2(session, talon_one.IntegrationRequest(
            customer_session=talon_one.NewCustomerSessionV2(profile_id=profile, cart_items=items),
            response_content=["customerSession", "customerProfile"]))  # fmt: skip
        assert state.customer_session.total == 9999999999999990000
        assert [e.props["value"] for e in state.effects] == [9999999999999990000 * 10**15]
        assert httpx.get(f"{server.url}/v2/customer_sessions/{session}", headers=HEADERS).status_code == 200
        for path in ["/v1/applications/1/sessions", f"/v1/audit/sessions/{session}/history", "/v1/effects/feed",
                     "/v1/applications/1/events/no_total"]:  # fmt: skip
            response = httpx.get(f"{server.url}{path}", headers=MANAGEMENT, timeout=30)
            assert response.status_code == 200, (path, response.text)
    finally:
        httpx.post(f"{server.url}/v1/rules/{rule_id}/disable", headers=MANAGEMENT, timeout=30)


def test_listing_parameters_past_what_a_query_takes_are_400(server: Server) -> None:
    deep, deeper = "[" * 900 + "]" * 900, "[" * 5000 + "]" * 5000
    for path, params in [("/v1/applications/1/events/no_total", {"skip": str(2**63)}),
                         ("/v1/applications/1/sessions", {"skip": str(2**63)}),
                         ("/v1/applications/1/events/no_total", {"attributesQuery": f'{{"a": {deep}}}'}),
                         ("/v1/applications/1/events/no_total", {"attributesQuery": f'{{"a": {deeper}}}'})]:  # fmt: skip
        response = httpx.get(f"{server.url}{path}", params=params, headers=MANAGEMENT, timeout=30)
        assert response.status_code == 400, (path, params, response.text[:300])
        assert response.json()["errors"][0]["source"]["parameter"] in params


def test_a_body_that_is_not_json_is_400_at_the_root(server: Server) -> None:
    response = httpx.put(f"{server.url}/v2/customer_sessions/x", content=b'{"customerSession": {',
                         headers={**HEADERS, "content-type": "application/json"})  # fmt: skip
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["title"] == "Invalid JSON" and error["source"] == {"pointer": "/"}
    assert "character" in error["details"]


def test_an_attributes_query_holding_nul_or_a_lone_surrogate_is_400(server: Server) -> None:
    for query in ['{"n": "\\u0000"}', '{"\\u0000": 1}', '{"n": "\\ud800"}', '{"n": {"m": ["\\udfff"]}}']:
        response = httpx.get(f"{server.url}/v1/applications/1/events/no_total", headers=MANAGEMENT,
                             params={"attributesQuery": query}, timeout=30)  # fmt: skip
        assert response.status_code == 400, (query, response.text)
        assert response.json()["errors"][0]["source"]["parameter"] == "attributesQuery"


def test_a_price_computed_in_floating_point_is_taken_as_sent(server: Server) -> None:
    body = b'{"customerSession": {"cartItems": [{"sku": "a", "price": 0.30000000000000004, "quantity": 1}, ' \
           b'{"sku": "b", "price": 30.000000000000004, "quantity": 2}]}}'  # fmt: skip
    response = httpx.put(f"{server.url}/v2/customer_sessions/h-{uuid.uuid4().hex[:8]}", content=body,
                         headers={**HEADERS, "content-type": "application/json"}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["customerSession"]["cartItemTotal"] == 60.30000000000001  # 60.300000000000008 exactly
