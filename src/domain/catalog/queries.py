"""What the catalog answers without changing: attributes, event types, types for rules, checks of writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from domain.catalog.builtin import (
    BUILTIN_EVENT_TYPE_TITLES,
    BUILTIN_EVENT_TYPES,
    ENTITIES,
    ENTITY_ALIASES,
    EVENT,
)
from domain.catalog.checks import is_reserved_event_type
from domain.catalog.model import DISCOVER, STRICT, AttributeInfo, EventTypeInfo, ValidatedAttributes
from domain.catalog.validation import check_values
from domain.errors import NotFound, Problem, UnknownEventType

Scope = tuple[str, str | None]
"""(entity, event type): where attribute names are unique; the event type is None except for ``Event``."""


class CatalogQueries:
    """The read side of ``AttributeCatalog``, over the state its events build."""

    _attributes: dict[int, AttributeInfo]
    _scopes: dict[Scope, dict[str, int]]
    _event_types: dict[str, EventTypeInfo]
    _started: datetime

    def attribute(self, attribute_id: int) -> AttributeInfo:
        """The attribute with this id; ``NotFound`` if there is none."""
        found = self._attributes.get(attribute_id)
        if found is None:
            raise NotFound(f"no attribute with id {attribute_id}")
        return found

    def attributes(self, entity: str | None = None, event_type: str | None = None) -> list[AttributeInfo]:
        """Attributes in id order, deprecated ones included, optionally of one entity or one event type."""
        return [
            a
            for a in sorted(self._attributes.values(), key=lambda a: a.id)
            if (entity is None or a.entity == entity) and (event_type is None or a.event_type == event_type)
        ]

    def event_types(self) -> list[EventTypeInfo]:
        """Built-in event types, then custom ones in the order they were created."""
        custom = sorted(self._event_types.values(), key=lambda t: t.id)
        return [self._builtin(name) for name in BUILTIN_EVENT_TYPES] + [
            self._with_attributes(t) for t in custom
        ]

    def event_type(self, name: str) -> EventTypeInfo | None:
        """A built-in or custom event type, or None."""
        if name in BUILTIN_EVENT_TYPES:
            return self._builtin(name)
        found = self._event_types.get(name)
        return self._with_attributes(found) if found is not None else None

    def is_event_type(self, name: str) -> bool:
        """Whether a rule may name this event type: a built-in one, or a custom one of the catalog."""
        return name in BUILTIN_EVENT_TYPES or name in self._event_types

    def attribute_type(self, entity: str, name: str, event_type: str | None = None) -> str | None:
        """The type of an attribute, or None when undeclared.

        ``entity`` may also be a rule-language name (``session``, ``profile``, ``cartItem``, ``event``). For
        ``Event`` without ``event_type``: the type every event type declaring ``name`` agrees on, else None.
        """
        entity = ENTITY_ALIASES.get(entity, entity)
        if entity != EVENT:
            found = self._scopes.get((entity, None), {}).get(name)
            return self._attributes[found].type if found is not None else None
        scopes = [event_type] if event_type is not None else list(self._event_types)
        ids = [self._scopes.get((EVENT, s), {}).get(name) for s in scopes]
        types = {self._attributes[i].type for i in ids if i is not None}
        return types.pop() if len(types) == 1 else None

    def validate_event(self, event_type: str, attributes: Mapping[str, Any]) -> ValidatedAttributes:
        """Check the attributes of a custom event (track event, Gameball ingest) before it is recorded.

        An unknown or ``talon_*`` event type: ``UnknownEventType`` at ``/type``. Every attribute problem
        (undeclared in strict mode, wrong type, value not allowed, not discoverable) in one
        ``AttributeInvalid``.
        In discover mode, ``discovered`` lists what to pass to ``register_discovered``.
        """
        mode = self._require_custom(event_type).mode
        declared = self._declared((EVENT, event_type))
        return check_values(declared, attributes, "/attributes", entity=EVENT, discover=mode == DISCOVER)

    def validate_entity_attributes(
        self, entity: str, attributes: Mapping[str, Any], pointer_prefix: str = "/attributes"
    ) -> dict[str, Any]:
        """The normalised custom attributes of a session, profile, cart item, ...: declared ones only.

        ``pointer_prefix`` locates them in the request, e.g. ``/customerSession/cartItems/0/attributes``.
        """
        entity = ENTITY_ALIASES.get(entity, entity)
        if entity == EVENT or entity not in ENTITIES:
            raise ValueError(f"not an entity with attributes of its own: {entity!r}")
        declared = self._declared((entity, None))
        return dict(check_values(declared, attributes, pointer_prefix, entity=entity).values)

    def _require_custom(self, event_type: str) -> EventTypeInfo:
        found = self._event_types.get(event_type)
        if found is not None:
            return found
        if is_reserved_event_type(event_type):
            details = f"'{event_type}' is reserved for built-in events (the session and profile endpoints)"
        else:
            details = f"unknown event type '{event_type}': declare it with an attribute of the Event entity"
        raise UnknownEventType(details, [Problem("Unknown event type", details, "/type")])

    def _declared(self, scope: Scope) -> dict[str, AttributeInfo]:
        return {name: self._attributes[i] for name, i in self._scopes.get(scope, {}).items()}

    def _with_attributes(self, event_type: EventTypeInfo) -> EventTypeInfo:
        return replace(event_type, attributes=tuple(self.attributes(EVENT, event_type.name)))

    def _builtin(self, name: str) -> EventTypeInfo:
        title = BUILTIN_EVENT_TYPE_TITLES[name]
        return EventTypeInfo(BUILTIN_EVENT_TYPES.index(name) + 1, name, title, self._started, True, STRICT)
