from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import RuleInvalid
from domain.rules.durations import parse_duration
from domain.rules.language import All, CartItems, Compare, History, Mul, Not, parse_rule

from .builders import rule


def pointers(data: dict[str, Any]) -> list[str | None]:
    with pytest.raises(RuleInvalid) as refused:
        parse_rule(data)
    return [p.pointer for p in refused.value.problems]


SHOE_LOVERS = rule(
    condition={
        "all": [
            {"attr": "session.total", "op": "gte", "value": 50},
            {
                "cartItems": {"attr": "category", "op": "eqIgnoreCase", "value": "shoes"},
                "count": {"op": "gte", "value": 1},
            },
            {"history": {"type": "purchase", "within": "P30D", "measure": "count"}, "op": "lt", "value": 5},
            {"not": {"any": [{"attr": "profile.attributes.tier", "op": "eq", "value": "gold"}]}},
        ]
    },
    effects=[
        {
            "effectType": "addLoyaltyPoints",
            "props": {"name": "double", "value": {"mul": [{"attr": "session.total"}, 2]}},
        },
        {
            "effectType": "showNotification",
            "props": {"notificationType": "Offer", "title": "Double!", "body": "."},
        },
        {"effectType": "setDiscountPerItem", "props": {"name": "d", "value": 5, "position": 1}},
        {"effectType": "addFreeItem", "props": {"sku": "SOCK", "name": "socks"}},
        {"effectType": "customEffect", "props": {"name": "c", "payload": {"a": [1, "b"]}}},
        {"effectType": "triggerWebhook", "props": {"webhook": "crm"}},
        {"effectType": "deductLoyaltyPoints", "props": {"name": "d", "value": 1}},
        {
            "effectType": "setDiscount",
            "props": {"name": "d", "value": {"percentOf": "session.total", "percent": 10}},
        },
    ],
    limits={
        "perProfile": 3,
        "perProfilePerPeriod": {"count": 1, "period": "P1D"},
        "everyNth": 1,
        "budget": {"points": 100000},
    },
    schedule={"startTime": "2026-12-01T00:00:00Z", "endTime": None},
    priority=10,
    delay={"after": "PT2H", "cancelIf": ["talon_session_closed"]},
)


def test_every_node_of_the_example_parses_into_its_model() -> None:
    defn = parse_rule(SHOE_LOVERS)
    assert isinstance(defn.condition, All)
    first, second, third, fourth = defn.condition.all
    assert isinstance(first, Compare) and first.value == 50
    assert isinstance(second, CartItems) and second.count is not None
    assert isinstance(third, History) and third.history.within == "P30D"
    assert isinstance(fourth, Not)
    value = defn.effects[0].props.value  # type: ignore[union-attr]
    assert isinstance(value, Mul) and value.mul[1] == Decimal(2)
    assert [e.effect_type for e in defn.effects][:2] == ["addLoyaltyPoints", "showNotification"]


def test_a_definition_round_trips_through_its_json() -> None:
    defn = parse_rule(SHOE_LOVERS)
    assert parse_rule(defn.to_json()) == defn


def test_numbers_parse_exactly_as_decimals() -> None:
    defn = parse_rule(rule(effects=[{"effectType": "setDiscount", "props": {"name": "d", "value": 0.1}}]))
    assert defn.effects[0].props.value == Decimal("0.1")  # type: ignore[union-attr]


def test_a_bad_op_is_refused_with_a_pointer_to_it() -> None:
    condition = {
        "all": [{"attr": "session.total", "op": "eq", "value": 1}] * 2 + [{"attr": "x", "op": "equals"}]
    }
    assert pointers(rule(condition=condition)) == ["/condition/all/2/op"]


def test_a_bad_effect_value_is_refused_with_a_pointer_into_its_props() -> None:
    effects = [{"effectType": "addLoyaltyPoints", "props": {"name": "p", "value": "ten"}}]
    assert pointers(rule(effects=effects)) == ["/effects/0/props/value"]


def test_an_unknown_effect_type_is_refused_at_its_effect_type() -> None:
    assert pointers(rule(effects=[{"effectType": "giveCake", "props": {}}])) == ["/effects/0/effectType"]


def test_a_typo_in_a_key_is_refused_at_the_key() -> None:
    effects = [{"effectType": "setDiscount", "props": {"name": "d", "value": 1, "vaule": 2}}]
    assert pointers(rule(effects=effects, priorty=1)) == ["/effects/0/props/vaule", "/priorty"]


def test_an_unknown_node_is_refused_at_the_node() -> None:
    assert pointers(rule(condition={"any": [{"attr": "a", "op": "exists"}, {"every": []}]})) == [
        "/condition/any/1"
    ]


def test_a_boolean_is_not_a_number() -> None:
    effects = [{"effectType": "setDiscount", "props": {"name": "d", "value": {"div": [1, True]}}}]
    assert pointers(rule(effects=effects)) == ["/effects/0/props/value/div/1"]


def test_a_rule_needs_a_name_and_a_trigger() -> None:
    assert pointers({"trigger": []}) == ["/name", "/trigger"]


def test_a_cart_items_condition_needs_exactly_one_measure() -> None:
    condition = {"cartItems": {"attr": "sku", "op": "eq", "value": "A"}}
    assert pointers(rule(condition=condition)) == ["/condition"]


def test_a_malformed_duration_is_refused_with_a_pointer() -> None:
    condition = {"history": {"type": "purchase", "within": "P1M", "measure": "count"}, "op": "gt", "value": 1}
    assert pointers(rule(condition=condition, delay={"after": "2 hours"})) == [
        "/condition/history/within",
        "/delay/after",
    ]


def test_a_schedule_must_end_after_it_starts() -> None:
    schedule = {"startTime": "2026-12-01T00:00:00Z", "endTime": "2026-11-01T00:00:00Z"}
    assert pointers(rule(schedule=schedule)) == ["/schedule"]


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("P30D", timedelta(days=30)),
        ("PT2H", timedelta(hours=2)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("P1W", timedelta(weeks=1)),
        ("PT1M30.5S", timedelta(minutes=1, seconds=30.5)),
    ],
)
def test_iso_durations_parse_to_timedeltas(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "P1M", "P1Y", "30D", "", "P-1D", "p1d"])
def test_malformed_durations_and_months_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 duration"):
        parse_duration(text)
