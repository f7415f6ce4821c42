"""Test data for the catalog: catalogs with a few declarations, and the problems an error carries."""

from __future__ import annotations

from domain.catalog.aggregate import AttributeCatalog
from domain.errors import DomainError


def catalog_with_pageview(schema_mode: str | None = None) -> AttributeCatalog:
    """A ``pageview`` event type (``url`` string, ``seconds`` number) and one attribute of a few entities."""
    catalog = AttributeCatalog.start()
    catalog.create_attribute("Event", "url", "string", event_type="pageview", schema_mode=schema_mode)
    catalog.create_attribute("Event", "seconds", "number", event_type="pageview")
    catalog.create_attribute("CustomerProfile", "tier", "string", suggestions=["gold", "silver"])
    catalog.create_attribute("CustomerSession", "channel", "string")
    catalog.create_attribute("CartItem", "color", "string")
    return catalog


def pointers(error: DomainError) -> list[str | None]:
    return [p.pointer for p in error.problems]
