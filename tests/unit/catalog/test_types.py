"""Attribute types: what each accepts, its normalised form, and where a refusal points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.catalog.types import ATTRIBUTE_TYPES, format_time, infer_type, normalize
from domain.errors import AttributeInvalid

PTR = "/attributes/x"


def pointers(error: AttributeInvalid) -> list[str | None]:
    return [p.pointer for p in error.problems]


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("string", "hello", "hello"),
        ("string", "", ""),
        ("number", 3, Decimal(3)),
        ("number", 1.1, Decimal("1.1")),
        ("number", Decimal("2.50"), Decimal("2.50")),
        ("boolean", False, False),
        ("time", "2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"),
        ("time", "2026-11-22T11:00:00+01:00", "2026-11-22T10:00:00Z"),
        ("time", "2026-11-22t10:00:00.5z", "2026-11-22T10:00:00.500000Z"),
        ("time", "2026-11-22T10:00:00.123456789-02:30", "2026-11-22T12:30:00.123456Z"),
        ("location", "52.52, 13.405", {"latitude": Decimal("52.52"), "longitude": Decimal("13.405")}),
        (
            "location",
            {"latitude": -33, "longitude": 151.2},
            {"latitude": Decimal(-33), "longitude": Decimal("151.2")},
        ),
        ("(list string)", ["a", "b"], ["a", "b"]),
        ("(list number)", [], []),
        ("(list time)", ["2026-01-01T00:00:00+00:00"], ["2026-01-01T00:00:00Z"]),
        ("(list location)", ["0,0"], [{"latitude": Decimal(0), "longitude": Decimal(0)}]),
    ],
)
def test_a_fitting_value_is_normalised(type_: str, value: Any, expected: Any) -> None:
    assert normalize(type_, value, PTR) == expected


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("string", 1),
        ("string", None),
        ("number", True),
        ("number", "1"),
        ("number", float("nan")),
        ("number", Decimal("Infinity")),
        ("boolean", "true"),
        ("boolean", 0),
        ("time", "2026-11-22T10:00:00"),
        ("time", "2026-11-22"),
        ("time", "2026-13-01T00:00:00Z"),
        ("time", "0001-01-01T00:00:00+01:00"),
        ("time", 1700000000),
        ("location", "91,0"),
        ("location", "0,181"),
        ("location", "north"),
        ("location", {"lat": 1, "lon": 2}),
        ("location", [1, 2]),
        ("(list string)", "a"),
        ("(list number)", None),
        ("no such type", "x"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_at_its_pointer(type_: str, value: Any) -> None:
    with pytest.raises(AttributeInvalid) as refused:
        normalize(type_, value, PTR)
    assert pointers(refused.value) == [PTR]


def test_every_bad_list_element_is_reported_with_its_index() -> None:
    with pytest.raises(AttributeInvalid) as refused:
        normalize("(list number)", [1, True, "x", 2], "/attributes/tags")
    assert pointers(refused.value) == ["/attributes/tags/1", "/attributes/tags/2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "boolean"),
        (3, "number"),
        (2.5, "number"),
        (Decimal("1.10"), "number"),
        ("2026-11-22T10:00:00Z", "time"),
        ("2026-11-22", "string"),
        ("coffee", "string"),
        (["a", "b"], "(list string)"),
        (["a", "2026-11-22T10:00:00Z"], "(list string)"),
        ([1, 2.5], "(list number)"),
    ],
)
def test_a_type_is_inferred_from_a_value(value: Any, expected: str) -> None:
    assert infer_type(value) == expected


@pytest.mark.parametrize("value", [None, {}, {"a": 1}, [], [1, "a"], [[1]], [None], [True], float("inf")])
def test_no_type_is_inferred_when_the_value_does_not_say(value: Any) -> None:
    assert infer_type(value) is None


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.decimals() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=-5, minutes=-30)), timezone(timedelta(hours=9))]
    ),
)
times = aware_datetimes.map(lambda d: d.isoformat())
locations = st.builds(
    lambda lat, lon: {"latitude": lat, "longitude": lon},
    st.decimals(min_value=-90, max_value=90, places=6),
    st.decimals(min_value=-180, max_value=180, places=6),
)
typed_values = st.one_of(
    st.tuples(st.just("string"), st.text()),
    st.tuples(st.just("number"), st.integers() | st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("boolean"), st.booleans()),
    st.tuples(st.just("time"), times),
    st.tuples(st.just("location"), locations),
    st.tuples(st.just("(list string)"), st.lists(st.text())),
    st.tuples(st.just("(list number)"), st.lists(st.integers())),
    st.tuples(st.just("(list time)"), st.lists(times)),
)


@given(typed_values)
def test_normalising_is_idempotent(typed: tuple[str, Any]) -> None:
    type_, value = typed
    once = normalize(type_, value, PTR)
    assert normalize(type_, once, PTR) == once


@given(aware_datetimes)
def test_a_normalised_time_is_the_same_instant_in_utc(moment: datetime) -> None:
    text = normalize("time", moment.isoformat(), PTR)
    assert text.endswith("Z")
    assert datetime.fromisoformat(text) == moment
    assert text == format_time(moment)


@given(json_values)
def test_an_inferred_type_always_accepts_the_value_it_was_inferred_from(value: Any) -> None:
    inferred = infer_type(value)
    if inferred is not None:
        assert inferred in ATTRIBUTE_TYPES
        normalize(inferred, value, PTR)
