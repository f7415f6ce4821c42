"""The abandoned-cart reminder end to end: a delayed rule, the server's real clock and timer, and a webhook
receiver on 127.0.0.1 that gets the signed effect (or nothing, when the session closed in between).

The rule's delay is ``PT2S``: short enough for a test, and the sessions are closed right after the event. The
cancel test does not rely on how long anything takes to know that nothing came: it waits for a later reminder of
the same profile, and deliveries of one profile arrive in log order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import talon_one

from tests.builders import declare
from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server
from tests.receiver import Delivery, Receiver

SECRET = "e2e-webhook-secret-0123456789"
HEADERS = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def add_to_cart(server: Server, management: talon_one.ManagementApi) -> str:
    """An ``add_to_cart_<tag>`` event type and the reminder rule: 2 s after it, unless the session closed."""
    name = f"add_to_cart_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "sku", "string", event_type=name)
    rule = {
        "name": f"complete your order {name}",
        "trigger": [name],
        "delay": {"after": "PT2S", "cancelIf": ["talon_session_closed"]},
        "effects": [{"effectType": "showNotification",
                     "props": {"notificationType": "Offer", "title": "Your cart", "body": "Complete your order"}}],
    }  # fmt: skip
    response = httpx.post(f"{server.url}/v1/rules", json=rule, headers=HEADERS)
    assert response.status_code == 201, response.text
    return name


@pytest.fixture
def webhook(server: Server, request: pytest.FixtureRequest) -> Iterator[tuple[Receiver, int]]:
    """A receiver (``fail_first`` from the test's ``parametrize``, else 0) registered for notifications."""
    receiver = Receiver.start(fail_first=getattr(request, "param", 0))
    body = {"url": receiver.url, "effectTypes": ["showNotification"], "secret": SECRET}
    response = httpx.post(f"{server.url}/v1/webhooks", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    webhook_id = response.json()["id"]
    yield receiver, webhook_id
    assert httpx.delete(f"{server.url}/v1/webhooks/{webhook_id}", headers=HEADERS).status_code == 204
    receiver.stop()


def add_item(
    server: Server, integration: talon_one.IntegrationApi, event_type: str, pid: str, *, close: bool
) -> str:
    sid = new_id("s")
    session = talon_one.NewCustomerSessionV2(
        profile_id=pid, state="open", cart_items=[talon_one.CartItem(sku="shoe", price=30, quantity=1)]
    )
    integration.update_customer_session_v2(sid, talon_one.IntegrationRequest(customer_session=session))
    # ``sessionId`` binds the event to the session: Rulestream's extension, which the SDK's model does not carry.
    event = {"profileId": pid, "sessionId": sid, "type": event_type, "attributes": {"sku": "shoe"}}
    tracked = httpx.post(
        f"{server.url}/v2/events", json=event, headers={"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}
    )
    assert tracked.status_code == 200, tracked.text
    if close:
        session.state = "closed"
        integration.update_customer_session_v2(sid, talon_one.IntegrationRequest(customer_session=session))
    return sid


def of_profile(receiver: Receiver, pid: str, count: int) -> list[Delivery]:
    """The deliveries about profile ``pid``, once ``count`` of them have arrived."""
    return receiver.wait_for(count, lambda d: bool(d.body["cause"]["profileId"] == pid))


def test_an_abandoned_cart_gets_a_signed_reminder(
    server: Server, integration: talon_one.IntegrationApi, add_to_cart: str, webhook: tuple[Receiver, int]
) -> None:
    receiver, _ = webhook
    pid = new_id("p")
    sid = add_item(server, integration, add_to_cart, pid, close=False)
    (delivery,) = of_profile(receiver, pid, 1)
    assert delivery.signed_by(SECRET)
    body: dict[str, Any] = delivery.body
    assert body["effect"]["effectType"] == "showNotification"
    assert body["effect"]["props"]["title"] == "Your cart"
    assert (body["cause"]["sessionId"], body["cause"]["type"]) == (sid, "rulestream_delay_came_due")


def test_a_cart_closed_within_the_delay_gets_no_reminder(
    server: Server, integration: talon_one.IntegrationApi, add_to_cart: str, webhook: tuple[Receiver, int]
) -> None:
    receiver, _ = webhook
    pid = new_id("p")
    add_item(server, integration, add_to_cart, pid, close=True)
    later = add_item(server, integration, add_to_cart, pid, close=False)
    deliveries = of_profile(receiver, pid, 1)
    assert [d.body["cause"]["sessionId"] for d in deliveries] == [later]


@pytest.mark.parametrize("webhook", [3], indirect=True)
def test_a_receiver_failing_three_times_gets_each_reminder_once_in_order(
    server: Server, integration: talon_one.IntegrationApi, add_to_cart: str, webhook: tuple[Receiver, int]
) -> None:
    receiver, webhook_id = webhook
    pid = new_id("p")
    first = add_item(server, integration, add_to_cart, pid, close=False)
    second = add_item(server, integration, add_to_cart, pid, close=False)
    deliveries = of_profile(receiver, pid, 2)
    assert receiver.refused == 3
    assert [d.body["cause"]["sessionId"] for d in deliveries] == [first, second]

    listed = httpx.get(f"{server.url}/v1/webhooks/{webhook_id}/deliveries", headers=HEADERS).json()["data"]
    mine = sorted((d for d in listed if d["cause"]["profileId"] == pid), key=lambda d: d["id"])
    assert [(d["status"], d["attempts"]) for d in mine] == [("delivered", 4), ("delivered", 1)]
    assert [a["status"] for a in mine[0]["history"]] == [503, 503, 503, 204]
    first_page = httpx.get(f"{server.url}/v1/webhooks/{webhook_id}/deliveries", params={"limit": 1},
                           headers=HEADERS).json()  # fmt: skip
    assert first_page["totalResultSize"] == len(listed) and first_page["hasMore"] is (len(listed) > 1)
    older = httpx.get(f"{server.url}/v1/webhooks/{webhook_id}/deliveries", headers=HEADERS,
                      params={"limit": 1000, "before": first_page["data"][0]["id"]}).json()["data"]  # fmt: skip
    assert [d["id"] for d in first_page["data"] + older] == [d["id"] for d in listed]

    retried = httpx.post(
        f"{server.url}/v1/webhooks/{webhook_id}/deliveries/{mine[1]['id']}/retry", headers=HEADERS
    )
    assert retried.status_code == 202, retried.text
    again = of_profile(receiver, pid, 3)
    assert again[2].body["deliveryId"] == mine[1]["id"]


def test_the_feed_lists_the_reminder_with_its_cause(
    server: Server, integration: talon_one.IntegrationApi, add_to_cart: str, webhook: tuple[Receiver, int]
) -> None:
    receiver, _ = webhook
    pid = new_id("p")
    add_item(server, integration, add_to_cart, pid, close=False)
    (delivery,) = of_profile(receiver, pid, 1)
    after, found = 0, []
    while True:
        page = httpx.get(
            f"{server.url}/v1/effects/feed", params={"after": after, "limit": 50}, headers=HEADERS
        ).json()
        found += [e for e in page["data"] if e["cause"]["profileId"] == pid]
        after = page["after"]
        if not page["hasMore"]:
            break
    assert [(e["effectType"], e["position"]) for e in found] == [
        ("showNotification", delivery.body["position"])
    ]


def test_a_rule_naming_a_webhook_that_is_not_registered_is_refused(server: Server) -> None:
    name = new_id("crm")
    rule = {"name": f"hook {name}", "trigger": ["talon_session_closed"],
            "effects": [{"effectType": "showNotification", "props": {"notificationType": "Info", "title": "t", "body": "b"}},
                        {"effectType": "triggerWebhook", "props": {"webhook": name}}]}  # fmt: skip
    refused = httpx.post(f"{server.url}/v1/rules", json=rule, headers=HEADERS)
    assert refused.status_code == 400, refused.text
    assert [e["source"]["pointer"] for e in refused.json()["errors"]] == ["/effects/1/props/webhook"]
    registered = httpx.post(f"{server.url}/v1/webhooks", headers=HEADERS,
                            json={"url": "http://127.0.0.1:9/", "secret": SECRET, "name": name})  # fmt: skip
    assert registered.status_code == 201, registered.text
    rule["enabled"] = False  # accepted now; disabled: it must not fire on other tests' sessions
    assert httpx.post(f"{server.url}/v1/rules", json=rule, headers=HEADERS).status_code == 201
    httpx.delete(f"{server.url}/v1/webhooks/{registered.json()['id']}", headers=HEADERS)


def test_a_webhook_named_like_an_id_or_asking_for_unknown_effects_is_refused(server: Server) -> None:
    for body, pointer in [({"name": "7"}, "/name"), ({"effectTypes": ["setDiscount", "bogus"]}, "/effectTypes/1")]:
        answer = httpx.post(f"{server.url}/v1/webhooks", headers=HEADERS,
                            json={"url": "http://127.0.0.1:9/", "secret": SECRET, **body})  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"][0]["source"]["pointer"] == pointer
