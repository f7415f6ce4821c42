from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.rules.context import InMemoryHistory

from .builders import NOW, compiled, context, holds, item, profile, session


def attr(path: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"attr": path, "op": op} | ({} if value is None else {"value": value})


EVENT = context(
    attributes={
        "amount": Decimal("42.5"),
        "channel": "Web",
        "tags": ["a", "b"],
        "when": "2026-11-22T09:00:00Z",
    },
    session_view=session("100", coupon_codes=("SUMMER",), attributes={"city": "Berlin"}),
    profile_view=profile(attributes={"tier": "gold", "vip": True}),
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (attr("event.type", "eq", "purchase"), True),
        (attr("event.attributes.amount", "eq", 42.5), True),
        (attr("event.attributes.amount", "ne", 42.5), False),
        (attr("event.attributes.amount", "gt", 42), True),
        (attr("event.attributes.amount", "gte", 42.5), True),
        (attr("event.attributes.amount", "lt", 42.5), False),
        (attr("event.attributes.amount", "lte", 42.5), True),
        (attr("event.attributes.amount", "between", [40, 42.5]), True),
        (attr("event.attributes.amount", "between", [43, 50]), False),
        (attr("event.attributes.amount", "in", [1, 42.5]), True),
        (attr("event.attributes.amount", "notIn", [1, 42.5]), False),
        (attr("event.attributes.channel", "contains", "e"), True),
        (attr("event.attributes.channel", "startsWith", "W"), True),
        (attr("event.attributes.channel", "endsWith", "W"), False),
        (attr("event.attributes.channel", "eqIgnoreCase", "web"), True),
        (attr("event.attributes.channel", "eqIgnoreCase", "app, WEB"), True),
        (attr("event.attributes.channel", "eqIgnoreCase", "app,store"), False),
        (attr("event.attributes.tags", "contains", "b"), True),
        (attr("event.attributes.tags", "eq", ["a", "b"]), True),
        (attr("event.attributes.when", "gt", "2026-11-22T08:00:00Z"), True),
        (attr("event.attributes.when", "eq", "2026-11-22T10:00:00+01:00"), True),
        (attr("event.attributes.when", "between", ["2026-11-22T00:00:00Z", "2026-11-22T08:59:59Z"]), False),
        (attr("event.attributes.channel", "exists"), True),
        (attr("event.attributes.channel", "notExists"), False),
        (attr("session.total", "gte", 100), True),
        (attr("session.cartItemTotal", "lt", 100), False),
        (attr("session.state", "eq", "open"), True),
        (attr("session.couponCodes", "contains", "SUMMER"), True),
        (attr("session.attributes.city", "in", ["Paris", "Berlin"]), True),
        (attr("profile.attributes.vip", "eq", True), True),
        (attr("profile.attributes.tier", "eq", "silver"), False),
        (attr("profile.closedSessions", "eq", 2), True),
        (attr("profile.totalSales", "gt", 249.99), True),
        (attr("profile.loyalty.balance", "eq", 40), True),
    ],
)
def test_each_operator_compares_the_attribute(condition: dict[str, Any], expected: bool) -> None:
    assert holds(condition, EVENT) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "gt", "lt", "in", "notIn", "contains", "startsWith", "exists"])
def test_an_absent_attribute_makes_a_comparison_false(op: str) -> None:
    value = {"in": ["x"], "notIn": ["x"], "exists": None}.get(op, "x")
    assert holds(attr("event.attributes.missing", op, value), EVENT) is False


def test_an_absent_attribute_satisfies_not_exists() -> None:
    assert holds(attr("event.attributes.missing", "notExists"), EVENT) is True


def test_session_paths_without_a_session_are_absent() -> None:
    assert holds(attr("session.total", "gte", 0), context()) is False
    assert holds(attr("profile.loyalty.balance", "notExists"), context()) is True


def test_a_value_of_the_wrong_kind_makes_the_comparison_false_not_an_error() -> None:
    ctx = context(attributes={"amount": "lots"})
    assert holds(attr("event.attributes.amount", "gt", 1), ctx) is False


def test_all_any_and_not_combine_conditions() -> None:
    yes, no = attr("event.type", "eq", "purchase"), attr("event.type", "eq", "refund")
    assert holds({"all": [yes, yes]}, EVENT) and not holds({"all": [yes, no]}, EVENT)
    assert holds({"any": [no, yes]}, EVENT) and not holds({"any": [no, no]}, EVENT)
    assert holds({"not": no}, EVENT) and not holds({"not": yes}, EVENT)


