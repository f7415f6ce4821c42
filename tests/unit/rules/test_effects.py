from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .builders import compiled, context, profile, session

CTX = context(
    attributes={"amount": Decimal("19.99")},
    session_view=session("80", attributes={"zero": Decimal(0)}),
    profile_view=profile(),
)


def points(value: Any, ctx: Any = CTX) -> Decimal:
    rule = compiled(effects=[{"effectType": "addLoyaltyPoints", "props": {"name": "p", "value": value}}])
    outcome = rule.evaluate(ctx)
    assert outcome.effect_index is None, outcome.details
    result: Decimal = outcome.effects[0].props["value"]
    return result


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, "5"),
        (0.1, "0.1"),
        ({"attr": "session.total"}, "80"),
        ({"add": [0.1, 0.2]}, "0.3"),
        ({"sub": [10, 2.5, 0.5]}, "7"),
        ({"mul": [{"attr": "session.total"}, 2]}, "160"),
        ({"div": [10, 4]}, "2.5"),
        ({"div": [1, 3]}, "0.3333333333333333333333333333"),
        ({"min": [3, 1, 2]}, "1"),
        ({"max": [3, {"attr": "profile.loyalty.balance"}]}, "40"),
        ({"round": [2.345, 2]}, "2.35"),
        ({"round": [{"div": [1, 3]}, 0]}, "0"),
        ({"percentOf": "session.total", "percent": 12.5}, "10"),
        ({"percentOf": "event.attributes.amount", "percent": 10}, "1.999"),
    ],
)
def test_arithmetic_nodes_compute_in_decimal(value: Any, expected: str) -> None:
    assert points(value) == Decimal(expected)


def test_division_by_zero_gives_no_effect_and_a_failure_reason() -> None:
    rule = compiled(
        effects=[
            {
                "effectType": "showNotification",
                "props": {"notificationType": "Info", "title": "t", "body": "b"},
            },
            {
                "effectType": "setDiscount",
                "props": {"name": "d", "value": {"div": [1, {"attr": "session.attributes.zero"}]}},
            },
        ]
    )
    outcome = rule.evaluate(CTX)
    assert (outcome.matched, outcome.effects, outcome.effect_index, outcome.details) == (
        True, (), 1, "division by zero"
    )  # fmt: skip


def test_an_absent_attribute_in_arithmetic_gives_no_effect() -> None:
    rule = compiled(
        effects=[{"effectType": "setDiscount", "props": {"name": "d", "value": {"attr": "session.total"}}}]
    )
    outcome = rule.evaluate(context())
    assert (outcome.effects, outcome.effect_index) == ((), 0)
    assert "session.total" in outcome.details


def test_a_negative_amount_gives_no_effect() -> None:
    outcome = compiled(
        effects=[{"effectType": "setDiscount", "props": {"name": "d", "value": {"sub": [1, 2]}}}]
    ).evaluate(CTX)
    assert outcome.effect_index == 0


def test_every_effect_type_gives_its_props() -> None:
    rule = compiled(
        effects=[
            {"effectType": "addLoyaltyPoints", "props": {"name": "a", "value": 1}},
            {"effectType": "deductLoyaltyPoints", "props": {"name": "b", "value": 2}},
            {"effectType": "setDiscount", "props": {"name": "c", "value": 3}},
            {"effectType": "setDiscountPerItem", "props": {"name": "d", "value": 4, "position": 1}},
            {"effectType": "addFreeItem", "props": {"sku": "S", "name": "sock"}},
            {
                "effectType": "showNotification",
                "props": {"notificationType": "Offer", "title": "t", "body": "b"},
            },
            {"effectType": "customEffect", "props": {"name": "c", "payload": {"k": [1]}}},
            {"effectType": "triggerWebhook", "props": {"webhook": "crm"}},
        ]
    )
    outcome = rule.evaluate(CTX)
    assert [(e.effect_type, e.props) for e in outcome.effects] == [
        ("addLoyaltyPoints", {"name": "a", "value": Decimal(1)}),
        ("deductLoyaltyPoints", {"name": "b", "value": Decimal(2)}),
        ("setDiscount", {"name": "c", "value": Decimal(3)}),
        ("setDiscountPerItem", {"name": "d", "value": Decimal(4), "position": 1}),
        ("addFreeItem", {"sku": "S", "name": "sock"}),
        ("showNotification", {"notificationType": "Offer", "title": "t", "body": "b"}),
        ("customEffect", {"name": "c", "payload": {"k": [1]}}),
        ("triggerWebhook", {"webhook": "crm"}),
    ]
    assert (outcome.points, outcome.discount) == (Decimal(1), Decimal(7))


def test_static_props_are_fresh_for_every_evaluation() -> None:
    rule = compiled(effects=[{"effectType": "customEffect", "props": {"name": "c", "payload": {"k": [1]}}}])
    rule.evaluate(CTX).effects[0].props["payload"]["k"].append(2)
    assert rule.evaluate(CTX).effects[0].props["payload"] == {"k": [1]}


cents = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9)


@given(cents, cents)
def test_decimal_arithmetic_is_exact(a: Decimal, b: Decimal) -> None:
    ctx = context(session_view=session(str(a)), profile_view=profile(loyalty_balance=b))
    total, balance = {"attr": "session.total"}, {"attr": "profile.loyalty.balance"}
    assert points({"max": [0, {"add": [total, balance]}]}, ctx) == max(Decimal(0), a + b)
    assert points({"max": [0, {"sub": [total, balance]}]}, ctx) == max(Decimal(0), a - b)
    assert points({"max": [0, {"mul": [total, balance]}]}, ctx) == max(Decimal(0), a * b)


def test_points_for_an_event_without_a_profile_are_no_effect_and_a_failure_reason() -> None:
    for kind in ("addLoyaltyPoints", "deductLoyaltyPoints"):
        rule = compiled(effects=[{"effectType": kind, "props": {"name": "p", "value": 5}}])
        outcome = rule.evaluate(context(profile_id=None))
        assert (outcome.effects, outcome.effect_index) == ((), 0) and "profile" in outcome.details
        assert rule.evaluate(context()).effects  # with a profile: booked
