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
