from typing import Any

import pytest

from domain.errors import RuleInvalid
from domain.rules.typecheck import check_rule

from .builders import FakeCatalog, definition


def refusals(**fields: Any) -> list[tuple[str | None, str]]:
    with pytest.raises(RuleInvalid) as refused:
        check_rule(definition(**fields), FakeCatalog())
    return [(p.pointer, p.details) for p in refused.value.problems]


def pointers(**fields: Any) -> list[str | None]:
    return [p for p, _ in refusals(**fields)]


def compare(attr: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"attr": attr, "op": op} | ({} if value is None else {"value": value})


def test_a_rule_that_fits_the_catalog_passes() -> None:
    check_rule(
        definition(
            trigger=["purchase", "talon_session_closed"],
            condition={
                "all": [
                    compare("event.attributes.amount", "between", [1, 2.5]),
                    compare("event.attributes.channel", "eqIgnoreCase", "web,app"),
                    compare("event.attributes.tags", "contains", "x"),
                    compare("event.attributes.at", "gt", "2026-01-01T00:00:00Z"),
                    compare("session.total", "gte", 50),
                    compare("session.couponCodes", "contains", "SUMMER"),
                    compare("session.attributes.shippingCity", "in", ["Berlin", "Paris"]),
                    compare("profile.attributes.vip", "eq", True),
                    compare("profile.attributes.birthday", "exists"),
                    compare("profile.loyalty.balance", "lt", 10),
                    {
                        "cartItems": compare("attributes.color", "startsWith", "r"),
                        "sum": {"of": "price", "op": "gt", "value": 3},
                    },
                    {
                        "history": {
                            "type": "purchase",
                            "measure": "sum:amount",
                            "where": compare("event.attributes.channel", "eq", "web"),
                        },
                        "op": "gte",
                        "value": 3,
                    },
                ]
            },
            effects=[
                {
                    "effectType": "addLoyaltyPoints",
                    "props": {"name": "p", "value": {"round": [{"attr": "event.attributes.amount"}, 0]}},
                }
            ],
        ),
        FakeCatalog(),
    )


def test_an_unknown_trigger_type_is_refused_with_a_pointer() -> None:
    assert refusals(trigger=["purchase", "purchse"]) == [("/trigger/1", "unknown event type 'purchse'")]


def test_an_unknown_cancel_if_type_is_refused() -> None:
    assert pointers(delay={"after": "PT2H", "cancelIf": ["nope"]}) == ["/delay/cancelIf/0"]


def test_an_unknown_attribute_path_is_refused_at_its_attr() -> None:
    condition = {"all": [compare("session.total", "gt", 1), compare("session.totl", "gt", 1)]}
    assert pointers(condition=condition) == ["/condition/all/1/attr"]


def test_an_event_attribute_must_be_declared_for_a_trigger() -> None:
    assert pointers(condition=compare("event.attributes.color", "eq", "red")) == ["/condition/attr"]


def test_an_event_attribute_declared_with_conflicting_types_is_refused() -> None:
    details = refusals(
        trigger=["purchase", "add_to_cart"], condition=compare("event.attributes.amount", "gt", 1)
    )
    assert details == [
        ("/condition/attr", "attribute 'event.attributes.amount' has conflicting types: number, string")
    ]


def test_an_event_attribute_declared_for_one_of_the_triggers_is_enough() -> None:
    check_rule(
        definition(
            trigger=["purchase", "talon_session_closed"],
            condition=compare("event.attributes.amount", "gt", 1),
        ),
        FakeCatalog(),
    )


def test_session_paths_are_allowed_in_rules_of_non_session_events() -> None:
    check_rule(definition(condition=compare("session.state", "eq", "closed")), FakeCatalog())


@pytest.mark.parametrize(
    ("attr", "op", "value"),
    [
        ("session.state", "gt", "a"),
        ("session.state", "between", ["a", "b"]),
        ("session.total", "startsWith", "1"),
        ("session.total", "contains", 1),
        ("profile.attributes.vip", "lt", True),
        ("session.couponCodes", "in", ["A"]),
        ("profile.attributes.tier", "eqIgnoreCase", None),
    ],
)
def test_an_operator_that_does_not_fit_the_type_is_refused_at_op(attr: str, op: str, value: Any) -> None:
    if value is None:
        attr, op, value = "profile.closedSessions", "eqIgnoreCase", "x"
    assert pointers(condition=compare(attr, op, value)) == ["/condition/op"]


