"""Idempotency-Key on writes: one set of events for any number of identical requests, 409 for another body."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import INTEGRATION_KEY, Server

HEADERS = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}


def test_a_hundred_concurrent_identical_requests_record_once_and_answer_alike(server: Server) -> None:
    sid, key = f"s-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    body = {"customerSession": {"profileId": f"p-{sid}", "cartItems": [{"sku": "a", "price": 1, "quantity": 1}]},
            "responseContent": ["customerSession"]}  # fmt: skip
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(
            lambda _: client.put(f"{server.url}/v2/customer_sessions/{sid}", json=body,
                                 headers={**HEADERS, "Idempotency-Key": key}),
            range(100),
        ))  # fmt: skip
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    session = httpx.get(f"{server.url}/v2/customer_sessions/{sid}", headers=HEADERS).json()["customerSession"]
    assert session["updateCount"] == 1


def test_a_key_reused_with_another_body_is_a_conflict(server: Server) -> None:
    sid, key = f"s-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    url = f"{server.url}/v2/customer_sessions/{sid}"
    first = httpx.put(url, json={"customerSession": {}}, headers={**HEADERS, "Idempotency-Key": key})
    assert first.status_code == 200
    other = httpx.put(url, json={"customerSession": {"state": "closed"}}, headers={**HEADERS, "Idempotency-Key": key})
    assert other.status_code == 409
    assert other.json()["errors"][0]["source"]["parameter"] == "Idempotency-Key"


def test_an_overlong_key_is_refused(server: Server) -> None:
    response = httpx.put(
        f"{server.url}/v2/customer_sessions/x", json={"customerSession": {}},
        headers={**HEADERS, "Idempotency-Key": "k" * 256},
    )  # fmt: skip
    assert response.status_code == 400


def test_the_same_body_serialised_otherwise_is_the_same_request(server: Server) -> None:
    sid, key = f"s-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    url, headers = f"{server.url}/v2/customer_sessions/{sid}", {**HEADERS, "Idempotency-Key": key,
                                                                "content-type": "application/json"}  # fmt: skip
    first = httpx.put(url, content=b'{"customerSession": {"profileId": "a", "state": "open", "cartItems": '
                      b'[{"sku": "x", "price": 10, "quantity": 1}]}}', headers=headers)  # fmt: skip
    again = httpx.put(url, content=b'{ "customerSession" :{"state":"open",\n "profileId":"a", "cartItems": '
                      b'[{"quantity": 1, "price": 10.0, "sku": "x"}]} }', headers=headers)  # fmt: skip
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content


def test_a_refused_request_may_be_corrected_and_sent_again_under_its_key(server: Server) -> None:
    sid, key = f"s-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    url, headers = f"{server.url}/v2/customer_sessions/{sid}", {**HEADERS, "Idempotency-Key": key}
    wrong = {"customerSession": {"cartItems": [{"sku": "a", "price": 1, "quantity": 0}]}}
    assert httpx.put(url, json=wrong, headers=headers).status_code == 400
    right = {"customerSession": {"cartItems": [{"sku": "a", "price": 1, "quantity": 1}]}}
    corrected = httpx.put(url, json=right, headers=headers)
    assert corrected.status_code == 200 and "idempotent-replayed" not in corrected.headers
    assert httpx.put(url, json=right, headers=headers).headers["idempotent-replayed"] == "true"
