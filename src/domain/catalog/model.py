"""What the catalog tells its readers: attributes, event types, validated attribute values.

These are read-only views built from the catalog's events: the API layer translates them to Talon.One's
``Attribute`` and ``EventType`` shapes (adding ``accountId`` and the like).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

STRICT: Final = "strict"
"""Talon.One: an attribute the event type does not declare is refused (the default)."""
DISCOVER: Final = "discover"
"""Gameball: an undeclared attribute is registered on first sight with its inferred type, then enforced."""
SCHEMA_MODES: Final = (STRICT, DISCOVER)

NAME_PATTERN: Final = re.compile(r"[A-Za-z]\w*", re.ASCII)
"""Attribute names, as Talon.One's ``NewAttribute.name`` (ASCII: ``\\w`` of Go and JavaScript)."""
TITLE_PATTERN: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.!~*'() -]*", re.ASCII)
"""Attribute titles, as Talon.One's ``NewAttribute.title``."""
EVENT_TYPE_PATTERN: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,254}", re.ASCII)
"""Custom event type names: a letter, then letters, digits and ``_ . : -`` (``pageview``, ``add_to_cart``)."""
MAX_SUGGESTIONS: Final = 50


@dataclass(frozen=True)
class AttributeInfo:
    """One custom attribute, with every field of Talon.One's ``Attribute`` model (``account_id`` aside).

    ``deprecated`` attributes are still accepted in writes (see ``AttributeCatalog``); ``discovered`` ones
    were registered on first sight by an event type in discover mode.
    """

    id: int
    entity: str
    name: str
    title: str
    type: str
    description: str
    created: datetime
    event_type: str | None = None
    event_type_id: int | None = None
    suggestions: tuple[str, ...] = ()
    has_allowed_list: bool = False
    restricted_by_suggestions: bool = False
    allowed_list: tuple[str, ...] = ()
    editable: bool = True
    subscribed_applications_ids: tuple[int, ...] | None = None
    subscribed_catalogs_ids: tuple[int, ...] | None = None
    allowed_subscriptions: tuple[str, ...] | None = None
    deprecated: bool = False
    discovered: bool = False

    @property
    def allowed_values(self) -> frozenset[str] | None:
        """The values a write may use, when restricted (suggestions and the allowed list), else None."""
        if not self.restricted_by_suggestions:
            return None
        return frozenset(self.suggestions) | frozenset(self.allowed_list if self.has_allowed_list else ())


@dataclass(frozen=True)
class EventTypeInfo:
    """An event type for ``GET /v1/event_types``: a built-in ``talon_*`` one or a custom one of the catalog.

    ``id``, ``created``, ``title``, ``name`` and ``description`` are Talon.One's ``EventType``; a custom event
    type's title is its name. Built-ins have no attributes and are always ``strict``.
    """

    id: int
    name: str
    title: str
    created: datetime
    builtin: bool
    mode: str
    attributes: tuple[AttributeInfo, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class ValidatedAttributes:
    """The attributes of a write, checked against the catalog.

    ``values``: the normalised values, to record (numbers are ``Decimal``, times UTC strings).
    ``discovered``: ``(name, type)`` of attributes to register (``AttributeCatalog.register_discovered``)
    before recording the write, in discover mode. ``deprecated``: deprecated attributes the write used.
    """

    values: Mapping[str, Any]
    discovered: tuple[tuple[str, str], ...] = ()
    deprecated: tuple[str, ...] = field(default=())
