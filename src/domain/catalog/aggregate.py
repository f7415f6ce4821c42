"""The attribute catalog: custom attributes of every entity, and the custom event types they define.

As in Talon.One, an attribute with ``entity: "Event"`` and an ``eventType`` creates that event type with its
first attribute; more attributes with the same ``eventType`` extend it, so a custom event type always has at
least one attribute. ``talon_*`` names are reserved for the built-in event types (``builtin.py``).

Decisions:

- Nothing is ever deleted: an attribute is deprecated. A deprecated attribute is still accepted in writes
  (clients that still send it keep working), flagged in ``ValidatedAttributes.deprecated``; its name stays
  taken.
- A catalog change never invalidates recorded history: declarations apply to new writes only, and the
  catalog's own events hold plain JSON values, readable without this code.
- Each custom event type has a schema mode, ``strict`` (Talon.One, the default) or ``discover`` (Gameball),
  chosen with its first attribute (``schema_mode``) and changed later with ``set_schema_mode``. Event types
  themselves are never discovered: an event type exists once an attribute declares it.
- Built-in properties of an entity (a session's ``total``, a cart item's ``sku``, ...) are not attributes:
  they live beside ``attributes`` in requests, so no attribute is pre-declared and ``attributes`` accepts
  declared names only. A custom attribute may not take a built-in property's name, in any case.
- Names, and titles, are unique per (entity, event type), ignoring case; a duplicate is a ``Conflict``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Final

from domain.base import NAMESPACE, Stream
from domain.catalog import checks
from domain.catalog.builtin import EVENT, FIRST_CUSTOM_EVENT_TYPE_ID
from domain.catalog.model import DISCOVER, SCHEMA_MODES, STRICT, AttributeInfo, EventTypeInfo
from domain.catalog.queries import CatalogQueries, Scope
from domain.catalog.types import ATTRIBUTE_TYPES
from domain.catalog.validation import name_problems, same_name
from domain.errors import AttributeInvalid, Conflict, InvalidInput, NotFound, Problem, pointer

CATALOG_ID: Final = uuid.uuid5(NAMESPACE, "attribute-catalog")
"""The id of the one catalog of an installation."""

DISCOVERED_DESCRIPTION: Final = "Discovered on first sight."


class AttributeCatalog(Stream, CatalogQueries):
    """Every custom attribute and custom event type, and the checks of attribute values they imply.

    A singleton (``CATALOG_ID``): load it, or ``start()`` one when none is stored yet. Queries, type lookups
    for rules and the validation of writes are in ``CatalogQueries``.
    """

    def __init__(self) -> None:
        self._attributes: dict[int, AttributeInfo] = {}
        self._scopes: dict[Scope, dict[str, int]] = {}
        self._event_types: dict[str, EventTypeInfo] = {}
        self._started = self.created_on

    class Started(Stream.Created):
        pass

    class AttributeCreated(Stream.Event):
        """An attribute was declared, or discovered; the first of an event type also creates the type."""

        attribute_id: int
        entity: str
        event_type: str | None
        event_type_id: int | None
        name: str
        title: str
        attribute_type: str
        description: str
        suggestions: list[str]
        has_allowed_list: bool
        restricted_by_suggestions: bool
        allowed_list: list[str]
        editable: bool
        subscribed_applications_ids: list[int] | None
        subscribed_catalogs_ids: list[int] | None
        allowed_subscriptions: list[str] | None
        schema_mode: str | None
        """The mode of the event type this attribute creates; None when it extends one, or is no event's."""
        discovered: bool

        def apply(self, aggregate: Any) -> None:
            if self.event_type is not None and self.event_type not in aggregate._event_types:
                aggregate._event_types[self.event_type] = EventTypeInfo(
                    id=self.event_type_id or 0,
                    name=self.event_type,
                    title=self.event_type,
                    created=self.timestamp,
                    builtin=False,
                    mode=self.schema_mode or STRICT,
                )
            aggregate._attributes[self.attribute_id] = AttributeInfo(
                id=self.attribute_id,
                entity=self.entity,
                name=self.name,
                title=self.title,
                type=self.attribute_type,
                description=self.description,
                created=self.timestamp,
                event_type=self.event_type,
                event_type_id=self.event_type_id,
                suggestions=tuple(self.suggestions),
                has_allowed_list=self.has_allowed_list,
                restricted_by_suggestions=self.restricted_by_suggestions,
                allowed_list=tuple(self.allowed_list),
                editable=self.editable,
                subscribed_applications_ids=_tuple(self.subscribed_applications_ids),
                subscribed_catalogs_ids=_tuple(self.subscribed_catalogs_ids),
                allowed_subscriptions=_tuple(self.allowed_subscriptions),
                discovered=self.discovered,
            )
            aggregate._scopes.setdefault((self.entity, self.event_type), {})[self.name] = self.attribute_id

    class AttributeUpdated(Stream.Event):
        """What describes an attribute changed; every describing field is recorded with its new value."""

        attribute_id: int
        title: str
        description: str
        suggestions: list[str]
        has_allowed_list: bool
        restricted_by_suggestions: bool
        allowed_list: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate._attributes[self.attribute_id] = replace(
                aggregate._attributes[self.attribute_id],
                title=self.title,
                description=self.description,
                suggestions=tuple(self.suggestions),
                has_allowed_list=self.has_allowed_list,
                restricted_by_suggestions=self.restricted_by_suggestions,
                allowed_list=tuple(self.allowed_list),
            )

    class AttributeDeprecated(Stream.Event):
        attribute_id: int

        def apply(self, aggregate: Any) -> None:
            attribute = aggregate._attributes[self.attribute_id]
            aggregate._attributes[self.attribute_id] = replace(attribute, deprecated=True)

    class EventTypeSchemaModeSet(Stream.Event):
        event_type: str
        mode: str

        def apply(self, aggregate: Any) -> None:
            event_type = aggregate._event_types[self.event_type]
            aggregate._event_types[self.event_type] = replace(event_type, mode=self.mode)

    @classmethod
    def start(cls) -> AttributeCatalog:
        """A new, empty catalog (to save once it has recorded something)."""
        catalog: AttributeCatalog = cls._create(cls.Started, id=CATALOG_ID)
        return catalog

    def create_attribute(
        self,
        entity: str,
        name: str,
        type_: str,
        *,
        event_type: str | None = None,
        title: str | None = None,
        description: str = "",
        suggestions: Sequence[str] = (),
        has_allowed_list: bool = False,
        restricted_by_suggestions: bool = False,
        allowed_list: Sequence[str] = (),
        editable: bool = True,
        subscribed_applications_ids: Sequence[int] | None = None,
        subscribed_catalogs_ids: Sequence[int] | None = None,
        allowed_subscriptions: Sequence[str] | None = None,
        schema_mode: str | None = None,
    ) -> AttributeInfo:
        """Declare an attribute (Talon.One ``NewAttribute``); with ``entity="Event"``, its event type too.

        ``InvalidInput`` lists every problem of the declaration; a taken name or title is a ``Conflict``.
        ``schema_mode`` sets the mode of the event type this attribute creates; on an existing type it may
        only repeat the type's mode (change it with ``set_schema_mode``).
        """
        problems = checks.declaration_problems(entity, name, type_, event_type, schema_mode)
        problems += checks.description_problems(
            type_, title, suggestions, restricted_by_suggestions, has_allowed_list, allowed_list
        )
        title = name if title is None else title
        existing = self._event_types.get(event_type) if event_type is not None else None
        if existing is not None and schema_mode not in (None, existing.mode):
            details = f"'{existing.name}' is in {existing.mode} mode: change it with set schema mode"
            problems.append(Problem(checks.INVALID, details, "/schemaMode"))
        if problems:
            raise InvalidInput(_message(problems, "Invalid attribute"), problems)
        scope: Scope = (entity, event_type if entity == EVENT else None)
        self._refuse_taken(scope, name, title)
        return self._record_created(
            scope,
            schema_mode,
            name=name,
            title=title,
            attribute_type=type_,
            description=description,
            suggestions=list(suggestions),
            has_allowed_list=has_allowed_list,
            restricted_by_suggestions=restricted_by_suggestions,
            allowed_list=list(allowed_list),
            editable=editable,
            subscribed_applications_ids=_list(subscribed_applications_ids),
            subscribed_catalogs_ids=_list(subscribed_catalogs_ids),
            allowed_subscriptions=_list(allowed_subscriptions),
            discovered=False,
        )

    def update_attribute(
        self,
        attribute_id: int,
        *,
        title: str | None = None,
        description: str | None = None,
        suggestions: Sequence[str] | None = None,
        has_allowed_list: bool | None = None,
        restricted_by_suggestions: bool | None = None,
        allowed_list: Sequence[str] | None = None,
    ) -> AttributeInfo:
        """Change what describes an attribute (None: unchanged); a narrower restriction binds new writes only.

        Name, type, entity and event type never change. Updating a non-``editable`` one is a ``Conflict``.
        """
        current = self.attribute(attribute_id)
        if not current.editable:
            raise Conflict(f"attribute {attribute_id} is not editable")
        new = replace(
            current,
            title=current.title if title is None else title,
            description=current.description if description is None else description,
            suggestions=current.suggestions if suggestions is None else tuple(suggestions),
            has_allowed_list=current.has_allowed_list if has_allowed_list is None else has_allowed_list,
            restricted_by_suggestions=_given(restricted_by_suggestions, current.restricted_by_suggestions),
            allowed_list=current.allowed_list if allowed_list is None else tuple(allowed_list),
        )
        problems = checks.description_problems(
            new.type,
            new.title,
            new.suggestions,
            new.restricted_by_suggestions,
            new.has_allowed_list,
            new.allowed_list,
        )
        if problems:
            raise InvalidInput(_message(problems, "Invalid attribute"), problems)
        if new.title.casefold() != current.title.casefold():
            self._refuse_taken((new.entity, new.event_type), None, new.title)
        if new != current:
            self.trigger_event(
                self.AttributeUpdated,
                attribute_id=attribute_id,
                title=new.title,
                description=new.description,
                suggestions=list(new.suggestions),
                has_allowed_list=new.has_allowed_list,
                restricted_by_suggestions=new.restricted_by_suggestions,
                allowed_list=list(new.allowed_list),
            )
        return self._attributes[attribute_id]

    def deprecate_attribute(self, attribute_id: int) -> AttributeInfo:
        """Deprecate an attribute (never deleted: history refers to it). Deprecating twice records nothing."""
        if not self.attribute(attribute_id).deprecated:
            self.trigger_event(self.AttributeDeprecated, attribute_id=attribute_id)
        return self._attributes[attribute_id]

    def set_schema_mode(self, event_type: str, mode: str) -> EventTypeInfo:
        """Switch a custom event type between ``strict`` and ``discover``; the same mode records nothing."""
        current = self._event_types.get(event_type)
        if current is None:
            raise NotFound(f"no custom event type '{event_type}'")
        if mode not in SCHEMA_MODES:
            raise InvalidInput.at("/schemaMode", f"unknown schema mode '{mode}': strict or discover")
        if mode != current.mode:
            self.trigger_event(self.EventTypeSchemaModeSet, event_type=event_type, mode=mode)
        return self._with_attributes(self._event_types[event_type])

    def register_discovered(
        self, event_type: str, discovered: Iterable[tuple[str, str]]
    ) -> list[AttributeInfo]:
        """Record what ``validate_event`` discovered, each as ``AttributeCreated(discovered=True)``.

        Call it on the catalog that validated the event, and save both in one transaction; on a concurrency
        conflict, reload the catalog and validate again (a concurrent request may have declared the name).
        """
        mode = self._require_custom(event_type).mode
        scope: Scope = (EVENT, event_type)
        created: list[AttributeInfo] = []
        for name, type_ in discovered:
            problems = name_problems(EVENT, name, "/attributes" + pointer(name))
            if mode != DISCOVER or type_ not in ATTRIBUTE_TYPES or problems:
                message = f"'{name}' of type '{type_}' cannot be discovered on '{event_type}'"
                raise AttributeInvalid(message, problems or None)
            self._refuse_taken(scope, name, None)
            fields = _undescribed() | {
                "title": name,
                "description": DISCOVERED_DESCRIPTION,
                "discovered": True,
            }
            created.append(self._record_created(scope, None, name=name, attribute_type=type_, **fields))
        return created

    def _record_created(self, scope: Scope, schema_mode: str | None, **fields: Any) -> AttributeInfo:
        entity, event_type = scope
        attribute_id = max(self._attributes, default=0) + 1
        known = self._event_types.get(event_type) if event_type is not None else None
        if event_type is None:
            type_id, schema_mode = None, None
        elif known is not None:
            type_id, schema_mode = known.id, None
        else:
            type_id, schema_mode = FIRST_CUSTOM_EVENT_TYPE_ID + len(self._event_types), schema_mode or STRICT
        self.trigger_event(
            self.AttributeCreated,
            attribute_id=attribute_id,
            entity=entity,
            event_type=event_type,
            event_type_id=type_id,
            schema_mode=schema_mode,
            **fields,
        )
        return self._attributes[attribute_id]

    def _refuse_taken(self, scope: Scope, name: str | None, title: str | None) -> None:
        declared = self._declared(scope)
        where = scope[0] if scope[1] is None else f"event type '{scope[1]}'"
        twin = same_name(name, declared) if name is not None else None
        if twin is not None:
            problem = Problem("Duplicate attribute name", f"'{twin}' exists already", "/name")
            raise Conflict(f"{where} has an attribute named '{twin}' already", [problem])
        titles = (a.title for a in declared.values())
        same_title = same_name(title, titles) if title is not None else None
        if same_title is not None:
            problem = Problem("Duplicate attribute title", f"'{same_title}' exists already", "/title")
            raise Conflict(f"{where} has an attribute titled '{same_title}' already", [problem])


def _undescribed() -> dict[str, Any]:
    return {
        "suggestions": [],
        "has_allowed_list": False,
        "restricted_by_suggestions": False,
        "allowed_list": [],
        "editable": True,
        "subscribed_applications_ids": None,
        "subscribed_catalogs_ids": None,
        "allowed_subscriptions": None,
    }


def _message(problems: list[Problem], several: str) -> str:
    return problems[0].details if len(problems) == 1 else f"{several}: {len(problems)} problems"


def _tuple(values: list[Any] | None) -> tuple[Any, ...] | None:
    return tuple(values) if values is not None else None


def _list(values: Sequence[Any] | None) -> list[Any] | None:
    return list(values) if values is not None else None


def _given(value: bool | None, default: bool) -> bool:
    return default if value is None else value
