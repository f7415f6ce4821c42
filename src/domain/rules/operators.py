"""The operators of ``attr`` conditions, compiled once into tests of a present value.

Values arrive in the catalog's normalised form (``Decimal``, RFC 3339 strings) but ints, floats and
``datetime``s are accepted too; anything of the wrong kind makes the test false, never an exception, because
evaluation must not fail on one odd attribute value.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..catalog.types import parse_time

Test = Callable[[Any], bool]


def as_number(value: Any) -> Decimal | None:
    """A number as ``Decimal`` (floats through their shortest text, so ``0.1`` is exactly 0.1), else None."""
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    return number if number.is_finite() else None


def as_time(value: Any) -> datetime | None:
    """A time as an aware ``datetime`` (naive ones are taken as UTC), else None."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            return None
    return None


def _canonical(value: Any) -> Any:
    # Numbers compare by value whatever their Python type; Decimal(2) == 2.0 and they hash alike.
    number = as_number(value)
    return number if number is not None else value


def compile_op(op: str, value: Any) -> Test:
    """The test of a present attribute value for ``op`` and ``value`` (already type-checked)."""
    if op in ("eq", "ne"):
        equal = _equals(value)
        return equal if op == "eq" else lambda actual: not equal(actual)
    if op in ("gt", "gte", "lt", "lte"):
        return _ordering(op, value)
    if op == "between":
        low, high = _ordering("gte", value[0]), _ordering("lte", value[1])
        return lambda actual: low(actual) and high(actual)
    if op in ("in", "notIn"):
        options = frozenset(_canonical(v) for v in value if isinstance(v, Hashable))
        if op == "in":
            return lambda actual: isinstance(actual, Hashable) and _canonical(actual) in options
        return lambda actual: isinstance(actual, Hashable) and _canonical(actual) not in options
    if op == "contains":
        return _contains(value)
    if op == "startsWith":
        return lambda actual: isinstance(actual, str) and actual.startswith(value)
    if op == "endsWith":
        return lambda actual: isinstance(actual, str) and actual.endswith(value)
    if op == "eqIgnoreCase":
        # Gameball's "equals": a comma list means any of them; the whole text also counts, commas and all.
        options = frozenset({value.casefold(), *(part.strip().casefold() for part in value.split(","))})
        return lambda actual: isinstance(actual, str) and actual.strip().casefold() in options
    if op == "exists":
        return lambda actual: True
    raise ValueError(f"no test for operator {op!r}")  # notExists is decided by the caller: it sees absence


def _equals(value: Any) -> Test:
    number = as_number(value)
    if number is not None:
        return lambda actual: as_number(actual) == number
    if isinstance(value, bool):
        return lambda actual: actual is value
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return lambda actual: isinstance(actual, list | tuple) and [_canonical(a) for a in actual] == items
    moment = as_time(value)
    if moment is not None:  # a time may be written with another zone or precision and still be equal
        return lambda actual: actual == value or as_time(actual) == moment
    return lambda actual: isinstance(actual, str) and actual == value


def _ordering(op: str, value: Any) -> Test:
    compare: Callable[[Any, Any], bool] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }[op]
    number = as_number(value)
    if number is not None:
        return lambda actual: (n := as_number(actual)) is not None and compare(n, number)
    moment = as_time(value)
    if moment is not None:
        return lambda actual: (t := as_time(actual)) is not None and compare(t, moment)
    return lambda actual: False


def _contains(value: Any) -> Test:
    item = _canonical(value)

    def test(actual: Any) -> bool:
        if isinstance(actual, str):
            return isinstance(value, str) and value in actual
        if isinstance(actual, list | tuple):
            return any(_canonical(a) == item for a in actual)
        return False

    return test
