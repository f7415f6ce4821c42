"""The pull feed of effects: every recorded effect in log order, with the event that caused it.

Read straight from the log (``Evaluation`` events), by position: ``after`` is a log position, and each page
answers the position to continue after. A page reads at most ``SCAN`` positions of the log (an index range of
the primary key), so a consumer far behind a log with few effects gets short or empty pages, never a slow one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification

from domain.application import Rulestream
from domain.effects import Evaluation, numeric

SCAN = 10_000
TOPIC = f"{Evaluation.Evaluated.__module__}:{Evaluation.Evaluated.__qualname__}"


@dataclass(frozen=True)
class Page:
    effects: list[dict[str, Any]]
    after: int
    """The position to ask for next (the last one this page read)."""
    has_more: bool


def effects_after(app: Rulestream, after: int, limit: int) -> Page:
    """Up to ``limit`` effects recorded after position ``after`` (an evaluation's effects are never split, so a
    page may hold more than ``limit`` when one evaluation has many)."""
    recorder: Any = app.recorder
    table = recorder.events_table_name
    with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        # The head first: positions up to it are all committed (writers commit in position order).
        cursor.execute(f'SELECT max(notification_id) AS head FROM "{table}"')
        head_row = cursor.fetchone()
        head = int(head_row["head"] or 0) if head_row else 0
        last = max(after, min(after + SCAN, head))
        cursor.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            f'FROM "{table}" WHERE notification_id > %s AND notification_id <= %s AND topic = %s '
            "ORDER BY notification_id LIMIT %s",
            (after, last, TOPIC, limit + 1),
        )
        rows = cursor.fetchall()
    effects: list[dict[str, Any]] = []
    for row in rows:
        if len(effects) >= limit:
            last = row["notification_id"] - 1
            break
        event: Any = app.mapper.to_domain_event(
            Notification(id=row["notification_id"], originator_id=row["originator_id"],
                         originator_version=row["originator_version"], topic=row["topic"], state=bytes(row["state"]))
        )  # fmt: skip
        for index, effect in enumerate(event.effects):
            effects.append({
                "position": row["notification_id"], "effectIndex": index, "recordedAt": event.timestamp,
                "cause": event.cause, **numeric(effect),
            })  # fmt: skip
    else:
        if len(rows) > limit:  # every row read (evaluations without effects): go on after the last one
            last = rows[-1]["notification_id"]
    return Page(effects, last, last < head)
