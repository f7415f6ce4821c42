"""Builders of test data, shared by every kind of test."""

from __future__ import annotations

from typing import Any


def cart_item(sku: str = "sku-1", price: float | int | str = 10, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "price": str(price), "quantity": quantity, "name": extra.pop("name", sku), **extra}


def session_changes(*items: dict[str, Any], profile: str | None = "p-1", **extra: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {"cartItems": [dict(i) for i in items] or [cart_item()], **extra}
    if profile is not None:
        changes["profileId"] = profile
    return changes


def declare(management: Any, entity: str, name: str, type_: str = "string", **extra: Any) -> Any:
    """Declare a custom attribute through ``talon_one.ManagementApi``; already declared (409) is fine.

    ``extra`` are ``NewAttribute`` fields (``event_type="page_view"`` for an attribute of a custom event), and
    ``schema_mode``, Rulestream's, which the SDK's model does not carry: it is set through the event type.
    Validation is the contract: every attribute a test writes must be declared first, as in Talon.One.
    """
    import httpx
    import talon_one
    from talon_one.exceptions import ApiException

    mode = extra.pop("schema_mode", None)
    new = talon_one.NewAttribute(
        entity=entity, name=name, title=extra.pop("title", name), type=type_,
        description=extra.pop("description", ""), suggestions=extra.pop("suggestions", []),
        editable=extra.pop("editable", True), **extra,
    )  # fmt: skip
    try:
        created = management.create_attribute(new)
    except ApiException as e:
        if e.status != 409:
            raise
        created = None
    if mode is not None:
        config = management.api_client.configuration
        headers = {"Authorization": config.get_api_key_with_prefix("management_key")}
        url = f"{config.host}/v1/event_types/{extra['event_type']}/mode"
        httpx.put(url, json={"mode": mode}, headers=headers).raise_for_status()
    return created
