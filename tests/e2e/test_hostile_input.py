"""Input a client should not send: too large, too many, malformed — answered 400/413, never 500, nothing written."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import INTEGRATION_KEY, Server

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
