"""The catalog's history: stored, reloaded, readable as plain JSON; deprecation deletes nothing."""

from __future__ import annotations

import json
from uuid import UUID

from eventsourcing.application import Application

from domain.catalog.aggregate import CATALOG_ID, AttributeCatalog
from tests.unit.catalog.builders import catalog_with_pageview


def stored(catalog: AttributeCatalog) -> Application[UUID]:
    app: Application[UUID] = Application()
    app.save(catalog)
    return app


def load(app: Application[UUID]) -> AttributeCatalog:
    catalog: object = app.repository.get(CATALOG_ID)
    assert isinstance(catalog, AttributeCatalog)
    return catalog


def full_catalog() -> AttributeCatalog:
    catalog = catalog_with_pageview(schema_mode="discover")
    catalog.register_discovered(
        "pageview", catalog.validate_event("pageview", {"at": "2026-01-01T00:00:00Z"}).discovered
    )
    tier = catalog.attributes("CustomerProfile")[0]
    catalog.update_attribute(tier.id, description="Loyalty tier", restricted_by_suggestions=True)
    catalog.deprecate_attribute(catalog.attributes("Event")[1].id)
    catalog.set_schema_mode("pageview", "strict")
    return catalog


def test_the_catalog_is_a_singleton_with_a_fixed_id() -> None:
    assert AttributeCatalog.start().id == CATALOG_ID == AttributeCatalog.start().id


def test_reloading_the_catalog_from_its_events_gives_the_same_catalog() -> None:
    catalog = full_catalog()
    reloaded = load(stored(catalog))
    assert reloaded.attributes() == catalog.attributes()
    assert reloaded.event_types() == catalog.event_types()
    assert reloaded.version == catalog.version


def test_a_reloaded_catalog_keeps_recording() -> None:
    app = stored(full_catalog())
    catalog = load(app)
    assert catalog.create_attribute("Event", "referrer", "string", event_type="pageview").id == 7
    app.save(catalog)
    assert [a.id for a in load(app).attributes()] == [1, 2, 3, 4, 5, 6, 7]


def test_recorded_events_hold_plain_json_values() -> None:
    app = stored(full_catalog())
    names = []
    for record in app.recorder.select_events(CATALOG_ID):
        state = json.loads(record.state)
        names.append(record.topic.rsplit(".", 1)[-1])
        plain = {k: v for k, v in state.items() if k not in ("timestamp", "originator_topic")}
        assert '"_type_":' not in json.dumps(plain), f"{record.topic} holds a non-JSON value"
    assert names == [
        "Started", *["AttributeCreated"] * 6,
        "AttributeUpdated", "AttributeDeprecated", "EventTypeSchemaModeSet",
    ]  # fmt: skip


def test_deprecating_keeps_the_attribute_and_its_history_readable() -> None:
    catalog = full_catalog()
    seconds = catalog.attributes("Event")[1]
    assert (seconds.name, seconds.deprecated) == ("seconds", True)
    assert seconds in catalog.event_type("pageview").attributes  # type: ignore[union-attr]
    version = catalog.version
    catalog.deprecate_attribute(seconds.id)
    assert catalog.version == version, "deprecating twice records nothing"
