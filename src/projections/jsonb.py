"""JSON for ``jsonb`` parameters: ``orjson``, where psycopg's default is the standard library's ``json.dumps``
(under B2's load a tenth of the read models' process's CPU, py-spy).

A value ``orjson`` refuses (an integer beyond 64 bits, a string that is not valid UTF-8, a type it does not
know) goes through ``json.dumps`` as before, and is written or fails as before. ``jsonb`` keeps no formatting,
so the two writers store the same values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from psycopg.types.json import set_json_dumps

OPTIONS = orjson.OPT_NON_STR_KEYS
"""Keys that are not strings become strings, as ``json.dumps`` makes them."""


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes | str:
    """``value`` as JSON; ``default`` turns what neither writer knows into what they do (``json.dumps``'s)."""
    try:
        return orjson.dumps(value, default=default, option=OPTIONS)
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(value, default=default)


def install() -> None:
    """Make ``dumps`` every connection's ``Json``/``Jsonb`` writer in this process (psycopg's global)."""
    set_json_dumps(dumps)
