"""Queries of the read models, through their views. Every filter here is served by an index of the model.

Orders are total (ties broken by position or key) so that paging never repeats or skips a row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from domain.application import Rulestream

MAX_PAGE = 1000


@dataclass(frozen=True)
class EventFilter:
    """The events log's filters (Talon.One's, plus ``attributes`` containment and the ``after`` cursor)."""

    types: Sequence[str] = ()
    created_before: datetime | None = None
    created_after: datetime | None = None
    session: str | None = None
    profile: str | None = None
    effect_type: str | None = None
    attributes: dict[str, Any] | None = None
    after: int | None = None
    descending: bool = False


def _where(f: EventFilter, by_effect: bool) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    # One type as ``=``, not ``= ANY``: only an equality lets the (type, created, position) index give the
    # page in order (PostgreSQL 15 sorts, or walks ``created`` filtering, for an array).
    types = list(f.types)
    ordered = "x" if by_effect else "e"  # the table whose index gives the page's order
    for clause, value in (
        ("e.type = %s", types[0] if len(types) == 1 else None),
        ("e.type = ANY(%s)", types if len(types) > 1 else None),
        (f"{ordered}.created < %s", f.created_before),
        (f"{ordered}.created > %s", f.created_after),
        ("e.session = %s", f.session),
        ("e.profile = %s", f.profile),
        ("x.effect_type = %s", f.effect_type),
        ("e.attributes @> %s", Jsonb(f.attributes) if f.attributes else None),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return where, params


def events_sql(f: EventFilter, limit: int, skip: int) -> tuple[str, list[Any]]:
    """The events log query: by ``created`` (then position), or by position from the ``after`` cursor.

    With an ``effectType`` the page is walked in the side table of (effect type, created, position), joined to the
    events: its index yields that type's events already in order.
    """
    by_effect = f.effect_type is not None
    types = list(dict.fromkeys(f.types))
    if len(types) > 1 and not by_effect and f.after is None:
        return _events_of_types_sql(replace(f, types=()), types, limit, skip)
    where, params = _where(replace(f, types=types), by_effect)
    ordered = "x" if by_effect else "e"
    direction = "DESC" if f.descending else "ASC"
    if f.after is not None:
        where.append(f"{ordered}.position < %s" if f.descending else f"{ordered}.position > %s")
        params.append(f.after)
        order = f"{ordered}.position {direction}"
    else:
        order = f"{ordered}.created {direction}, {ordered}.position {direction}"
    text = "SELECT e.* FROM rs_events_log e"
    if by_effect:
        text = "SELECT e.* FROM rs_events_log_effect_types x JOIN rs_events_log e ON e.position = x.position"
    if where:
        text += " WHERE " + " AND ".join(where)
    text += f" ORDER BY {order} LIMIT %s OFFSET %s"
    return text, [*params, limit, skip]


def _events_of_types_sql(f: EventFilter, types: list[str], limit: int, skip: int) -> tuple[str, list[Any]]:
    """Several types, by ``created``: one branch per type, each walking the (type, created, position) index for
    at most ``skip + limit`` rows, merged and cut to the page. ``type = ANY(...)`` would walk ``created`` and
    filter, reading every event of other types in between: for two rare types thousands of rows per page, more
    of them from disk the larger the log."""
    where, params = _where(f, False)
    direction = "DESC" if f.descending else "ASC"
    order = f"ORDER BY e.created {direction}, e.position {direction}"
    branch = f"(SELECT e.* FROM rs_events_log e WHERE {' AND '.join(['e.type = %s', *where])} {order} LIMIT %s)"
    text = f"SELECT e.* FROM ({' UNION ALL '.join([branch] * len(types))}) e {order} LIMIT %s OFFSET %s"
    return text, [*(p for t in types for p in (t, *params, skip + limit)), limit, skip]


def _datastore(app: Rulestream) -> Any:
    return app.recorder.datastore  # type: ignore[attr-defined]


def fetch(app: Rulestream, text: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    with _datastore(app).get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(text, params)
        return [dict(row) for row in cursor.fetchall()]


def events(app: Rulestream, f: EventFilter, page_size: int, skip: int) -> tuple[list[dict[str, Any]], bool]:
    """One page of the events log, and whether more follow."""
    text, params = events_sql(f, page_size + 1, skip)
    rows = fetch(app, text, params)
    return rows[:page_size], len(rows) > page_size


@dataclass(frozen=True)
class SessionFilter:
    profile: str | None = None
    state: str | None = None
    created_before: datetime | None = None
    created_after: datetime | None = None
    coupon: str | None = None
    referral: str | None = None
    integration_id: str | None = None
    store: str | None = None
    descending: bool = False


def sessions_sql(f: SessionFilter, limit: int, skip: int) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("profile = %s", f.profile),
        ("state = %s", f.state),
        ("created < %s", f.created_before),
        ("created > %s", f.created_after),
        ("coupon_codes @> ARRAY[%s]::text[]", f.coupon),
        ("referral = %s", f.referral),
        ("integration_id = %s", f.integration_id),
        ("store = %s", f.store),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    direction = "DESC" if f.descending else "ASC"
    text = "SELECT * FROM rs_sessions"
    if where:
        text += " WHERE " + " AND ".join(where)
    text += f" ORDER BY created {direction}, integration_id {direction} LIMIT %s OFFSET %s"
    return text, [*params, limit, skip]


def sessions(
    app: Rulestream, f: SessionFilter, page_size: int, skip: int
) -> tuple[list[dict[str, Any]], bool]:
    text, params = sessions_sql(f, page_size + 1, skip)
    rows = fetch(app, text, params)
    return rows[:page_size], len(rows) > page_size


def session(app: Rulestream, key: str) -> dict[str, Any] | None:
    """A session by its internal (integer) id, or else by its integration id."""
    rows: list[dict[str, Any]] = []
    if key.isdigit() and len(key) < 19:
        rows = fetch(app, "SELECT * FROM rs_sessions WHERE id = %s", [int(key)])
    if not rows:
        rows = fetch(app, "SELECT * FROM rs_sessions WHERE integration_id = %s", [key])
    return rows[0] if rows else None


def profile(app: Rulestream, key: str) -> dict[str, Any] | None:
    """A profile (with its loyalty balance) by its internal (integer) id, or else by its integration id."""
    base = (
        "SELECT p.*, b.balance, b.earned, b.spent FROM rs_profiles p "
        "LEFT JOIN rs_loyalty_balances b ON b.profile = p.integration_id WHERE "
    )
    rows: list[dict[str, Any]] = []
    if key.isdigit() and len(key) < 19:
        rows = fetch(app, base + "p.id = %s", [int(key)])
    if not rows:
        rows = fetch(app, base + "p.integration_id = %s", [key])
    return rows[0] if rows else None


def spent(app: Rulestream, profile_key: str) -> Decimal:
    """The points a profile spent (deducted, less those given back), from the loyalty read model."""
    rows = fetch(app, "SELECT spent FROM rs_loyalty_balances WHERE profile = %s", [profile_key])
    return Decimal(rows[0]["spent"]) if rows and rows[0]["spent"] is not None else Decimal(0)


def ledger(app: Rulestream, profile_key: str, limit: int, after: int | None) -> tuple[list[dict[str, Any]], bool]:
    """A page of a profile's loyalty ledger in log order, after the ``after`` cursor (a ledger row's position), and
    whether more follow. A page ends with every entry of its last position (one evaluation may book several), so
    the cursor never skips any: it may hold a few more than ``limit``."""
    statement = "SELECT * FROM rs_loyalty_ledger WHERE profile = %s AND position > %s ORDER BY position, entry LIMIT %s"
    rows = fetch(app, statement, [profile_key, after or 0, limit + 1])
    if len(rows) <= limit:
        return rows, False
    page, last = rows[:limit], rows[limit - 1]
    if rows[limit]["position"] == last["position"]:
        page += fetch(
            app, "SELECT * FROM rs_loyalty_ledger WHERE profile = %s AND position = %s AND entry > %s ORDER BY entry",
            [profile_key, last["position"], last["entry"]],
        )  # fmt: skip
        return page, bool(fetch(app, statement, [profile_key, last["position"], 1]))
    return page, True


def effects_of(app: Rulestream, position: int) -> list[dict[str, Any]]:
    return fetch(
        app, "SELECT * FROM rs_effects WHERE cause_position = %s ORDER BY position, effect", [position]
    )


def effects_export(
    app: Rulestream, campaign_id: int | None, created_before: datetime | None, created_after: datetime | None
) -> Iterator[dict[str, Any]]:
    """Every effect matching, in log order, streamed from a server-side cursor."""
    where, params = [], []
    for clause, value in (
        ("campaign_id = %s", campaign_id),
        ("created < %s", created_before),
        ("created > %s", created_after),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    text = "SELECT e.*, s.store FROM rs_effects e LEFT JOIN rs_sessions s ON s.integration_id = e.session"
    if where:
        text += " WHERE " + " AND ".join(f"e.{w}" for w in where)
    text += " ORDER BY e.created, e.position, e.effect"
    with (
        _datastore(app).get_connection() as conn,
        conn.transaction(),
        conn.cursor(name="export_effects") as cursor,
    ):
        cursor.itersize = 2000
        cursor.execute(text, params)
        for row in cursor:
            yield dict(row)