@pytest.mark.parametrize(
    ("attr", "op", "value", "at"),
    [
        ("session.total", "gte", "50", "/condition/value"),
        ("session.state", "eq", 1, "/condition/value"),
        ("profile.attributes.vip", "eq", "yes", "/condition/value"),
        ("session.total", "between", [1], "/condition/value"),
        ("session.total", "between", [1, "x"], "/condition/value/1"),
        ("session.total", "between", [10, 1], "/condition/value"),
        ("profile.attributes.birthday", "between", ["2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"],
         "/condition/value"),
        ("session.total", "in", [], "/condition/value"),
        ("session.total", "in", 1, "/condition/value"),
        ("session.total", "in", [1, "2"], "/condition/value/1"),
        ("session.couponCodes", "contains", 1, "/condition/value"),
        ("profile.attributes.birthday", "gt", "yesterday", "/condition/value"),
        ("session.total", "exists", 1, "/condition/value"),
        ("session.total", "eq", None, "/condition/value"),
    ],
)
def test_a_value_that_does_not_fit_the_type_is_refused_at_value(
    attr: str, op: str, value: Any, at: str
) -> None:
    assert pointers(condition={"attr": attr, "op": op, "value": value}) == [at]


def test_cart_item_paths_are_checked_in_the_item_scope() -> None:
    condition = {"cartItems": compare("session.total", "gt", 1), "count": {"op": "gte", "value": 1}}
    assert pointers(condition=condition) == ["/condition/cartItems/attr"]


def test_a_cart_item_attribute_must_be_declared() -> None:
    condition = {"cartItems": compare("attributes.size", "eq", "M"), "count": {"op": "gte", "value": 1}}
    assert pointers(condition=condition) == ["/condition/cartItems/attr"]


def test_a_cart_items_count_is_a_number() -> None:
    condition = {"cartItems": compare("sku", "eq", "A"), "count": {"op": "startsWith", "value": "1"}}
    assert pointers(condition=condition) == ["/condition/count/op"]


def test_history_conditions_are_checked_against_their_event_type() -> None:
    where = compare("event.attributes.shipping", "eq", "x")
    condition = {
        "history": {"type": "purchase", "where": where, "measure": "sum:channel"},
        "op": "gt",
        "value": 1,
    }
    assert pointers(condition=condition) == ["/condition/history/where/attr", "/condition/history/measure"]


def test_a_history_of_an_unknown_type_is_refused() -> None:
    condition = {"history": {"type": "refund", "measure": "count"}, "op": "gt", "value": 1}
    assert pointers(condition=condition) == ["/condition/history/type"]


def test_history_where_sees_only_event_paths() -> None:
    where = compare("session.total", "gt", 1)
    condition = {"history": {"type": "purchase", "where": where, "measure": "count"}, "op": "gt", "value": 1}
    assert pointers(condition=condition) == ["/condition/history/where/attr"]


def test_nested_cart_items_are_refused() -> None:
    inner = {"cartItems": compare("sku", "eq", "A"), "count": {"op": "gte", "value": 1}}
    condition = {"cartItems": {"not": inner}, "count": {"op": "gte", "value": 1}}
    assert pointers(condition=condition) == ["/condition/cartItems/not"]


def test_arithmetic_over_a_non_number_is_refused_at_the_path() -> None:
    value = {"add": [1, {"mul": [2, {"attr": "session.state"}]}]}
    effects = [{"effectType": "setDiscount", "props": {"name": "d", "value": value}}]
    assert pointers(effects=effects) == ["/effects/0/props/value/add/1/mul/1/attr"]


def test_percent_of_an_unknown_path_is_refused() -> None:
    value = {"percentOf": "session.totl", "percent": 10}
    effects = [{"effectType": "setDiscount", "props": {"name": "d", "value": value}}]
    assert pointers(effects=effects) == ["/effects/0/props/value/percentOf"]


def test_every_problem_is_reported_at_once() -> None:
    assert pointers(trigger=["nope"], condition=compare("session.totl", "gt", 1)) == [
        "/trigger/0",
        "/condition/attr",
    ]


def test_between_times_is_ordered_as_times_not_as_text() -> None:
    close = ["2026-01-01T10:00:00Z", "2026-01-01T10:00:00.5Z"]  # as normalised text the first sorts above
    check_rule(definition(condition={"attr": "profile.attributes.birthday", "op": "between", "value": close}),
               FakeCatalog())  # fmt: skip
