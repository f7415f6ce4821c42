"""The catalog's application service: commands on the one attribute catalog, and the checks of every write.

``CatalogService`` is mixed into ``domain.application.Rulestream``: the Management API declares attributes
through it, and every command that writes attributes (session, profile, custom event) passes them through
the ``checked_*`` functions here first, so nothing undeclared or mistyped reaches the log.

How values are recorded: the catalog normalises a value (``Decimal`` numbers, UTC RFC 3339 times); the log
holds it as plain JSON, numbers as JSON numbers (an integral number as an integer, any other as the shortest
decimal a 64-bit float reads back exactly). A number with more significant digits than that is refused at
its pointer rather than silently rounded: an auditor reading the log must see exactly what was accepted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from domain.catalog.aggregate import CATALOG_ID, AttributeCatalog
from domain.catalog.builtin import CART_ITEM, CUSTOMER_PROFILE, CUSTOMER_SESSION
from domain.catalog.model import AttributeInfo, EventTypeInfo
from domain.catalog.types import invalid
from domain.errors import AttributeInvalid, InvalidInput, Problem, pointer

R = TypeVar("R")

IMPRECISE = "Number too precise"
_CHANGES_LOCK = threading.Lock()


class CatalogService(Application[UUID]):
    """Commands and queries of the attribute catalog (``AttributeCatalog``), each one atomic append."""

    if TYPE_CHECKING:  # provided by the application that mixes this in

        @staticmethod
        def _retrying(attempt: Callable[[], R]) -> R: ...

        sole_writer: bool

    TRUST_SECONDS = 1.0
    """How long a sole writer uses its cached catalog without asking the database for newer events."""
    _catalog_changes = 0
    """Catalog changes this process saved (``catalog_saved``): a read made before one of them is not trusted."""
    _catalog_read: tuple[int, float] = (-1, 0.0)
    """(changes seen, when) of the last catalog brought up to date from the database."""
    _catalog_absent = False
    """That read found no catalog (nothing declared yet): trusted as long as a cached one would be."""

    def catalog(self, *, private: bool = False) -> AttributeCatalog:
        """The stored catalog, or a new empty one (stored once it records something).

        Writes validate against the cached catalog itself, without copying it (it grows with every attribute);
        ask for a ``private`` copy to change it. Every write reads it: a sole writer (the one API process: the
        catalog changes only through it) skips the database for ``TRUST_SECONDS`` after bringing it up to date,
        unless this process changed it meanwhile.
        """
        changes, read_at = self._catalog_read
        cache = self.repository.cache
        if (
            not private
            and self.sole_writer
            and cache is not None
            and changes == self._catalog_changes
            and time.monotonic() - read_at < self.TRUST_SECONDS
        ):
            if self._catalog_absent:
                return AttributeCatalog.start()
            try:
                trusted: Any = cache.get(CATALOG_ID)
            except KeyError:
                pass
            else:
                return cast(AttributeCatalog, trusted)
        changes = self._catalog_changes
        try:
            # Skipping: when another thread is bringing the cached catalog up to date, use it as it is rather
            # than queue behind that thread (every write reads the catalog: it must not serialise them).
            catalog: AttributeCatalog = self.repository.get(
                CATALOG_ID, deepcopy_from_cache=private, fastforward_skipping=not private
            )
        except AggregateNotFoundError:
            if not private:  # without custom attributes, every command asked the database twice for none
                self._catalog_read, self._catalog_absent = (changes, time.monotonic()), True
            return AttributeCatalog.start()
        if not private:
            self._catalog_read, self._catalog_absent = (changes, time.monotonic()), False
        return catalog

    def catalog_saved(self) -> None:
        """This process saved a change of the catalog: its next read brings the cached one up to date."""
        with _CHANGES_LOCK:  # two saves at once must both count: a lost increment could let a stale read pass
            self._catalog_changes += 1

    def create_attribute(self, entity: str, name: str, type_: str, **fields: Any) -> AttributeInfo:
        """Declare a custom attribute (``AttributeCatalog.create_attribute``), maybe a new event type."""
        return self._changing_catalog(lambda c: c.create_attribute(entity, name, type_, **fields))

    def update_attribute(self, attribute_id: int, **fields: Any) -> AttributeInfo:
        """Change what describes an attribute; its name, type, entity and event type never change."""
        return self._changing_catalog(lambda c: c.update_attribute(attribute_id, **fields))

    def deprecate_attribute(self, attribute_id: int) -> AttributeInfo:
        """Deprecate an attribute: still accepted and readable, never deleted."""
        return self._changing_catalog(lambda c: c.deprecate_attribute(attribute_id))

    def set_schema_mode(self, event_type: str, mode: str) -> EventTypeInfo:
        """Switch a custom event type between ``strict`` and ``discover``."""
        return self._changing_catalog(lambda c: c.set_schema_mode(event_type, mode))

    def _changing_catalog(self, change: Callable[[AttributeCatalog], R]) -> R:
        def attempt() -> R:
            catalog = self.catalog(private=True)
            result = change(catalog)
            if catalog.pending_events:
                self.save(catalog)
            return result

        return self._retrying(attempt)


# -- the checks of writes ----------------------------------------------------------------------------------


def checked_event(
    catalog: AttributeCatalog,
    event_type: str,
    attributes: Mapping[str, Any],
    discovered: list[tuple[str, Any]],
) -> dict[str, Any]:
    """A custom event's attributes as recorded; what discover mode found is appended to ``discovered``.

    The caller registers those on a private copy of the catalog and saves it in the event's transaction.
    """
    validated = catalog.validate_event(event_type, attributes)
    if validated.discovered:
        discovered.append((event_type, validated.discovered))
    return recordable(validated.values, "/attributes")


def checked_profile_attributes(
    catalog: AttributeCatalog, attributes: Mapping[str, Any], prefix: str = "/attributes"
) -> dict[str, Any]:
    """A profile's custom attributes as they are recorded: declared ones only, normalised."""
    values = catalog.validate_entity_attributes(CUSTOMER_PROFILE, attributes, prefix)
    return recordable(values, prefix)


