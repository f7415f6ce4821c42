"""What readers and operators ask of the projections: where each one is, and waiting until it gets somewhere."""

from __future__ import annotations

import time
from typing import Any

from domain.application import Rulestream
from projections.follower import CHECKPOINT, HEAD, LAG_EVENTS, LAG_SECONDS, lag_of
from projections.readmodel import POINTERS, REBUILD_SUFFIX, ensure_schema
from projections.rebuild import REBUILD_LOCK, rebuild_lock_key
from projections.registry import POLICY, PROJECTIONS, READ_MODELS

DEFAULT_WAIT_SECONDS = 2.0
MAX_WAIT_SECONDS = 10.0


def _datastore(app: Rulestream) -> Any:
    return app.recorder.datastore  # type: ignore[attr-defined]


def _tracking(app: Rulestream) -> str:
    return str(app.recorder.tracking_table_name)  # type: ignore[attr-defined]


def ensure(app: Rulestream) -> None:
    """Create the read models' tables and views once per application object (API processes call this)."""
    if getattr(app, "_rulestream_read_models_ready", False):
        return
    ensure_schema(app, [model(app) for model in READ_MODELS.values()])
    app._rulestream_read_models_ready = True  # type: ignore[attr-defined]


def checkpoint(app: Rulestream, name: str) -> int:
    with _datastore(app).get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(
            f'SELECT notification_id FROM "{_tracking(app)}" WHERE application_name = %s',
            (name,),
            prepare=True,
        )
        row = cursor.fetchone()
    return int(row["notification_id"] or 0) if row else 0


def wait_for_position(app: Rulestream, names: list[str], position: int, timeout: float) -> int:
    """Wait (at most ``timeout`` seconds) until every projection in ``names`` has applied ``position``.

    Answers the lowest of their checkpoints, which is below ``position`` when the wait timed out.
    """
    deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT_SECONDS)
    pause = 0.002
    while True:
        reached = min(checkpoint(app, name) for name in names)
        if reached >= position or time.monotonic() >= deadline:
            return reached
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def status(app: Rulestream) -> list[dict[str, Any]]:
    """Each read model: checkpoint, log head, lag (events, seconds), state (live, rebuilding, failed) and why."""
    ensure(app)
    tracking = _tracking(app)
    answer = []
    with _datastore(app).get_connection() as conn, conn.cursor() as cursor:
        for name in READ_MODELS:
            cursor.execute(
                f"SELECT p.generation, p.error, p.failed_at, p.applied_at, "
                f'(SELECT notification_id FROM "{tracking}" WHERE application_name = p.name) AS checkpoint, '
                f'(SELECT notification_id FROM "{tracking}" WHERE application_name = p.name || %s) AS copied, '
                "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid "
                "AND objid = (%s::int)::oid AND objsubid = 2 AND granted) AS rebuilding "
                f"FROM {POINTERS} p WHERE p.name = %s",
                (REBUILD_SUFFIX, REBUILD_LOCK, rebuild_lock_key(name), name),
            )
            row = cursor.fetchone() or {}
            position = int(row.get("checkpoint") or 0)
            lag = lag_of(cursor, app.recorder.events_table_name, app, position)  # type: ignore[attr-defined]
            state = "rebuilding" if row.get("rebuilding") else "failed" if row.get("error") else "live"
            entry: dict[str, Any] = {
                "name": name,
                "state": state,
                "checkpoint": position,
                "head": lag.head,
                "lagEvents": lag.events,
                "lagSeconds": round(lag.seconds, 3),
                "generation": row.get("generation", 1),
                "lastAppliedAt": row.get("applied_at"),
                "error": row.get("error"),
            }
            if row.get("rebuilding"):
                entry["rebuild"] = {
                    "generation": entry["generation"] + 1,
                    "checkpoint": int(row.get("copied") or 0),
                }
            answer.append(entry)
            CHECKPOINT.labels(name).set(position)
            HEAD.labels(name).set(lag.head)
            LAG_EVENTS.labels(name).set(lag.events)
            LAG_SECONDS.labels(name).set(lag.seconds)
    return answer


def observe(app: Rulestream) -> None:
    """Set every follower's Prometheus gauges (checkpoint, log head, lag) from the database.

    For ``/metrics`` of an API process: the followers run in other processes (``serve``'s children, or
    ``rulestream worker``), whose gauges no scrape reaches. A follower not set up yet reads as checkpoint 0."""
    tracking = _tracking(app)
    with _datastore(app).get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(f'SELECT application_name, notification_id FROM "{tracking}"')
        checkpoints = {row["application_name"]: int(row["notification_id"] or 0) for row in cursor.fetchall()}
        for name in [*POLICY, *PROJECTIONS]:
            position = checkpoints.get(name, 0)
            lag = lag_of(cursor, app.recorder.events_table_name, app, position)  # type: ignore[attr-defined]
            CHECKPOINT.labels(name).set(position)
            HEAD.labels(name).set(lag.head)
            LAG_EVENTS.labels(name).set(lag.events)
            LAG_SECONDS.labels(name).set(lag.seconds)
