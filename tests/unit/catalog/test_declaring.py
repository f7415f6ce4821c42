"""Declaring attributes: custom event types come into being through their first attribute."""

from __future__ import annotations

import pytest

from domain.catalog.aggregate import AttributeCatalog
from domain.catalog.builtin import BUILTIN_EVENT_TYPES, FIRST_CUSTOM_EVENT_TYPE_ID, SESSION_CLOSED
from domain.errors import Conflict, InvalidInput, NotFound
from tests.unit.catalog.builders import catalog_with_pageview, pointers


def test_the_first_attribute_of_an_event_type_creates_the_event_type() -> None:
    catalog = AttributeCatalog.start()
    assert not catalog.is_event_type("pageview")

    url = catalog.create_attribute("Event", "url", "string", event_type="pageview", title="Page URL")

    assert catalog.is_event_type("pageview")
    assert (url.id, url.entity, url.event_type, url.title, url.type) == (
        1,
        "Event",
        "pageview",
        "Page URL",
        "string",
    )
    pageview = catalog.event_types()[-1]
    assert (pageview.name, pageview.builtin, pageview.mode, pageview.id) == ("pageview", False, "strict", 100)
    assert [a.name for a in pageview.attributes] == ["url"]
    assert url.event_type_id == pageview.id == FIRST_CUSTOM_EVENT_TYPE_ID


def test_more_attributes_with_the_same_event_type_extend_it() -> None:
    catalog = catalog_with_pageview()
    referrer = catalog.create_attribute("Event", "referrer", "string", event_type="pageview")
    catalog.create_attribute("Event", "sku", "string", event_type="search")

    pageview = catalog.event_type("pageview")
    assert pageview is not None
    assert [a.name for a in pageview.attributes] == ["url", "seconds", "referrer"]
    assert referrer.id == 6 and referrer.event_type_id == pageview.id
    assert catalog.event_type("search") is not None and catalog.event_type("search").id == pageview.id + 1  # type: ignore[union-attr]


def test_built_in_event_types_come_first_with_fixed_ids() -> None:
    catalog = catalog_with_pageview()
    types = catalog.event_types()
    assert [t.name for t in types[: len(BUILTIN_EVENT_TYPES)]] == list(BUILTIN_EVENT_TYPES)
    assert [t.id for t in types[: len(BUILTIN_EVENT_TYPES)]] == list(range(1, len(BUILTIN_EVENT_TYPES) + 1))
    assert all(t.builtin and t.attributes == () for t in types[: len(BUILTIN_EVENT_TYPES)])
    assert catalog.is_event_type(SESSION_CLOSED)
    assert not catalog.is_event_type("purchase")


@pytest.mark.parametrize(
    ("entity", "event_type", "name"),
    [("Event", "pageview", "url"), ("Event", "pageview", "URL"), ("CustomerProfile", None, "Tier")],
)
def test_a_name_taken_in_the_same_scope_is_refused_whatever_its_case(
    entity: str, event_type: str | None, name: str
) -> None:
    catalog = catalog_with_pageview()
    with pytest.raises(Conflict) as refused:
        catalog.create_attribute(entity, name, "string", event_type=event_type)
    assert pointers(refused.value) == ["/name"]


def test_the_same_name_may_serve_other_event_types_and_entities() -> None:
    catalog = catalog_with_pageview()
    catalog.create_attribute("Event", "url", "string", event_type="share")
    catalog.create_attribute("CustomerSession", "url", "string")
    assert len(catalog.attributes()) == 7


def test_a_title_taken_in_the_same_scope_is_refused() -> None:
    catalog = catalog_with_pageview()
    with pytest.raises(Conflict) as refused:
        catalog.create_attribute("Event", "link", "string", event_type="pageview", title="URL")
    assert pointers(refused.value) == ["/title"]


