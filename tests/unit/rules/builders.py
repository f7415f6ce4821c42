"""Test data builders for the rule language: a catalog, contexts and rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from domain.rules.compiler import CompiledRule, compile_rule
from domain.rules.context import (
    CartItemView,
    EvaluationContext,
    EventView,
    InMemoryHistory,
    InMemoryLimits,
    ProfileView,
    SessionView,
)
from domain.rules.language import RuleDefinition, parse_rule

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@dataclass
class FakeCatalog:
    """A ``CatalogView`` over dicts: event types, and attribute types per (entity, name[, event type])."""

    event_types: set[str] = field(default_factory=lambda: {"purchase", "add_to_cart", "talon_session_closed"})
    events: dict[tuple[str, str], str] = field(
        default_factory=lambda: {
            ("purchase", "amount"): "number",
            ("purchase", "channel"): "string",
            ("purchase", "at"): "time",
            ("purchase", "tags"): "(list string)",
            ("add_to_cart", "amount"): "string",  # conflicts with purchase's
        }
    )
    others: dict[tuple[str, str], str] = field(
        default_factory=lambda: {
            ("CustomerSession", "shippingCity"): "string",
            ("CustomerProfile", "tier"): "string",
            ("CustomerProfile", "birthday"): "time",
            ("CustomerProfile", "vip"): "boolean",
            ("CartItem", "color"): "string",
        }
    )

    def is_event_type(self, name: str) -> bool:
        return name in self.event_types

    def attribute_type(self, entity: str, name: str, event_type: str | None = None) -> str | None:
        if entity == "Event":
            return self.events.get((event_type or "", name))
        return self.others.get((entity, name))


def rule(**fields: Any) -> dict[str, Any]:
    """A rule's JSON: a valid minimal rule with ``fields`` replacing its keys."""
    return {"name": "test rule", "trigger": ["purchase"], **fields}


def compiled(rule_id: int = 1, version: int = 1, **fields: Any) -> CompiledRule:
    return compile_rule(rule_id, version, parse_rule(rule(**fields)))


def definition(**fields: Any) -> RuleDefinition:
    return parse_rule(rule(**fields))


def item(sku: str = "SKU1", price: str = "10", quantity: int = 1, **fields: Any) -> CartItemView:
    fields.setdefault("name", sku.lower())
    fields.setdefault("category", "shoes")
    fields.setdefault("position", 0)
    return CartItemView(sku=sku, price=Decimal(price), quantity=quantity, **fields)


def session(total: str = "100", items: tuple[CartItemView, ...] = (), **fields: Any) -> SessionView:
    values: dict[str, Any] = {
        "integration_id": "s1",
        "state": "open",
        "total": Decimal(total),
        "cart_item_total": Decimal(total),
        "coupon_codes": (),
        "attributes": {},
        "cart_items": items,
    }
    return SessionView(**{**values, **fields})


def profile(**fields: Any) -> ProfileView:
    values: dict[str, Any] = {
        "integration_id": "p1",
        "attributes": {},
        "closed_sessions": 2,
        "total_sales": Decimal("250"),
        "loyalty_balance": Decimal("40"),
    }
    return ProfileView(**{**values, **fields})


def context(
    event_type: str = "purchase",
    attributes: Mapping[str, Any] | None = None,
    *,
    at: datetime = NOW,
    session_view: SessionView | None = None,
    profile_view: ProfileView | None = None,
    profile_id: str | None = "p1",
    history: InMemoryHistory | None = None,
    limits: InMemoryLimits | None = None,
) -> EvaluationContext:
    event = EventView(event_type, attributes or {}, at, profile_id, None)
    return EvaluationContext(
        event, session_view, profile_view, history or InMemoryHistory(), limits or InMemoryLimits()
    )


def holds(condition: dict[str, Any], ctx: EvaluationContext) -> bool:
    """Whether ``condition`` holds for ``ctx`` (compiled as a rule's only condition)."""
    return compiled(condition=condition).evaluate(ctx).matched
