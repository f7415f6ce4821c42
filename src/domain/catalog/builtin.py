"""What Talon.One defines before any user does: built-in event types, entities, reserved names.

Built-in event types are recorded by the session and profile endpoints, never sent through track event, and
``talon_`` is reserved for them: no custom event type may start with it.
"""

from __future__ import annotations

from typing import Final

SESSION_CREATED: Final = "talon_session_created"
SESSION_UPDATED: Final = "talon_session_updated"
SESSION_CLOSED: Final = "talon_session_closed"
SESSION_CANCELLED: Final = "talon_session_cancelled"
SESSION_REVOKED: Final = "talon_session_revoked"
SESSION_PARTIALLY_RETURNED: Final = "talon_session_partially_returned"
SESSION_REOPENED: Final = "talon_session_reopened"
PROFILE_CREATED: Final = "talon_profile_created"
PROFILE_UPDATED: Final = "talon_profile_updated"

SESSION_EVENT_TYPES: Final = (
    SESSION_CREATED, SESSION_UPDATED, SESSION_CLOSED, SESSION_CANCELLED, SESSION_REVOKED,
    SESSION_PARTIALLY_RETURNED, SESSION_REOPENED,
)  # fmt: skip
PROFILE_EVENT_TYPES: Final = (PROFILE_CREATED, PROFILE_UPDATED)
BUILTIN_EVENT_TYPES: Final = (*SESSION_EVENT_TYPES, *PROFILE_EVENT_TYPES)
"""Every built-in event type, in a fixed order: a built-in's event type id is its position + 1."""

BUILTIN_EVENT_TYPE_TITLES: Final = {
    SESSION_CREATED: "Customer Session Creation",
    SESSION_UPDATED: "Customer Session Update",
    SESSION_CLOSED: "Customer Session Closing",
    SESSION_CANCELLED: "Customer Session Cancellation",
    SESSION_REVOKED: "Customer Session Revocation",
    SESSION_PARTIALLY_RETURNED: "Customer Session Partial Return",
    SESSION_REOPENED: "Customer Session Reopening",
    PROFILE_CREATED: "Customer Profile Registration",
    PROFILE_UPDATED: "Customer Profile Update",
}

RESERVED_EVENT_TYPE_PREFIX: Final = "talon_"
FIRST_CUSTOM_EVENT_TYPE_ID: Final = 100
"""Custom event type ids start here, so that built-in ids (1–99) stay stable when Talon.One adds some."""

EVENT: Final = "Event"
CUSTOMER_SESSION: Final = "CustomerSession"
CUSTOMER_PROFILE: Final = "CustomerProfile"
CART_ITEM: Final = "CartItem"
ENTITIES: Final = (
    "Application", "Campaign", CUSTOMER_PROFILE, CUSTOMER_SESSION, CART_ITEM, "Coupon", EVENT, "Giveaway",
    "Referral", "Store",
)  # fmt: skip
"""Talon.One's attribute entities (the ``entity`` enum of ``NewAttribute``)."""

ENTITY_ALIASES: Final = {
    "event": EVENT, "session": CUSTOMER_SESSION, "profile": CUSTOMER_PROFILE, "cartItem": CART_ITEM,
    "cartItems": CART_ITEM, "item": CART_ITEM,
}  # fmt: skip
"""The rule language's names of entities (``session.attributes.x``), accepted where an entity is asked for."""

BUILTIN_ATTRIBUTES: Final[dict[str, frozenset[str]]] = {
    EVENT: frozenset({"type", "profileid", "sessionid", "attributes"}),
    CUSTOMER_SESSION: frozenset({
        "integrationid", "profileid", "storeintegrationid", "state", "total", "cartitemtotal",
        "additionalcosttotal", "couponcodes", "referralcode", "loyaltycards", "cartitems", "additionalcosts",
        "identifiers", "attributes",
    }),
    CUSTOMER_PROFILE: frozenset({
        "integrationid", "closedsessions", "totalsales", "loyalty", "loyaltymemberships",
        "audiencememberships", "attributes",
    }),
    CART_ITEM: frozenset({
        "sku", "name", "category", "price", "quantity", "returnedquantity", "remainingquantity", "position",
        "weight", "height", "width", "length", "product", "attributes", "additionalcosts",
    }),
}  # fmt: skip
"""Lower-cased names of each entity's built-in properties: no custom attribute may take one (in any case),
so that a rule never reads ``session.attributes.total`` thinking it is the session total."""