@pytest.mark.parametrize("event_type", ["talon_session_closed", "talon_custom", "Talon_Custom"])
def test_event_types_named_talon_are_reserved(event_type: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        AttributeCatalog.start().create_attribute("Event", "x", "string", event_type=event_type)
    assert pointers(refused.value) == ["/eventType"]


@pytest.mark.parametrize(
    ("entity", "name"),
    [("CartItem", "sku"), ("CartItem", "Price"), ("CustomerSession", "total"), ("Event", "type")],
)
def test_a_built_in_property_name_cannot_be_redefined(entity: str, name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        AttributeCatalog.start().create_attribute(
            entity, name, "string", event_type="e" if entity == "Event" else None
        )
    assert pointers(refused.value) == ["/name"]


def test_every_problem_of_a_declaration_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as refused:
        AttributeCatalog.start().create_attribute(
            "Event", "1st", "text", event_type="talon_x", title="-", suggestions=[""], schema_mode="loose"
        )
    assert sorted(p or "" for p in pointers(refused.value)) == [
        "/eventType", "/name", "/schemaMode", "/suggestions/0", "/title", "/type"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("entity", "event_type", "kwargs", "ptr"),
    [
        ("Event", None, {}, "/eventType"),
        ("CustomerProfile", "pageview", {}, "/eventType"),
        ("Customer", None, {}, "/entity"),
        ("CustomerProfile", None, {"schema_mode": "discover"}, "/schemaMode"),
        ("CustomerProfile", None, {"name": "ünïcode"}, "/name"),
        (
            "CustomerProfile",
            None,
            {"type_": "number", "restricted_by_suggestions": True},
            "/restrictedBySuggestions",
        ),
        ("CustomerProfile", None, {"allowed_list": ["a"]}, "/allowedList"),
        ("CustomerProfile", None, {"suggestions": [str(i) for i in range(51)]}, "/suggestions"),
    ],
)
def test_an_ill_formed_declaration_is_refused_at_its_field(
    entity: str, event_type: str | None, kwargs: dict[str, object], ptr: str
) -> None:
    args = {"name": "ok", "type_": "string"} | kwargs
    with pytest.raises(InvalidInput) as refused:
        AttributeCatalog.start().create_attribute(entity, event_type=event_type, **args)  # type: ignore[arg-type]
    assert pointers(refused.value) == [ptr]


def test_the_schema_mode_is_chosen_with_the_first_attribute_and_only_repeated_later() -> None:
    catalog = AttributeCatalog.start()
    catalog.create_attribute("Event", "amount", "number", event_type="purchase", schema_mode="discover")
    catalog.create_attribute("Event", "currency", "string", event_type="purchase", schema_mode="discover")
    with pytest.raises(InvalidInput) as refused:
        catalog.create_attribute("Event", "store", "string", event_type="purchase", schema_mode="strict")
    assert pointers(refused.value) == ["/schemaMode"]
    assert catalog.set_schema_mode("purchase", "strict").mode == "strict"


def test_the_schema_mode_of_an_unknown_event_type_cannot_be_set() -> None:
    with pytest.raises(NotFound):
        catalog_with_pageview().set_schema_mode("purchase", "discover")


def test_an_update_changes_what_describes_an_attribute_and_nothing_else() -> None:
    catalog = catalog_with_pageview()
    tier = catalog.attributes("CustomerProfile")[0]
    updated = catalog.update_attribute(
        tier.id, description="Loyalty tier", suggestions=["gold", "silver", "bronze"]
    )
    assert (updated.description, updated.suggestions) == ("Loyalty tier", ("gold", "silver", "bronze"))
    assert (updated.name, updated.type, updated.created) == (tier.name, tier.type, tier.created)
    version = catalog.version
    catalog.update_attribute(tier.id, description="Loyalty tier")
    assert catalog.version == version, "an update that changes nothing records nothing"


def test_a_non_editable_attribute_cannot_be_updated() -> None:
    catalog = AttributeCatalog.start()
    fixed = catalog.create_attribute("Store", "region", "string", editable=False)
    with pytest.raises(Conflict):
        catalog.update_attribute(fixed.id, description="x")


def test_an_unknown_attribute_id_is_not_found() -> None:
    with pytest.raises(NotFound):
        catalog_with_pageview().attribute(99)


def test_an_empty_event_type_on_another_entity_means_none() -> None:
    attribute = AttributeCatalog.start().create_attribute("CustomerProfile", "tier", "string", event_type="")
    assert attribute.event_type is None
