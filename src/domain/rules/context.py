"""What a rule is evaluated against: read-only views of the event, session and profile, and two readers.

The policy process adapts its aggregates and state to these; unit tests and dry runs use the in-memory
readers. Attribute values are expected in the catalog's normalised form (``Decimal`` numbers, RFC 3339
times), but the evaluator also accepts ints, floats and ``datetime``s.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .decide import Decision

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class CartItemView:
    """One cart item of a session; ``returned_quantity`` units of it were returned."""

    sku: str
    name: str
    category: str | None
    price: Decimal
    quantity: int
    position: int
    returned_quantity: int = 0
    attributes: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class SessionView:
    """The customer session an event belongs to, after the event."""

    integration_id: str
    state: str
    total: Decimal
    cart_item_total: Decimal
    coupon_codes: tuple[str, ...]
    attributes: Mapping[str, Any]
    cart_items: tuple[CartItemView, ...]


@dataclass(frozen=True)
class ProfileView:
    """The customer profile an event belongs to, after the event."""

    integration_id: str
    attributes: Mapping[str, Any]
    closed_sessions: int
    total_sales: Decimal
    loyalty_balance: Decimal


@dataclass(frozen=True)
class EventView:
    """The event being evaluated; ``position`` is its log position when it has one."""

    type: str
    attributes: Mapping[str, Any]
    at: datetime
    profile_id: str | None
    session_id: str | None
    position: int | None = None


@dataclass(frozen=True)
class HistoryItem:
    """One recorded event of a profile, as history conditions see it."""

    at: datetime
    attributes: Mapping[str, Any]


class HistoryReader(Protocol):
    """The profile's recorded events of one type, from the policy's own state."""

    def events(self, profile_id: str, event_type: str, since: datetime | None) -> Sequence[HistoryItem]:
        """Events at or after ``since`` (all when None), oldest first, including the current event."""
        ...


class LimitsReader(Protocol):
    """What the policy has persisted about earlier firings and matches."""

    def firings(self, rule_id: int, profile_id: str, since: datetime | None) -> int:
        """Times the rule fired for the profile at or after ``since`` (ever when None)."""
        ...

    def matches(self, rule_id: int, profile_id: str) -> int:
        """Matching occurrences so far, for ``everyNth``, excluding the current one."""
        ...

    def budget_used(self, rule_id: int) -> Mapping[str, Decimal]:
        """``{"points": ..., "discount": ...}`` the rule has given so far."""
        ...


@dataclass(frozen=True)
class EvaluationContext:
    """Everything one evaluation reads; session and profile are None when the event has none."""

    event: EventView
    session: SessionView | None
    profile: ProfileView | None
    history: HistoryReader
    limits: LimitsReader


class InMemoryHistory:
    """A ``HistoryReader`` over a list, for unit tests and dry runs."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], list[HistoryItem]] = defaultdict(list)

    def record(self, profile_id: str, event_type: str, at: datetime, attributes: Mapping[str, Any]) -> None:
        """Remember an event (record the current event too: history conditions count it)."""
        self._events[profile_id, event_type].append(HistoryItem(at, attributes))

    def events(self, profile_id: str, event_type: str, since: datetime | None) -> Sequence[HistoryItem]:
        items = self._events.get((profile_id, event_type), [])
        return items if since is None else [item for item in items if item.at >= since]


class InMemoryLimits:
    """A ``LimitsReader`` that learns from the decisions it is given, for unit tests and dry runs."""

    def __init__(self) -> None:
        self._firings: dict[tuple[int, str], list[datetime]] = defaultdict(list)
        self._matches: Counter[tuple[int, str]] = Counter()
        self._budget: dict[int, dict[str, Decimal]] = defaultdict(
            lambda: {"points": Decimal(0), "discount": Decimal(0)}
        )

    def record(self, decision: Decision) -> None:
        """Persist what a decision asks to persist, so the next evaluation sees it."""
        for firing in decision.firings:
            if firing.profile_id is not None:
                self._firings[firing.rule_id, firing.profile_id].append(firing.at)
            used = self._budget[firing.rule_id]
            used["points"] += firing.points
            used["discount"] += firing.discount
        self._matches.update(decision.matches)

    def firings(self, rule_id: int, profile_id: str, since: datetime | None) -> int:
        times = self._firings.get((rule_id, profile_id), [])
        return len(times) if since is None else sum(1 for t in times if t >= since)

    def matches(self, rule_id: int, profile_id: str) -> int:
        return self._matches[rule_id, profile_id]

    def budget_used(self, rule_id: int) -> Mapping[str, Decimal]:
        return dict(self._budget.get(rule_id, {"points": Decimal(0), "discount": Decimal(0)}))
