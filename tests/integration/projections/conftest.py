from __future__ import annotations

from typing import Any

from domain.application import Rulestream
from projections.follower import FollowerRunner
from projections.registry import READ_MODELS


def catch_up(app: Rulestream, *names: str) -> None:
    """Run the live followers of these read models (all by default) until the log has nothing new."""
    for name in names or READ_MODELS:
        FollowerRunner(app, READ_MODELS[name](app)).run_until_caught_up()


def snapshot(app: Rulestream, name: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of a read model, through its views, in key order."""
    model = READ_MODELS[name](app)
    tables: dict[str, list[dict[str, Any]]] = {}
    with app.recorder.datastore.get_connection() as conn, conn.cursor() as cursor:  # type: ignore[attr-defined]
        for table in model.tables:
            cursor.execute(f'SELECT * FROM "{table.view}"')
            rows = [dict(r) for r in cursor.fetchall()]
            tables[table.name] = sorted(rows, key=lambda r: repr(sorted((k, repr(v)) for k, v in r.items())))
    return tables
