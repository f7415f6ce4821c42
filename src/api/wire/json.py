"""Fast JSON out, with ``Decimal`` written as a JSON number (Talon.One's clients expect numbers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from projections.jsonb import exact


def number(value: Decimal) -> int | float:
    """A Decimal as the JSON number it stands for: integral values as integers."""
    integral = value.to_integral_value()
    return int(integral) if value == integral else float(value)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return number(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(content: Any) -> bytes:
    return exact(content, _default, orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
