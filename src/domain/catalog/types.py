"""Talon.One attribute types: checking and normalising values, and inferring a type from a value.

Types (Talon.One's names): ``string``, ``number``, ``boolean``, ``time``, ``location``, and the lists
``(list string)``, ``(list number)``, ``(list time)``, ``(list location)``.

Normalised forms, what a rule and the log see:

- ``number``: ``Decimal`` (an int, float or Decimal; ``bool`` is never a number; NaN and infinities refused).
- ``time``: an RFC 3339 string with a zone (``Z`` or ``±hh:mm``), normalised to UTC as
  ``2026-11-22T10:00:00Z``; fractional seconds are kept to the microsecond (``.500000Z``), digits beyond
  it are dropped. A time without a zone is refused: it would mean a different instant on every server.
- ``location``: a point, given either as ``{"latitude": n, "longitude": n}`` or as the string ``"lat,lon"``
  (``"52.52,13.405"``), normalised to ``{"latitude": Decimal, "longitude": Decimal}`` with latitude in
  [-90, 90] and longitude in [-180, 180].
- lists: a JSON array whose elements each fit the element type; a problem names the element
  (``/attributes/tags/2``) and every bad element is reported.
- ``null`` fits no type: an attribute without a value is left out of the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from domain.errors import AttributeInvalid, Problem

STRING: Final = "string"
NUMBER: Final = "number"
BOOLEAN: Final = "boolean"
TIME: Final = "time"
LOCATION: Final = "location"
LIST_STRING: Final = "(list string)"
LIST_NUMBER: Final = "(list number)"
LIST_TIME: Final = "(list time)"
LIST_LOCATION: Final = "(list location)"

SCALAR_TYPES: Final = (STRING, NUMBER, BOOLEAN, TIME, LOCATION)
LIST_TYPES: Final = {LIST_STRING: STRING, LIST_NUMBER: NUMBER, LIST_TIME: TIME, LIST_LOCATION: LOCATION}
ATTRIBUTE_TYPES: Final = (*SCALAR_TYPES, *LIST_TYPES)
"""Every attribute type, in Talon.One's spelling."""

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_LAT_LON = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*", re.ASCII)
_INVALID = "Invalid attribute value"


def element_type(type_: str) -> str | None:
    """The element type of a list type (``"(list time)"`` → ``"time"``), None for a scalar type."""
    return LIST_TYPES.get(type_)


def list_of(scalar: str) -> str:
    """The list type of a scalar type (``"time"`` → ``"(list time)"``)."""
    return f"(list {scalar})"


def normalize(type_: str, value: Any, pointer: str) -> Any:
    """``value`` in the normalised form of ``type_``, or ``AttributeInvalid`` naming ``pointer``.

    Every problem of a list is reported at once, each with the pointer of its element.
    """
    problems: list[Problem] = []
    result = normalize_into(type_, value, pointer, problems)
    if problems:
        raise invalid(problems)
    return result


def invalid(problems: list[Problem]) -> AttributeInvalid:
    """One ``AttributeInvalid`` carrying every problem found."""
    message = problems[0].details if len(problems) == 1 else f"{len(problems)} attribute values are invalid"
    return AttributeInvalid(message, problems)


def normalize_into(type_: str, value: Any, pointer: str, problems: list[Problem]) -> Any:
    """Like ``normalize``, but appends the problems to ``problems`` (the result is meaningless if it did)."""
    scalar = element_type(type_)
    if scalar is None:
        return _scalar(type_, value, pointer, problems)
    if not isinstance(value, list | tuple):
        problems.append(_problem(pointer, f"expected {type_} (a JSON array), got {_json_kind(value)}"))
        return None
    return [_scalar(scalar, item, f"{pointer}/{i}", problems) for i, item in enumerate(value)]


def _scalar(type_: str, value: Any, pointer: str, problems: list[Problem]) -> Any:
    try:
        if type_ == STRING and isinstance(value, str):
            return value
        if type_ == BOOLEAN and isinstance(value, bool):
            return value
        if type_ == NUMBER:
            return _number(value)
        if type_ == TIME:
            return _time(value)
        if type_ == LOCATION:
            return _location(value)
        if type_ not in SCALAR_TYPES:
            raise ValueError(f"unknown attribute type {type_!r}")
        raise ValueError(f"expected {type_}, got {_json_kind(value)}")
    except ValueError as e:
        problems.append(_problem(pointer, str(e)))
        return None


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"expected number, got {_json_kind(value)}")
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError("expected a finite number")
    return number


def _time(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected time (an RFC 3339 string), got {_json_kind(value)}")
    return format_time(parse_time(value))


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with a zone as an aware ``datetime``; ``ValueError`` when it is not one."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"expected an RFC 3339 time with a zone, like 2026-11-22T10:00:00Z, got {text!r}")
    day, clock, fraction, zone = match.groups()
    micro = f".{fraction[:6].ljust(6, '0')}" if fraction else ""
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{day}T{clock}{micro}{zone}").astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"not a valid time: {text!r}") from e


def format_time(moment: datetime) -> str:
    """A time in the normalised form: UTC, ``Z``, microseconds only when there are some."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{utc.microsecond:06d}Z" if utc.microsecond else f"{text}Z"


def _location(value: Any) -> dict[str, Decimal]:
    if isinstance(value, str):
        match = _LAT_LON.fullmatch(value)
        if match is None:
            raise ValueError(f'expected location "lat,lon", got {value!r}')
        lat, lon = Decimal(match[1]), Decimal(match[2])
    elif isinstance(value, Mapping) and set(value) == {"latitude", "longitude"}:
        lat, lon = _number(value["latitude"]), _number(value["longitude"])
    else:
        kind = _json_kind(value)
        raise ValueError(f'expected location ({{"latitude", "longitude"}} or "lat,lon"), got {kind}')
    if not (lat.is_finite() and lon.is_finite() and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("expected latitude in [-90, 90] and longitude in [-180, 180]")
    return {"latitude": lat, "longitude": lon}


def infer_type(value: Any) -> str | None:
    """The type a value of unknown type is taken to have (Gameball-style discovery), or None if unsure.

    bool → boolean, a finite int/float/Decimal → number, an RFC 3339 string with a zone → time, any other
    string → string, a non-empty list whose elements infer one scalar type → its list type (times mixed with
    other strings → ``(list string)``). None, objects, empty, mixed or boolean lists (Talon.One has no
    ``(list boolean)``) → None: refuse, and ask for a declaration.
    ``normalize(infer_type(v), v)`` always succeeds when the type is not None.
    """
    if isinstance(value, list | tuple):
        kinds = {_infer_scalar(item) for item in value}
        if not kinds or None in kinds:
            return None
        if kinds == {TIME, STRING}:
            return LIST_STRING
        only = kinds.pop() if len(kinds) == 1 else None
        return list_of(only) if only in (STRING, NUMBER, TIME) else None
    return _infer_scalar(value)


def _infer_scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float | Decimal):
        try:
            _number(value)
        except ValueError:
            return None
        return NUMBER
    if isinstance(value, str):
        try:
            parse_time(value)
        except ValueError:
            return STRING
        return TIME
    return None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _problem(pointer: str, details: str) -> Problem:
    return Problem(title=_INVALID, details=details, pointer=pointer)
