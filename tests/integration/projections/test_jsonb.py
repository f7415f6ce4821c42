"""jsonb parameters are written by orjson, and by json.dumps where orjson refuses the value."""

from __future__ import annotations

import json
from typing import Any

import orjson
from psycopg.types import json as psycopg_json
from psycopg.types.json import Jsonb

from domain.application import Rulestream
from projections import jsonb


def test_what_orjson_writes_and_what_falls_back_to_json_dumps_read_back_the_same(rulestream: Rulestream) -> None:
    plain = {"amount": 12.5, "n": 3, "name": "ünïcode", "nested": [{"a": None, "b": True}], 7: "int key"}
    huge = {"points": 2**70}  # beyond orjson's 64 bits
    assert isinstance(jsonb.dumps(plain), bytes)  # orjson's
    assert jsonb.dumps(huge) == json.dumps(huge, separators=(",", ":")).encode()  # the fallback's, exact
    try:
        orjson.dumps(huge)
        raise AssertionError("orjson took a 70-bit integer: the fallback is no longer exercised")
    except orjson.JSONEncodeError:
        pass
    assert psycopg_json._JsonDumper._dumps is jsonb.dumps  # installed by the application's factory
    datastore: Any = rulestream.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb AS a, %s::jsonb AS b", (Jsonb(plain), Jsonb(huge)))
        row = cursor.fetchone()
    assert row == {"a": json.loads(json.dumps(plain)), "b": huge}