def checked_session_changes(catalog: AttributeCatalog, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Session changes with the session's and every cart item's attributes checked and normalised.

    Every problem of the request is reported at once, each at its pointer under ``/customerSession``.
    """
    checked = dict(changes)
    problems: list[Problem] = []
    if "attributes" in changes:
        prefix = "/customerSession/attributes"
        checked["attributes"] = _entity(catalog, CUSTOMER_SESSION, changes["attributes"], prefix, problems)
    if "cartItems" in changes:
        items = []
        for i, item in enumerate(changes["cartItems"]):
            prefix = pointer("customerSession", "cartItems", i, "attributes")
            values = _entity(catalog, CART_ITEM, item.get("attributes") or {}, prefix, problems)
            items.append({**item, "attributes": values})
        checked["cartItems"] = items
    if problems:
        raise invalid(problems)
    return checked


def shared_with_session(catalog: AttributeCatalog, values: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a custom event bound to a session that sessions have too (declared on
    ``CustomerSession``, and the value fits that declaration): Talon.One adds them to the session, where later
    rules see them as ``session.attributes.<name>``. The others stay the event's own."""
    shared: dict[str, Any] = {}
    for name, value in values.items():
        problems: list[Problem] = []
        found = _entity(catalog, CUSTOMER_SESSION, {name: value}, "/attributes", problems)
        if not problems:
            shared.update(found)
    return shared


def event_problems(error: InvalidInput, prefix: str) -> list[Problem]:
    """The problems of one event's validation, re-pointed under ``prefix`` (``/events/review``).

    ``/type`` (an unknown event type) becomes ``prefix`` itself; ``/attributes/x`` becomes ``prefix/x``.
    """
    moved = []
    for p in error.problems:
        where = p.pointer
        if where == "/type":
            where = prefix
        elif where is not None and where.startswith("/attributes"):
            where = prefix + where.removeprefix("/attributes")
        moved.append(Problem(p.title, p.details, where, p.parameter))
    return moved


def recordable(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Normalised attribute values in the plain JSON form the log holds (see the module docstring)."""
    problems: list[Problem] = []
    result = {name: _json(value, prefix + pointer(name), problems) for name, value in values.items()}
    if problems:
        raise invalid(problems)
    return result


def _json(value: Any, ptr: str, problems: list[Problem]) -> Any:
    if isinstance(value, Decimal):
        return _number(value, ptr, problems)
    if isinstance(value, list | tuple):
        return [_json(v, f"{ptr}/{i}", problems) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _json(v, ptr + pointer(k), problems) for k, v in value.items()}
    return value


def _number(value: Decimal, ptr: str, problems: list[Problem]) -> int | float:
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        details = f"{value} has more significant digits than a number attribute holds exactly (15)"
        problems.append(Problem(IMPRECISE, details, ptr))
    return as_float


def _entity(
    catalog: AttributeCatalog,
    entity: str,
    attributes: Mapping[str, Any],
    prefix: str,
    problems: list[Problem],
) -> dict[str, Any]:
    """The recordable attributes of one entity of a request; its problems are added to ``problems``."""
    try:
        return recordable(catalog.validate_entity_attributes(entity, attributes, prefix), prefix)
    except AttributeInvalid as e:
        problems.extend(e.problems)
        return {}
