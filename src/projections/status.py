"""What readers and operators ask of the projections: where each one is, and waiting until it gets somewhere."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from domain.application import Rulestream
from projections.follower import (
    CHECKPOINT,
    FOLLOWER_LOCK,
    HEAD,
    LAG_EVENTS,
    LAG_SECONDS,
    READERS_CHANNEL,
    follower_lock_key,
    lag_of,
)
from projections.readmodel import POINTERS, REBUILD_SUFFIX, ensure_schema
from projections.rebuild import REBUILD_LOCK, rebuild_lock_key
from projections.registry import POLICY, PROJECTIONS, READ_MODELS

DEFAULT_WAIT_SECONDS = 2.0
"""How long a read with ``Rulestream-Min-Position`` waits for it."""
IMPLICIT_WAIT_SECONDS = 0.5
"""How long a read without it waits for the log head as of the read (a read model that has failed, or is far
behind, answers what it has, marked stale, instead of holding every read for the full wait)."""
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


def _reached(app: Rulestream, names: Sequence[str], *, head: bool = False) -> tuple[int, int]:
    """The lowest checkpoint of ``names`` and (``head``) the log's last position, in one round trip."""
    events = app.recorder.events_table_name  # type: ignore[attr-defined]
    last = f'(SELECT max(notification_id) FROM "{events}")' if head else "0"
    with _datastore(app).get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(
            f"SELECT min(coalesce(t.notification_id, 0)) AS reached, {last} AS head FROM unnest(%s::text[]) n "
            f'LEFT JOIN "{_tracking(app)}" t ON t.application_name = n',  # a follower not set up yet: 0
            (list(names),),
            prepare=True,
        )
        row = cursor.fetchone() or {}
    return int(row.get("reached") or 0), int(row.get("head") or 0)


def hurry(app: Rulestream) -> None:
    """Ask the read models to apply what they have now rather than after their pause (``READERS_CHANNEL``)."""
    with _datastore(app).get_connection() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", (READERS_CHANNEL,), prepare=True)


def wait_for_position(
    app: Rulestream,
    names: list[str],
    position: int | None,
    timeout: float,
    settle: Callable[[int, float], int] | None = None,
) -> tuple[int, int]:
    """Wait (at most ``timeout`` seconds) until every projection in ``names`` has applied ``position``.

    ``None`` is the log head as of the call: what every write that has answered recorded, and, with ``settle``
    (the head and the time left → the position that holds the rule policy's evaluations of it), the effects of
    those writes too, which a write that did not wait for them (``silent=yes``, the Gameball ingest) has not
    seen recorded. Answers the lowest of the checkpoints, which is below the position when the wait timed out,
    and the position waited for.
    """
    deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT_SECONDS)
    reached, head = _reached(app, names, head=position is None)
    target = head if position is None else position
    if position is None and settle is not None:
        target = settle(head, max(deadline - time.monotonic(), 0.0))
    if reached >= target:
        return reached, target
    hurry(app)
    pause = 0.002
    while time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
        reached = _reached(app, names)[0]
        if reached >= target:
            break
    return reached, target


HELD = (
    "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = %s::oid AND objid = (%s::int)::oid)"
)
"""Whether a session holds the advisory lock (int4, int4) of the two parameters, in this database (advisory locks
are the cluster's: another database's followers hold the same keys)."""


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
                f"{HELD} AS rebuilding, {HELD} AS running "
                f"FROM {POINTERS} p WHERE p.name = %s",
                (REBUILD_SUFFIX, REBUILD_LOCK, rebuild_lock_key(name), FOLLOWER_LOCK,
                 follower_lock_key(name), name),  # fmt: skip
            )
            row = cursor.fetchone() or {}
            position = int(row.get("checkpoint") or 0)
            lag = lag_of(cursor, app.recorder.events_table_name, app, position)  # type: ignore[attr-defined]
            state = (
                "rebuilding" if row.get("rebuilding") else "failed" if row.get("error")
                else "live" if row.get("running") else "stopped"  # no process holds its election
            )  # fmt: skip
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
