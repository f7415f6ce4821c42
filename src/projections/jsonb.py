"""JSON for ``jsonb`` parameters: ``orjson``, where psycopg's default is the standard library's ``json.dumps``
(under B2's load a tenth of the read models' process's CPU, py-spy).

A value ``orjson`` refuses (an integer beyond 64 bits, a string that is not valid UTF-8, a type it does not
know) goes through ``json.dumps`` as before, and is written or fails as before. ``jsonb`` keeps no formatting,
so the two writers store the same values. ``exact`` is the same pair of writers for answers and webhook bodies.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

import orjson
from psycopg.types.json import set_json_dumps

OPTIONS = orjson.OPT_NON_STR_KEYS
"""Keys that are not strings become strings, as ``json.dumps`` makes them."""


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as JSON for a ``jsonb`` parameter; ``default`` turns what neither writer knows into what they do."""
    return exact(value, default or _unknown, OPTIONS)


def _unknown(value: Any) -> Any:
    raise TypeError(f"cannot encode {type(value).__name__}")


def exact(value: Any, default: Callable[[Any], Any], option: int = 0) -> bytes:
    """``value`` as JSON bytes, the way ``orjson.dumps(value, default=default, option=option)`` writes it; an
    integer beyond 64 bits, which ``orjson`` refuses, is written exactly by ``json.dumps`` (a Talon.One client
    reads it as the number it is). Responses and webhook bodies carry what clients sent and rules computed: a
    sum of large prices must not turn an answer into an error."""
    try:
        return orjson.dumps(value, default=default, option=option)
    except TypeError:  # orjson.JSONEncodeError included
        utc_z = bool(option & orjson.OPT_UTC_Z)
        return json.dumps(
            value, default=lambda v: _native(v, default, utc_z), separators=(",", ":"), ensure_ascii=False
        ).encode()


def _native(value: Any, default: Callable[[Any], Any], utc_z: bool) -> Any:
    """What ``orjson`` writes by itself, for ``json.dumps``."""
    if isinstance(value, datetime | date | time):
        text = value.isoformat()
        return text[:-6] + "Z" if utc_z and text.endswith("+00:00") else text
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return default(value)


def install() -> None:
    """Make ``dumps`` every connection's ``Json``/``Jsonb`` writer in this process (psycopg's global)."""
    set_json_dumps(dumps)
