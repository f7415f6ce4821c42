"""Validating the attributes of writes: custom events, sessions, profiles and cart items."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.catalog.aggregate import AttributeCatalog
from domain.catalog.builtin import PROFILE_UPDATED
from domain.errors import AttributeInvalid, UnknownEventType
from tests.unit.catalog.builders import catalog_with_pageview, pointers


def test_a_declared_event_is_normalised() -> None:
    validated = catalog_with_pageview().validate_event("pageview", {"url": "/shoes", "seconds": 12.5})
    assert validated.values == {"url": "/shoes", "seconds": Decimal("12.5")}
    assert validated.discovered == () and validated.deprecated == ()


@pytest.mark.parametrize("event_type", ["purchase", "talon_session_closed", PROFILE_UPDATED])
def test_an_event_type_the_catalog_does_not_define_is_refused_at_type(event_type: str) -> None:
    with pytest.raises(UnknownEventType) as refused:
        catalog_with_pageview().validate_event(event_type, {"url": "/"})
    assert pointers(refused.value) == ["/type"]


def test_an_undeclared_attribute_is_refused_in_strict_mode() -> None:
    with pytest.raises(AttributeInvalid) as refused:
        catalog_with_pageview().validate_event("pageview", {"url": "/", "Seconds": 3})
    assert pointers(refused.value) == ["/attributes/Seconds"]
    assert "did you mean 'seconds'" in refused.value.problems[0].details


def test_every_problem_of_one_request_is_reported_in_one_error() -> None:
    with pytest.raises(AttributeInvalid) as refused:
        catalog_with_pageview().validate_event("pageview", {"url": 1, "seconds": True, "a/b": "x"})
    assert pointers(refused.value) == ["/attributes/url", "/attributes/seconds", "/attributes/a~1b"]


def test_an_event_without_attributes_is_valid() -> None:
    assert catalog_with_pageview().validate_event("pageview", {}).values == {}


def test_a_restricted_attribute_accepts_only_its_suggestions_and_allowed_list() -> None:
    catalog = AttributeCatalog.start()
    catalog.create_attribute(
        "Event", "sizes", "(list string)", event_type="fit", suggestions=["S", "M"],
        restricted_by_suggestions=True, has_allowed_list=True, allowed_list=["XL"],
    )  # fmt: skip
    assert catalog.validate_event("fit", {"sizes": ["S", "XL"]}).values == {"sizes": ["S", "XL"]}
    with pytest.raises(AttributeInvalid) as refused:
        catalog.validate_event("fit", {"sizes": ["S", "XXL", "L"]})
    assert pointers(refused.value) == ["/attributes/sizes/1", "/attributes/sizes/2"]


def test_suggestions_alone_do_not_restrict() -> None:
    catalog = catalog_with_pageview()
    assert catalog.validate_entity_attributes("CustomerProfile", {"tier": "platinum"}) == {"tier": "platinum"}


def test_narrowing_a_restriction_binds_new_writes_only() -> None:
    catalog = catalog_with_pageview()
    tier = catalog.attributes("CustomerProfile")[0]
    catalog.update_attribute(tier.id, restricted_by_suggestions=True)
    with pytest.raises(AttributeInvalid):
        catalog.validate_entity_attributes("CustomerProfile", {"tier": "platinum"})
    assert catalog.attribute(tier.id).suggestions == ("gold", "silver")


def test_entity_attributes_are_checked_with_the_pointer_prefix_of_the_request() -> None:
    catalog = catalog_with_pageview()
    assert catalog.validate_entity_attributes("CartItem", {"color": "red"}) == {"color": "red"}
    with pytest.raises(AttributeInvalid) as refused:
        catalog.validate_entity_attributes(
            "CartItem", {"color": 7, "size": "M"}, "/customerSession/cartItems/0/attributes"
        )
    assert pointers(refused.value) == [
        "/customerSession/cartItems/0/attributes/color", "/customerSession/cartItems/0/attributes/size"
    ]  # fmt: skip


def test_entity_attributes_of_another_entity_are_undeclared() -> None:
    with pytest.raises(AttributeInvalid) as refused:
        catalog_with_pageview().validate_entity_attributes("session", {"tier": "gold"})
    assert pointers(refused.value) == ["/attributes/tier"]


def test_discover_mode_accepts_an_undeclared_attribute_with_its_inferred_type() -> None:
    catalog = catalog_with_pageview(schema_mode="discover")
    validated = catalog.validate_event(
        "pageview", {"url": "/", "at": "2026-11-22T11:00:00+01:00", "tags": ["a"]}
    )
    assert validated.values == {"url": "/", "at": "2026-11-22T10:00:00Z", "tags": ["a"]}
    assert validated.discovered == (("at", "time"), ("tags", "(list string)"))
    assert catalog.attribute_type("Event", "at", "pageview") is None, "validation alone registers nothing"

    registered = catalog.register_discovered("pageview", validated.discovered)

    assert [(a.name, a.type, a.discovered) for a in registered] == [
        ("at", "time", True),
        ("tags", "(list string)", True),
    ]
    assert catalog.attribute_type("Event", "at", "pageview") == "time"


def test_a_discovered_attribute_is_enforced_afterwards() -> None:
    catalog = catalog_with_pageview(schema_mode="discover")
    catalog.register_discovered("pageview", catalog.validate_event("pageview", {"count": 3}).discovered)
    with pytest.raises(AttributeInvalid) as refused:
        catalog.validate_event("pageview", {"count": "three"})
    assert pointers(refused.value) == ["/attributes/count"]


@pytest.mark.parametrize(
    "attributes",
    [
        {"meta": {"a": 1}},
        {"nothing": None},
        {"empty": []},
        {"mixed": [1, "a"]},
        {"2nd": 1},
        {"URL": "x"},
        {"type": "x"},
    ],
)
def test_discover_mode_refuses_what_it_cannot_register(attributes: dict[str, object]) -> None:
    catalog = catalog_with_pageview(schema_mode="discover")
    with pytest.raises(AttributeInvalid) as refused:
        catalog.validate_event("pageview", attributes)
    assert pointers(refused.value) == [f"/attributes/{next(iter(attributes))}"]


def test_discovered_attributes_cannot_be_registered_once_the_type_is_strict() -> None:
    catalog = catalog_with_pageview(schema_mode="discover")
    discovered = catalog.validate_event("pageview", {"count": 3}).discovered
    catalog.set_schema_mode("pageview", "strict")
    with pytest.raises(AttributeInvalid):
        catalog.register_discovered("pageview", discovered)


def test_a_deprecated_attribute_is_still_accepted_and_flagged() -> None:
    catalog = catalog_with_pageview()
    seconds = catalog.attributes("Event")[1]
    catalog.deprecate_attribute(seconds.id)
    validated = catalog.validate_event("pageview", {"seconds": 3})
    assert validated.values == {"seconds": Decimal(3)}
    assert validated.deprecated == ("seconds",)


def test_types_are_looked_up_for_rules_by_entity_alias_and_event_type() -> None:
    catalog = catalog_with_pageview()
    catalog.create_attribute("Event", "url", "(list string)", event_type="share")
    assert catalog.attribute_type("profile", "tier") == "string"
    assert catalog.attribute_type("CustomerSession", "channel") == "string"
    assert catalog.attribute_type("cartItem", "color") == "string"
    assert catalog.attribute_type("Event", "seconds") == "number", "one event type declares it"
    assert catalog.attribute_type("Event", "url") is None, "event types disagree on its type"
    assert catalog.attribute_type("event", "url", "share") == "(list string)"
    assert catalog.attribute_type("Event", "nope", "pageview") is None
    assert catalog.attribute_type("Event", "url", "talon_session_closed") is None
