"""The customer profile: attributes, custom events, and the sales figures Talon.One keeps per customer.

``closedSessions`` and ``totalSales`` follow Talon.One: a session counts when it closes; cancelling (revoking) or
reopening it takes it out again; returned items reduce the sales. The profile learns of these through bookkeeping
events recorded in the same atomic append as the session's own event, so both streams always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from domain.base import Stream

ERASED: dict[str, Any] = {"erased": True}
"""What a customer's personal data reads as once they have been forgotten (``CustomerProfile.DataErased``)."""


class CustomerProfile(Stream):
    """A customer, identified by the integration id the client chose."""

    def __init__(self, integration_id: str, attributes: dict[str, Any]) -> None:
        self.integration_id = integration_id
        self.attributes = dict(attributes)
        self.closed_sessions = 0
        self.total_sales = Decimal(0)
        self.sessions = 0
        """How many sessions have named this profile (Talon.One's ``firstSession`` is true for the first)."""
        self.counted_sessions: dict[str, str] = {}
        """Session integration id → the sales amount it currently contributes (a Decimal as a string)."""
        self.erased_at: int | None = None
        """The version of the last erasure, if the customer asked to be forgotten."""

    class Registered(Stream.Created):
        """The profile came into being: by a profile write, or implicitly when a session or event named it."""

        integration_id: str
        attributes: dict[str, Any]
        talon_type: ClassVar[str | None] = None

    class Created(Registered):
        """Created by ``PUT /v2/customer_profiles`` with the rule engine on."""

        talon_type: ClassVar[str | None] = "talon_profile_created"

    class AttributesStored(Stream.Event):
        """Attributes changed without running the rule engine (``runRuleEngine=false``)."""

        attributes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.attributes = {**aggregate.attributes, **self.attributes}

    class Updated(AttributesStored):
        talon_type: ClassVar[str | None] = "talon_profile_updated"

    class SessionStarted(Stream.Event):
        """A new session names this profile."""

        session_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.sessions += 1

    class SaleCounted(Stream.Event):
        """A session of this profile closed: it counts, with its total."""

        session_id: str
        amount: str

        def apply(self, aggregate: Any) -> None:
            aggregate._count(self.session_id, Decimal(self.amount))

    class SaleReduced(Stream.Event):
        """Items of a counted session were returned."""

        session_id: str
        amount: str

        def apply(self, aggregate: Any) -> None:
            if self.session_id in aggregate.counted_sessions:
                left = Decimal(aggregate.counted_sessions[self.session_id]) - Decimal(self.amount)
                aggregate._count(self.session_id, left)

    class SaleUncounted(Stream.Event):
        """A counted session was revoked or reopened: it no longer counts."""

        session_id: str
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate._count(self.session_id, None)

    class CustomEventTracked(Stream.Event):
        """A custom event of this customer not bound to a session."""

        event_type: str
        attributes: dict[str, Any]

    class DataErased(Stream.Event):
        """The customer asked to be forgotten: their personal data is gone from here on (its keys destroyed).

        The history stays, countable: sessions, sales and effects; only the personal fields read as erased.
        """

        def apply(self, aggregate: Any) -> None:
            aggregate.attributes = {}
            aggregate.erased_at = self.originator_version

    # -- the verbs ------------------------------------------------------------------------------------

    @classmethod
    def register(
        cls, aggregate_id: Any, integration_id: str, attributes: Mapping[str, Any], *, run_rule_engine: bool
    ) -> CustomerProfile:
        event_class = cls.Created if run_rule_engine else cls.Registered
        profile: CustomerProfile = cls._create(
            event_class, id=aggregate_id, integration_id=integration_id, attributes=dict(attributes)
        )
        return profile

    def update(self, attributes: Mapping[str, Any], *, run_rule_engine: bool) -> None:
        event_class = self.Updated if run_rule_engine else self.AttributesStored
        self.trigger_event(event_class, attributes=dict(attributes))

    def start_session(self, session_id: str) -> None:
        self.trigger_event(self.SessionStarted, session_id=session_id)

    def count_sale(self, session_id: str, amount: Decimal) -> None:
        self.trigger_event(self.SaleCounted, session_id=session_id, amount=str(amount))

    def reduce_sale(self, session_id: str, amount: Decimal) -> None:
        if session_id in self.counted_sessions and amount:
            self.trigger_event(self.SaleReduced, session_id=session_id, amount=str(amount))

    def uncount_sale(self, session_id: str, reason: str) -> None:
        if session_id in self.counted_sessions:
            self.trigger_event(self.SaleUncounted, session_id=session_id, reason=reason)

    def track(self, event_type: str, attributes: Mapping[str, Any]) -> None:
        self.trigger_event(self.CustomEventTracked, event_type=event_type, attributes=dict(attributes))

    def erase(self) -> None:
        """Forget the customer's personal data (records nothing if nothing happened since the last one)."""
        if self.erased_at is None or self.erased_at != self.version:
            self.trigger_event(self.DataErased)

    def _count(self, session_id: str, amount: Decimal | None) -> None:
        """Set what a session contributes (None: nothing). O(1): a loyal customer has thousands of sessions."""
        before = self.counted_sessions.pop(session_id, None)
        if before is not None:
            self.closed_sessions -= 1
            self.total_sales -= Decimal(before)
        if amount is not None:
            self.counted_sessions[session_id] = str(amount)
            self.closed_sessions += 1
            self.total_sales += amount