def test_a_failing_top_level_condition_reports_its_index() -> None:
    rule = compiled(
        condition={"all": [attr("event.type", "eq", "purchase"), attr("session.total", "gt", 1000)]}
    )
    outcome = rule.evaluate(EVENT)
    assert (outcome.matched, outcome.condition_index) == (False, 1)


CART = context(
    session_view=session(
        items=(
            item("A", "10", 2, category="Shoes", attributes={"color": "red"}),
            item("B", "5", 3, category="shoes", returned_quantity=1),
            item("C", "7", 1, category="socks"),
            item("D", "99", 1, category="shoes", returned_quantity=1),
        )
    )
)


def test_cart_items_count_the_matching_items_still_in_the_cart() -> None:
    shoes = attr("category", "eqIgnoreCase", "shoes")
    assert holds({"cartItems": shoes, "count": {"op": "eq", "value": 2}}, CART)


def test_cart_items_sum_the_value_or_the_units_of_the_matching_items() -> None:
    shoes = attr("category", "eqIgnoreCase", "shoes")
    assert holds({"cartItems": shoes, "sum": {"of": "price", "op": "eq", "value": 30}}, CART)
    assert holds({"cartItems": shoes, "sum": {"of": "quantity", "op": "eq", "value": 4}}, CART)


def test_cart_item_attributes_are_read_per_item() -> None:
    red = attr("attributes.color", "eq", "red")
    assert holds({"cartItems": red, "count": {"op": "eq", "value": 1}}, CART)


def test_cart_items_without_a_session_do_not_hold() -> None:
    assert not holds({"cartItems": attr("sku", "exists"), "count": {"op": "gte", "value": 0}}, context())


def purchases() -> InMemoryHistory:
    history = InMemoryHistory()
    for days, amount, channel in [(40, 100, "web"), (10, 20, "web"), (2, 30, "app"), (0, 5, "web")]:
        history.record(
            "p1", "purchase", NOW - timedelta(days=days), {"amount": Decimal(amount), "channel": channel}
        )
    return history


def history(measure: str, op: str, value: Any, **query: Any) -> dict[str, Any]:
    return {"history": {"type": "purchase", "measure": measure, **query}, "op": op, "value": value}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (history("count", "eq", 4), True),
        (history("count", "eq", 3, within="P30D"), True),
        (history("sum:amount", "eq", 55, within="P30D"), True),
        (history("distinct:channel", "eq", 2), True),
        (history("count", "eq", 2, where=attr("event.attributes.channel", "eq", "web"), within="P30D"), True),
        (history("count", "eq", 1, where=attr("event.type", "eq", "purchase"), within="P1D"), True),
    ],
)
def test_history_measures_the_profiles_recorded_events(condition: dict[str, Any], expected: bool) -> None:
    assert holds(condition, context(history=purchases())) is expected


def test_history_without_a_profile_does_not_hold() -> None:
    assert not holds(history("count", "gte", 0), context(profile_id=None, history=purchases()))


numbers = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6)


@given(numbers, numbers, numbers)
def test_between_agrees_with_gte_and_lte(actual: Decimal, low: Decimal, high: Decimal) -> None:
    ctx = context(attributes={"amount": actual})
    between = holds(attr("event.attributes.amount", "between", [float(low), float(high)]), ctx)
    gte = holds(attr("event.attributes.amount", "gte", float(low)), ctx)
    lte = holds(attr("event.attributes.amount", "lte", float(high)), ctx)
    assert between == (gte and lte)


@given(numbers, numbers)
def test_exactly_one_of_lt_eq_gt_holds(actual: Decimal, value: Decimal) -> None:
    ctx = context(attributes={"amount": actual})
    results = [holds(attr("event.attributes.amount", op, float(value)), ctx) for op in ("lt", "eq", "gt")]
    assert results.count(True) == 1


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_times_compare_as_instants_whatever_their_form(actual: datetime, value: datetime) -> None:
    ctx = context(attributes={"when": actual})
    text = value.isoformat()  # "+00:00" rather than "Z"
    assert holds(attr("event.attributes.when", "gt", text), ctx) == (actual > value)
