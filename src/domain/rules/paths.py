"""Attribute paths of the rule language (``session.total``, ``event.attributes.url``, ``category``, ...).

Resolved once, when a rule is checked or compiled: the type checker asks for a path's type, the compiler for
where its value lives. A path is read in one of three scopes: the rule (event, session, profile), a cart item
(inside ``cartItems``), or a recorded event (inside a history ``where``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..catalog.builtin import CART_ITEM, CUSTOMER_PROFILE, CUSTOMER_SESSION, EVENT
from ..catalog.types import LIST_STRING, NUMBER, STRING

Scope = Literal["rule", "item", "history"]
Root = Literal["event", "session", "profile", "item"]


@dataclass(frozen=True)
class PathRef:
    """Where a path's value lives: a built-in field of a fixed type, or a catalog attribute of an entity."""

    root: Root
    name: str
    """The view's field (``cart_item_total``) or the attribute's name (``url``)."""
    builtin_type: str | None = None
    """The type of a built-in field; None for an attribute, whose type the catalog knows."""
    entity: str | None = None
    """The catalog entity of an attribute; None for a built-in field."""

    @property
    def is_attribute(self) -> bool:
        return self.entity is not None


_RULE_BUILTINS = {
    "event.type": PathRef("event", "type", STRING),
    "session.total": PathRef("session", "total", NUMBER),
    "session.cartItemTotal": PathRef("session", "cart_item_total", NUMBER),
    "session.state": PathRef("session", "state", STRING),
    "session.couponCodes": PathRef("session", "coupon_codes", LIST_STRING),
    "profile.closedSessions": PathRef("profile", "closed_sessions", NUMBER),
    "profile.totalSales": PathRef("profile", "total_sales", NUMBER),
    "profile.loyalty.balance": PathRef("profile", "loyalty_balance", NUMBER),
}
_RULE_ATTRIBUTES: dict[str, tuple[Root, str]] = {
    "event.attributes.": ("event", EVENT),
    "session.attributes.": ("session", CUSTOMER_SESSION),
    "profile.attributes.": ("profile", CUSTOMER_PROFILE),
}
_ITEM_BUILTINS = {
    "sku": PathRef("item", "sku", STRING),
    "name": PathRef("item", "name", STRING),
    "category": PathRef("item", "category", STRING),
    "price": PathRef("item", "price", NUMBER),
    "quantity": PathRef("item", "quantity", NUMBER),
}


def resolve(path: str, scope: Scope = "rule") -> PathRef | None:
    """The reference of ``path`` in ``scope``, or None when the path does not exist there."""
    if scope == "item":
        if path.startswith("attributes.") and len(path) > len("attributes."):
            return PathRef("item", path.removeprefix("attributes."), entity=CART_ITEM)
        return _ITEM_BUILTINS.get(path)
    if path in _RULE_BUILTINS:
        ref = _RULE_BUILTINS[path]
        return ref if scope == "rule" or ref.root == "event" else None
    for prefix, (root, entity) in _RULE_ATTRIBUTES.items():
        if path.startswith(prefix) and len(path) > len(prefix) and (scope == "rule" or root == "event"):
            return PathRef(root, path.removeprefix(prefix), entity=entity)
    return None
