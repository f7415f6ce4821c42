"""The attribute catalog end to end: declared through ``talon_one.ManagementApi``, enforced on every write."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import talon_one
from talon_one.exceptions import ApiException

from tests.builders import declare
from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server

MANAGE = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
INTEGRATE = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def error_pointers(error: pytest.ExceptionInfo[ApiException] | httpx.Response) -> list[str]:
    body = (
        error.json()
        if isinstance(error, httpx.Response)
        else httpx.Response(400, text=error.value.body).json()
    )
    return [e["source"].get("pointer") or e["source"].get("parameter") for e in body["errors"]]


def track(integration: talon_one.IntegrationApi, kind: str, attributes: dict[str, Any], **extra: Any) -> Any:
    request = talon_one.IntegrationEventV2Request(
        profile_id=new_id("p"), type=kind, attributes=attributes, **extra
    )
    return integration.track_event_v2(request)


def test_an_event_type_is_created_by_its_first_attribute_and_listed(
    management: talon_one.ManagementApi,
) -> None:
    kind = new_id("page_view")
    url = declare(management, "Event", "url", event_type=kind, description="the page")
    seconds = declare(management, "Event", "seconds", "number", event_type=kind)

    assert isinstance(url, talon_one.Attribute) and url.account_id == 1
    assert (url.entity, url.event_type, url.name, url.title, url.type) == (
        "Event",
        kind,
        "url",
        "url",
        "string",
    )
    assert url.event_type_id is not None and url.event_type_id == seconds.event_type_id >= 100
    assert management.get_attribute(url.id) == url

    listed = management.get_attributes(entity="Event", page_size=1000)
    assert {url.id, seconds.id} <= {a.id for a in listed.data}
    assert listed.total_result_size >= 2
    paged = management.get_attributes(entity="Event", page_size=1, skip=1)
    assert len(paged.data) == 1 and paged.total_result_size == listed.total_result_size

    types = management.get_event_types()
    names = [t.name for t in types.data]
    assert "talon_session_closed" in names and kind in names


def test_event_types_show_their_schema_mode_and_attributes(
    server: Server, management: talon_one.ManagementApi
) -> None:
    kind = new_id("review")
    declare(management, "Event", "stars", "number", event_type=kind)
    response = httpx.get(f"{server.url}/v1/event_types", params={"name": kind}, headers=MANAGE)
    assert response.status_code == 200
    (listed,) = response.json()["data"]
    assert (listed["mode"], listed["builtin"]) == ("strict", False)
    assert [a["name"] for a in listed["attributes"]] == ["stars"]

    changed = httpx.put(f"{server.url}/v1/event_types/{kind}/mode", json={"mode": "discover"}, headers=MANAGE)
    assert changed.status_code == 200 and changed.json()["mode"] == "discover"
    builtin = httpx.put(
        f"{server.url}/v1/event_types/talon_session_closed/mode", json={"mode": "discover"}, headers=MANAGE
    )
    assert builtin.status_code == 404


def test_bad_declarations_are_refused_with_pointers(
    server: Server, management: talon_one.ManagementApi
) -> None:
    kind = new_id("visit")
    declare(management, "Event", "source", event_type=kind)
    with pytest.raises(ApiException) as taken:
        management.create_attribute(
            talon_one.NewAttribute(
                entity="Event", event_type=kind, name="SOURCE", title="Other", type="number",
                description="", suggestions=[], editable=True,
            )
        )  # fmt: skip
    assert taken.value.status == 409
    assert error_pointers(taken) == ["/name"]

    for body, pointer in [
        ({"entity": "Event", "eventType": "talon_mine", "name": "x", "type": "string"}, "/eventType"),
        ({"entity": "Event", "eventType": kind, "name": "1x", "type": "string"}, "/name"),
        ({"entity": "Event", "eventType": kind, "name": "x", "type": "money"}, "/type"),
        ({"entity": "CustomerSession", "name": "total", "type": "number"}, "/name"),
        ({"entity": "Event", "eventType": kind, "name": "x"}, "/type"),
    ]:
        refused = httpx.post(f"{server.url}/v1/attributes", json=body, headers=MANAGE)
        assert refused.status_code == 400, body
        assert error_pointers(refused) == [pointer], body
    wrong_role = httpx.post(
        f"{server.url}/v1/attributes",
        json={"entity": "Event", "name": "x", "type": "string"},
        headers=INTEGRATE,
    )
    assert wrong_role.status_code == 403
    assert httpx.get(f"{server.url}/v1/attributes/999999", headers=MANAGE).status_code == 404


def test_events_are_accepted_as_declared_and_refused_otherwise(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    kind = new_id("page_view")
    declare(management, "Event", "url", event_type=kind)
    declare(management, "Event", "at", "time", event_type=kind)
    accepted = track(
        integration, kind, {"url": "/shoes", "at": "2026-11-22T11:00:00+01:00"}, response_content=[]
    )
    assert accepted.effects == []

    for attributes, pointers in [
        ({"url": 42}, ["/attributes/url"]),
        ({"url": "/a", "referrer": "b"}, ["/attributes/referrer"]),
        ({"at": "yesterday"}, ["/attributes/at"]),
    ]:
        with pytest.raises(ApiException) as refused:
            track(integration, kind, attributes)
        assert refused.value.status == 400
        assert error_pointers(refused) == pointers
    with pytest.raises(ApiException) as unknown:
        track(integration, new_id("undeclared"), {"url": "/a"})
    assert unknown.value.status == 400 and error_pointers(unknown) == ["/type"]


def test_session_and_cart_item_attributes_are_validated_and_numbers_come_back_as_numbers(
    integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    declare(management, "CustomerSession", "shippingFee", "number")
    declare(management, "CartItem", "giftWrap", "boolean")

    def session(attributes: dict[str, Any], item_attributes: dict[str, Any]) -> talon_one.IntegrationRequest:
        item = talon_one.CartItem(sku="shoe", price=10, quantity=1, attributes=item_attributes)
        customer_session = talon_one.NewCustomerSessionV2(cart_items=[item], attributes=attributes)
        return talon_one.IntegrationRequest(
            customer_session=customer_session, response_content=["customerSession"]
        )

    sid = new_id("s")
    stored = integration.update_customer_session_v2(sid, session({"shippingFee": 4.95}, {"giftWrap": True}))
    assert stored.customer_session.attributes == {"shippingFee": 4.95}
    assert stored.customer_session.cart_items[0].attributes == {"giftWrap": True}

    with pytest.raises(ApiException) as refused:
        integration.update_customer_session_v2(
            sid, session({"shippingFee": "free", "coupon": "x"}, {"giftWrap": 1})
        )
    assert refused.value.status == 400
    assert error_pointers(refused) == [
        "/customerSession/attributes/shippingFee",
        "/customerSession/attributes/coupon",
        "/customerSession/cartItems/0/attributes/giftWrap",
    ]


def test_undeclared_profile_attributes_are_refused(integration: talon_one.IntegrationApi) -> None:
    body = talon_one.CustomerProfileIntegrationRequestV2(attributes={"Shoesize": 42})
    with pytest.raises(ApiException) as refused:
        integration.update_customer_profile_v2(new_id("p"), body)
    assert refused.value.status == 400 and error_pointers(refused) == ["/attributes/Shoesize"]


def test_discover_mode_registers_new_attributes_then_enforces_them(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    kind = new_id("review")
    declare(management, "Event", "stars", "number", event_type=kind, schema_mode="discover")
    track(integration, kind, {"stars": 4, "product": "shoe", "tags": ["fit", "colour"]})

    found = {
        a.name: a
        for a in management.get_attributes(entity="Event", page_size=1000).data
        if a.event_type == kind
    }
    assert {n: a.type for n, a in found.items()} == {
        "stars": "number",
        "product": "string",
        "tags": "(list string)",
    }
    raw = httpx.get(f"{server.url}/v1/attributes/{found['product'].id}", headers=MANAGE).json()
    assert raw["discovered"] is True
    with pytest.raises(ApiException) as refused:
        track(integration, kind, {"product": 12})
    assert error_pointers(refused) == ["/attributes/product"]


def test_an_attribute_is_described_and_deprecated_but_keeps_its_identity(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    kind = new_id("visit")
    source = declare(management, "Event", "source", event_type=kind)
    track(integration, kind, {"source": "newsletter"})

    described = talon_one.NewAttribute(
        entity="Event", event_type=kind, name="source", title="Source", type="string",
        description="where the visitor came from", suggestions=["ad", "newsletter"], editable=True,
    )  # fmt: skip
    updated = management.update_attribute(source.id, described)
    assert (updated.title, updated.description) == ("Source", "where the visitor came from")
    assert updated.suggestions == ["ad", "newsletter"]
    renamed = httpx.put(
        f"{server.url}/v1/attributes/{source.id}",
        json={**described.model_dump(mode="json", by_alias=True), "name": "origin"},
        headers=MANAGE,
    )
    assert renamed.status_code == 400 and error_pointers(renamed) == ["/name"]

    deprecated = httpx.post(f"{server.url}/v1/attributes/{source.id}/deprecate", headers=MANAGE)
    assert deprecated.status_code == 200 and deprecated.json()["deprecated"] is True
    assert management.get_attribute(source.id).name == "source"
    track(integration, kind, {"source": "ad"})  # still accepted: clients that send it keep working
