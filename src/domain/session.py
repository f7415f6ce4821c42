"""The customer session (a cart) and its life cycle.

    open ──close──► closed ──return items──► partially_returned
      │               │  ▲ (reopen)                 │
      └─cancel─┐      │  └──────── open             │
               ▼      ▼                             ▼
            cancelled ◄─────── revoke ──────────────┘

A session is created ``open`` or ``closed``. Its content (cart items, coupon codes, additional costs, attributes, ...)
changes only while it is open. Totals are computed with ``Decimal`` over the quantities still held (returned
quantities no longer count), before discounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from domain.base import Stream
from domain.errors import InvalidInput, InvalidTransition, Problem, pointer

OPEN, CLOSED, CANCELLED, PARTIALLY_RETURNED = "open", "closed", "cancelled", "partially_returned"
STATES = (OPEN, CLOSED, CANCELLED, PARTIALLY_RETURNED)

CONTENT_FIELDS = (
    "profileId", "storeIntegrationId", "couponCodes", "referralCode", "loyaltyCards",
    "cartItems", "additionalCosts", "identifiers", "attributes",
)  # fmt: skip


@dataclass(frozen=True)
class CartItem:
    """One line of the cart. ``price`` is per unit; ``returned_quantity`` counts units given back."""

    sku: str
    quantity: int
    price: Decimal
    name: str | None = None
    category: str | None = None
    returned_quantity: int = 0
    attributes: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Talon.One fields we keep and give back but do not interpret (weight, product, ...)."""

    @property
    def remaining_quantity(self) -> int:
        return self.quantity - self.returned_quantity

    @property
    def remaining_value(self) -> Decimal:
        return self.price * self.remaining_quantity

    def to_record(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "price": str(self.price),
            "name": self.name,
            "category": self.category,
            "returnedQuantity": self.returned_quantity,
            "attributes": dict(self.attributes),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CartItem:
        return cls(
            sku=record["sku"],
            quantity=int(record["quantity"]),
            price=Decimal(record["price"]),
            name=record.get("name"),
            category=record.get("category"),
            returned_quantity=int(record.get("returnedQuantity", 0)),
            attributes=record.get("attributes") or {},
            extra=record.get("extra") or {},
        )


@dataclass(frozen=True)
class ReturnedItem:
    """Units to give back: by ``position`` in the cart, or the first line with ``sku``; all that remain by default."""

    position: int | None = None
    quantity: int | None = None
    sku: str | None = None


class CustomerSession(Stream):
    """A customer session, identified by the integration id the client chose."""

    def __init__(self, integration_id: str, changes: dict[str, Any], first_session: bool) -> None:
        self.integration_id = integration_id
        self.state = OPEN
        self.first_session = first_session
        self.profile_id: str | None = None
        self.store_integration_id: str | None = None
        self.referral_code: str | None = None
        self.coupon_codes: list[str] = []
        self.loyalty_cards: list[str] = []
        self.cart_items: list[CartItem] = []
        self.identifiers: list[str] = []
        self.additional_costs: dict[str, Decimal] = {}
        self.attributes: dict[str, Any] = {}
        self.update_count = 1
        self.custom_events = 0
        self._apply_changes(changes)

    class Created(Stream.Created):
        talon_type: ClassVar[str | None] = "talon_session_created"
        integration_id: str
        changes: dict[str, Any]
        first_session: bool

    class Updated(Stream.Event):
        talon_type: ClassVar[str | None] = "talon_session_updated"
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate._apply_changes(self.changes)
            aggregate.update_count += 1

    class Closed(Stream.Event):
        talon_type: ClassVar[str | None] = "talon_session_closed"
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate._apply_changes(self.changes)
            aggregate.state = CLOSED
            aggregate.update_count += 1

    class Cancelled(Stream.Event):
        talon_type: ClassVar[str | None] = "talon_session_cancelled"

        def apply(self, aggregate: Any) -> None:
            aggregate.state = CANCELLED
            aggregate.update_count += 1

    class Revoked(Stream.Event):
        talon_type: ClassVar[str | None] = "talon_session_revoked"
        previous_state: str

        def apply(self, aggregate: Any) -> None:
            aggregate.state = CANCELLED
            aggregate.update_count += 1

    class ItemsReturned(Stream.Event):
        talon_type: ClassVar[str | None] = "talon_session_partially_returned"
        items: list[dict[str, Any]]
        """``{"position", "quantity", "sku", "price"}`` per returned line."""

        def apply(self, aggregate: Any) -> None:
            s: CustomerSession = aggregate
            for item in self.items:
                line = s.cart_items[item["position"]]
                s.cart_items[item["position"]] = replace(
                    line, returned_quantity=line.returned_quantity + int(item["quantity"])
                )
            s.state = PARTIALLY_RETURNED
            s.update_count += 1

    class Reopened(Stream.Event):
        talon_type: ClassVar[str | None] = "talon_session_reopened"

        def apply(self, aggregate: Any) -> None:
            aggregate.state = OPEN
            aggregate.update_count += 1

    class AttributesAdded(Stream.Event):
        """A custom event bound to this session brought attributes that sessions have (``shared_with_session``):
        they are the session's now. Bookkeeping: it triggers no rule and is no update of the session."""

        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate._apply_changes(self.changes)

    class CustomEventTracked(Stream.Event):
        """A custom event bound to this session (``POST /v2/events`` with ``sessionId``)."""

        event_type: str
        attributes: dict[str, Any]
        profile_id: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.custom_events += 1

    # -- the verbs ------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls, aggregate_id: Any, integration_id: str, changes: Mapping[str, Any], *, first_session: bool
    ) -> CustomerSession:
        check_changes(changes)
        session: CustomerSession = cls._create(
            cls.Created,
            id=aggregate_id,
            integration_id=integration_id,
            changes=dict(changes),
            first_session=first_session,
        )
        return session

    def update(self, changes: Mapping[str, Any]) -> None:
        """Change the content of an open session."""
        self._require(OPEN, OPEN)
        check_changes(changes)
        self.trigger_event(self.Updated, changes=dict(changes))

    def close(self, changes: Mapping[str, Any]) -> None:
        self._require(OPEN, CLOSED)
        check_changes(changes)
        self.trigger_event(self.Closed, changes=dict(changes))

    def cancel(self) -> None:
        """Cancel an open session, or revoke a closed or partially returned one."""
        if self.state == OPEN:
            self.trigger_event(self.Cancelled)
        elif self.state in (CLOSED, PARTIALLY_RETURNED):
            self.trigger_event(self.Revoked, previous_state=self.state)
        else:
            raise _transition(self.state, CANCELLED)

    def return_items(self, items: Sequence[ReturnedItem]) -> None:
        """Give back some units of some lines; the session becomes ``partially_returned``."""
        if self.state not in (CLOSED, PARTIALLY_RETURNED):
            raise _transition(self.state, PARTIALLY_RETURNED, "/return")
        if not items:
            raise InvalidInput.at("/return/returnedCartItems", "at least one cart item must be returned")
        pending: dict[int, int] = {}
        records = []
        for index, item in enumerate(items):
            at = pointer("return", "returnedCartItems", index)
            position = self._line_of(item, at, pending)
            line = self.cart_items[position]
            left = line.remaining_quantity - pending.get(position, 0)
            quantity = left if item.quantity is None else item.quantity
            if not 1 <= quantity <= left:
                raise InvalidInput.at(at + "/quantity", f"cannot return {quantity} of {line.sku}: {left} remaining")
            pending[position] = pending.get(position, 0) + quantity
            records.append({"position": position, "quantity": quantity, "sku": line.sku, "price": str(line.price)})
        self.trigger_event(self.ItemsReturned, items=records)

    def _line_of(self, item: ReturnedItem, at: str, pending: Mapping[int, int]) -> int:
        if item.position is not None:
            if not 0 <= item.position < len(self.cart_items):
                raise InvalidInput.at(
                    at + "/position", f"no cart item at position {item.position} (the cart has {len(self.cart_items)})"
                )
            if item.sku is not None and self.cart_items[item.position].sku != item.sku:
                raise InvalidInput.at(at + "/sku", f"the cart item at position {item.position} is not '{item.sku}'")
            return item.position
        for position, line in enumerate(self.cart_items):
            if line.sku == item.sku and line.remaining_quantity > pending.get(position, 0):
                return position
        if item.sku is None:
            raise InvalidInput.at(at, "name the cart item to return by its position or its sku")
        raise InvalidInput.at(at + "/sku", f"no cart item '{item.sku}' left to return")

    def reopen(self) -> None:
        if self.state != CLOSED:
            raise _transition(self.state, OPEN, None)
        self.trigger_event(self.Reopened)

    def track(
        self,
        event_type: str,
        attributes: Mapping[str, Any],
        profile_id: str | None,
        shared: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind a custom event to this session; its ``shared`` attributes become the session's first, so that the
        rules the event triggers see them on the session too."""
        if shared:
            self.trigger_event(self.AttributesAdded, changes={"attributes": dict(shared)})
        self.trigger_event(
            self.CustomEventTracked, event_type=event_type, attributes=dict(attributes), profile_id=profile_id
        )

    # -- what the session knows -----------------------------------------------------------------------

    @property
    def cart_item_total(self) -> Decimal:
        return sum((item.remaining_value for item in self.cart_items), Decimal(0))

    @property
    def additional_cost_total(self) -> Decimal:
        return sum(self.additional_costs.values(), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.cart_item_total + self.additional_cost_total

    @property
    def counts_as_sale(self) -> bool:
        """Closed and partially returned sessions count in the profile's sales; open and cancelled ones do not."""
        return self.state in (CLOSED, PARTIALLY_RETURNED)

    def _require(self, current: str, target: str) -> None:
        if self.state != current:
            raise _transition(self.state, target)

    def _apply_changes(self, changes: Mapping[str, Any]) -> None:
        for key, value in changes.items():
            if key == "cartItems":
                self.cart_items = [CartItem.from_record(r) for r in value]
            elif key == "additionalCosts":
                self.additional_costs = {name: Decimal(price) for name, price in value.items()}
            elif key == "attributes":
                self.attributes = {**self.attributes, **value}
            elif key == "profileId":
                self.profile_id = value
            elif key == "storeIntegrationId":
                self.store_integration_id = value
            elif key == "couponCodes":
                self.coupon_codes = list(value)
            elif key == "referralCode":
                self.referral_code = value or None
            elif key == "loyaltyCards":
                self.loyalty_cards = list(value)
            elif key == "identifiers":
                self.identifiers = list(value)

    @property
    def updated(self) -> datetime:
        return self.modified_on


def _transition(current: str, target: str, at: str | None = "/customerSession/state") -> InvalidTransition:
    """``at``: the field of the request that asked for ``target`` (none for the reopen endpoint's, which has no
    body)."""
    message = f"cannot change the session from '{current}' to '{target}'"
    return InvalidTransition(message, [Problem("Invalid state transition", message, at)])


def check_changes(changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - set(CONTENT_FIELDS)
    if unknown:
        raise ValueError(f"unknown session fields: {sorted(unknown)}")
