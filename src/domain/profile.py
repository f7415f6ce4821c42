"""The customer profile: attributes, custom events, and the sales figures Talon.One keeps per customer.

``closedSessions`` and ``totalSales`` follow Talon.One: a session counts when it closes; cancelling (revoking) or
reopening it takes it out again; returned items reduce the sales. The profile learns of these through bookkeeping
events recorded in the same atomic append as the session's own event, so both streams always agree.

Whether a session counts, and with how much, is the session's to say (``CustomerSession.counts_as_sale`` and its
``total``): every bookkeeping event carries its amount, and the profile keeps only the two sums, so a loyal
customer's profile stays the same size however many sessions they close. Version 1 of these events (recorded
before) left the amount of an uncounted sale unsaid; for those alone the profile remembers what each session
counted (``legacy_sales``), so old logs replay to the same figures.
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
        self.legacy_sales: dict[str, str] = {}
        """Session integration id → the amount it counts, for sessions counted by version 1 events only."""
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

        class_version = 2

        session_id: str
        amount: str
        legacy: bool = False
        """Recorded as version 1: a later version 1 ``SaleUncounted`` will not say the amount to take out."""

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["legacy"] = True

        def apply(self, aggregate: Any) -> None:
            aggregate.closed_sessions += 1
            aggregate.total_sales += Decimal(self.amount)
            if self.legacy:
                aggregate.legacy_sales[self.session_id] = self.amount

    class SaleReduced(Stream.Event):
        """Items of a counted session were returned: its amount is taken off the sales."""

        session_id: str
        amount: str

        def apply(self, aggregate: Any) -> None:
            aggregate.total_sales -= Decimal(self.amount)
            if self.session_id in aggregate.legacy_sales:
                left = Decimal(aggregate.legacy_sales[self.session_id]) - Decimal(self.amount)
                aggregate.legacy_sales[self.session_id] = str(left)

    class SaleUncounted(Stream.Event):
        """A counted session was revoked or reopened: it no longer counts, nor the amount it counted with."""

        class_version = 2

        session_id: str
        reason: str
        amount: str | None
        """What the session counted with (``None`` in version 1 events: the profile remembers it)."""

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["amount"] = None

        def apply(self, aggregate: Any) -> None:
            remembered = aggregate.legacy_sales.pop(self.session_id, None)
            amount = self.amount if self.amount is not None else remembered
            aggregate.closed_sessions -= 1
            aggregate.total_sales -= Decimal(amount or 0)

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
        """A session of this profile now counts as a sale (it closed), with its total."""
        self.trigger_event(self.SaleCounted, session_id=session_id, amount=str(amount))

    def reduce_sale(self, session_id: str, amount: Decimal) -> None:
        """Items of a counted session were returned (the caller knows it counts: it is closed or returned)."""
        if amount:
            self.trigger_event(self.SaleReduced, session_id=session_id, amount=str(amount))

    def uncount_sale(self, session_id: str, amount: Decimal, reason: str) -> None:
        """A counted session, counting ``amount`` now, no longer counts (revoked or reopened)."""
        self.trigger_event(self.SaleUncounted, session_id=session_id, reason=reason, amount=str(amount))

    def track(self, event_type: str, attributes: Mapping[str, Any]) -> None:
        self.trigger_event(self.CustomEventTracked, event_type=event_type, attributes=dict(attributes))

    def erase(self) -> None:
        """Forget the customer's personal data (records nothing if nothing happened since the last one)."""
        if self.erased_at is None or self.erased_at != self.version:
            self.trigger_event(self.DataErased)
