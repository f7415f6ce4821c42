"""Events-log query latency per filter at 10k and at 1M events, and its growth (issue 7, B6: within 1.2×).

    .venv/bin/python bench/events_log.py [--rows 1000000] [--small 10000] [--runs 50] [--page-size 50]
                                         [--no-results] [--keep]

For each size, in its own fresh database (``bench.run.fresh_database``; admin URL from
``RULESTREAM_BENCH_ADMIN_URL``), both kept open so that step 3 alternates between them:

1. builds the events log's schema with the projection's own setup (``EventsLog(app).setup``), so the tables,
   view and indexes are exactly the real ones;
2. fills ``rs_events_log_g<N>`` with N synthetic rows in one ``INSERT ... SELECT FROM generate_series``, with the
   secondary indexes dropped first and recreated after by the same ``create_tables`` call (a bulk index build is
   far quicker than N index inserts; the definitions are the model's). The rows: positions with gaps (evaluations
   sit between them), ``created`` spread over 180 days in log order, sessions of 8 consecutive events, N/20
   profiles whose sessions are spread over the months, profile and anonymous events without session, a dozen
   event types in realistic proportions, attributes (stars, channel, amount; an ``orderId`` on purchases),
   effects on about a third of the rows (``addLoyaltyPoints`` mostly; ``triggerWebhook`` rare);
3. VACUUM ANALYZEs, then times every filter through ``projections.queries.events`` (the code the API's
   ``GET /v1/applications/1/events/no_total`` calls, on the app's connection pool, so psycopg's automatic prepared
   statements and PostgreSQL's generic plans are in the measurement): 5 warm-up runs, then ``--runs`` runs each
   with its parameters drawn afresh (profile, session, time, position, attribute value...), median and p99;
4. EXPLAINs one draw of each filter and names the indexes the plan uses (``+sort``: a Sort node above them, i.e.
   every matching row is read before the first page; ``SEQ``: a sequential scan).

Prints the table (filter, 10k p50/p99, 1M p50/p99, growth = 1M p50 / 10k p50, plan at 1M) and appends it, with the
date and the machine, to bench/RESULTS.md (``--no-results``: print only). Everything shares this machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/projections.py would shadow the ``projections`` package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import psycopg  # noqa: E402
from bench.run import ADMIN_URL, append_results, fresh_database  # noqa: E402
from psycopg import sql  # noqa: E402

from api.db import eventsourcing_env  # noqa: E402
from api.settings import Settings  # noqa: E402
from domain.application import Rulestream  # noqa: E402
from projections import queries  # noqa: E402
from projections.events_log import EFFECT_TYPES, EVENTS, EventsLog  # noqa: E402
from projections.queries import EventFilter  # noqa: E402
from projections.readmodel import create_tables, live_generation  # noqa: E402

DATABASE = "rulestream_bench_events_log"
START = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=180)
GAP = 3  # log positions per visible row (evaluations and invisible events between)

# (type, share in per mille, has session, has profile). Shares add up to 1000.
TYPES: list[tuple[str, int, bool, bool]] = [
    ("talon_session_updated", 330, True, True),
    ("talon_session_created", 120, True, True),
    ("talon_session_closed", 100, True, True),
    ("purchase", 150, True, True),
    ("page_view", 90, True, True),
    ("talon_profile_updated", 70, False, True),
    ("talon_profile_created", 30, False, True),
    ("anonymous_click", 30, False, False),
    ("talon_session_cancelled", 20, True, True),
    ("talon_session_partially_returned", 20, True, True),
    ("rulestream_delay_scheduled", 15, True, True),
    ("rulestream_delay_came_due", 10, True, True),
    ("talon_session_reopened", 10, True, True),
    ("talon_session_revoked", 5, True, True),
]
assert sum(t[1] for t in TYPES) == 1000


def fill_sql(table: str, n: int) -> str:
    """One INSERT ... SELECT of ``n`` rows; deterministic (hash-based, no random()), so runs compare."""
    cases, low = [], 0
    for name, share, _, _ in TYPES:
        cases.append(f"WHEN r.t < {low + share} THEN '{name}'")
        low += share
    no_session = ", ".join(f"'{t[0]}'" for t in TYPES if not t[2])
    no_profile = ", ".join(f"'{t[0]}'" for t in TYPES if not t[3])
    profiles = max(n // 20, 1)
    return f"""
INSERT INTO {table} (position, created, type, profile, session, store, attributes, effects, effect_types,
                     evaluated_at)
SELECT r.g * {GAP},
       timestamptz '{START.isoformat()}' + (r.g::float8 / {n}) * interval '{SPAN.days} days',
       x.type,
       CASE WHEN x.type IN ({no_profile}) THEN NULL ELSE 'p' || ((r.sk * 2654435761) % {profiles}) END,
       CASE WHEN x.type IN ({no_session}, {no_profile}) THEN NULL ELSE 's' || r.sk END,
       CASE WHEN x.type IN ({no_session}, {no_profile}) THEN NULL ELSE 'store-' || (r.sk % 50) END,
       jsonb_build_object('stars', 1 + r.h % 5, 'channel', (ARRAY['web', 'app', 'pos', 'kiosk'])[1 + r.h / 5 % 4],
                          'amount', (r.h / 20 % 20000) / 100.0)
         || CASE WHEN x.type = 'purchase' THEN jsonb_build_object('orderId', 'o' || r.g) ELSE '{{}}' END,
       COALESCE(e.effects, '[]'), COALESCE(e.types, '{{}}'),
       CASE WHEN e.types IS NULL THEN NULL ELSE r.g * {GAP} + 1 END
FROM (SELECT g, g / 8 AS sk, hashint8(g)::bigint & 2147483647 AS h, (hashint8(-g)::bigint & 2147483647) % 1000 AS t
      FROM generate_series(1, {n}) AS g) AS r
CROSS JOIN LATERAL (SELECT CASE {" ".join(cases)} END AS type) AS x
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('effectType', et, 'props', jsonb_build_object('value', r.h % 100)))
             AS effects,
           array_agg(et ORDER BY et) AS types
    FROM unnest(CASE
        WHEN x.type IN ('talon_session_closed', 'purchase') AND r.h % 10 < 8
            THEN ARRAY['addLoyaltyPoints'] || CASE WHEN r.h % 7 = 0 THEN ARRAY['setDiscount'] ELSE '{{}}' END
                 || CASE WHEN r.h % 200 = 0 THEN ARRAY['triggerWebhook'] ELSE '{{}}' END
        WHEN x.type = 'talon_session_updated' AND r.h % 10 < 3 THEN ARRAY['setDiscount', 'showNotification']
        WHEN x.type = 'rulestream_delay_came_due' THEN ARRAY['addLoyaltyPoints']
    END) AS et
) AS e ON true
"""


def build(app: Rulestream, n: int) -> str:
    """The model's schema, N rows, analyzed. Answers the physical table's name."""
    model = EventsLog(app)
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
        model.setup(cursor)
        generation = live_generation(cursor, model.model)
    table = EVENTS.physical(generation)
    with datastore.get_connection() as conn:
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
            for suffix in EVENTS.indexes:
                cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(f"{table}_{suffix}")))
            started = time.perf_counter()
            cursor.execute(fill_sql(sql.Identifier(table).as_string(conn), n))
            # The effect-type side table, as the model's writes fill it: one row per (type, event).
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (effect_type, created, position) "
                    "SELECT t, created, position FROM {}, unnest(effect_types) t"
                ).format(sql.Identifier(EFFECT_TYPES.physical(generation)), sql.Identifier(table))
            )
            filled = time.perf_counter() - started
            create_tables(cursor, model, generation, views=True)  # the model's own index definitions, again
            indexed = time.perf_counter() - started - filled
        conn.autocommit = True
        try:
            for analyzed in (table, EFFECT_TYPES.physical(generation)):
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(analyzed)))
        finally:
            conn.autocommit = False
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", (table,)).fetchone()
    sys.stderr.write(
        f"  {n:,} rows: insert {filled:.1f} s, indexes {indexed:.1f} s, {list(size.values())[0]} on disk\n"
    )
    return table


Draw = Callable[[random.Random], tuple[EventFilter, int]]


def filters(n: int, orders: list[str]) -> dict[str, Draw]:
    """Each filter of the endpoint, alone and in the combinations the UI sends; parameters drawn per run.

    ``orders``: existing ``orderId`` values (an attribute query that finds its one row).
    """
    profiles, sessions, last = max(n // 20, 1), n // 8, n * GAP
    common = ["talon_session_updated", "talon_session_closed", "purchase", "page_view", "talon_session_created"]

    def at(rng: random.Random) -> dt.datetime:
        return START + SPAN * rng.uniform(0.02, 0.98)

    def pid(rng: random.Random) -> str:
        return f"p{rng.randrange(profiles)}"

    def sid(rng: random.Random) -> str:
        return f"s{rng.randrange(sessions)}"

    return {
        "(none) created asc": lambda r: (EventFilter(), 0),
        "sort=-created": lambda r: (EventFilter(descending=True), 0),
        "skip=1000": lambda r: (EventFilter(), 1000),
        "type (common)": lambda r: (EventFilter(types=[r.choice(common)]), 0),
        "type (rare)": lambda r: (EventFilter(types=["talon_session_revoked"]), 0),
        "type a,b (common)": lambda r: (EventFilter(types=r.sample(common, 2)), 0),
        "type a,b (rare)": lambda r: (EventFilter(types=["talon_session_reopened", "talon_session_revoked"]), 0),
        "createdAfter": lambda r: (EventFilter(created_after=at(r)), 0),
        "createdBefore, -created": lambda r: (EventFilter(created_before=at(r), descending=True), 0),
        "created window 1 day + type": lambda r: (
            (lambda t: EventFilter(types=[r.choice(common)], created_after=t, created_before=t + dt.timedelta(days=1)))(
                at(r)
            ),
            0,
        ),
        "session": lambda r: (EventFilter(session=sid(r)), 0),
        "profile": lambda r: (EventFilter(profile=pid(r)), 0),
        "profile, -created": lambda r: (EventFilter(profile=pid(r), descending=True), 0),
        "profile + type": lambda r: (EventFilter(profile=pid(r), types=["purchase"]), 0),
        "profile + createdAfter": lambda r: (EventFilter(profile=pid(r), created_after=at(r)), 0),
        "effectType (common)": lambda r: (EventFilter(effect_type="addLoyaltyPoints"), 0),
        "effectType (rare)": lambda r: (EventFilter(effect_type="triggerWebhook"), 0),
        "attributesQuery (common)": lambda r: (EventFilter(attributes={"stars": r.randint(1, 5)}), 0),
        "attributesQuery (1 row)": lambda r: (EventFilter(attributes={"orderId": r.choice(orders)}), 0),
        "after=<pos>": lambda r: (EventFilter(after=r.randrange(last)), 0),
        "after=<pos>, -created": lambda r: (EventFilter(after=r.randrange(last), descending=True), 0),
        "after + type (common)": lambda r: (EventFilter(after=r.randrange(last), types=[r.choice(common)]), 0),
        "after + profile": lambda r: (EventFilter(after=r.randrange(last), profile=pid(r)), 0),
    }


def plan_of(app: Rulestream, f: EventFilter, page: int, skip: int) -> str:
    text, params = queries.events_sql(f, page + 1, skip)
    rows = queries.fetch(app, "EXPLAIN (FORMAT JSON) " + text, params)
    seen: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if "Index Name" in node:
            index = node["Index Name"]
            name = index.rsplit("_", 1)[-1]
            if "_effect_types_" in index:  # the side table's (effect_type, created, position) or (…, position)
                name = "effect_types" + ("" if name == "pkey" else f" ({name})")
            seen.append(name + (" (bitmap)" if kind.startswith("Bitmap") else ""))
        elif kind == "Seq Scan":
            seen.append("SEQ")
        elif kind == "Sort":
            seen.append("+sort")
        for child in node.get("Plans", []):
            walk(child)

    walk(list(rows[0].values())[0][0]["Plan"])
    order = [s for s in seen if s != "+sort"] + (["+sort"] if "+sort" in seen else [])
    return ", ".join(dict.fromkeys(order))


def samples(app: Rulestream) -> list[str]:
    """Existing ``orderId`` values (an attribute query that finds its one row)."""
    rows = queries.fetch(
        app,
        "SELECT attributes->>'orderId' AS o FROM rs_events_log WHERE type = 'purchase' "
        "ORDER BY hashint8(position) LIMIT 500",
        [],
    )
    return [row["o"] for row in rows]


@dataclass
class Measured:
    """One filter on one log: p50 and p99 in ms, the plan, and the mean rows a page returned."""

    p50: float
    p99: float
    plan: str
    rows: float


def _summary(times: list[float], rows: int, runs: int, plan: str) -> Measured:
    ts = sorted(times)
    return Measured(statistics.median(ts), ts[min(len(ts) - 1, round(0.99 * (len(ts) - 1)))], plan, rows / runs)


def measure(
    small: tuple[Rulestream, int], large: tuple[Rulestream, int], runs: int, page: int
) -> dict[str, tuple[Measured, Measured, Measured]]:
    """Per filter: the small log, the large log with the page the small one returned, and the large log with a
    full page.

    Growth compares the same work: a filter whose page at 10k is short (a one-day window holds ~55 events at
    10k, 5,500 at 1M) returns a full page at 1M, and that is more rows, not a cost of the log's size. So each
    draw runs on the small log first, then on the large one with the page size capped at the rows the small one
    returned for the same draw (the same random parameters), then on the large one with a full page (shown
    beside). The runs alternate between the logs, so a load burst from anything else on the machine falls on
    both sizes alike.
    """
    out: dict[str, tuple[Measured, Measured, Measured]] = {}
    logs = (small, large)
    draws = [filters(n, samples(app)) for app, n in logs]
    for label in draws[0]:
        rngs = [random.Random(label) for _ in logs]
        times: list[list[float]] = [[], [], []]
        returned = [0, 0, 0]
        for i in range(5 + runs):  # 5 warm-up runs: caches, and psycopg's prepare after 5 executions
            f_small, skip_small = draws[0][label](rngs[0])
            f_large, skip_large = draws[1][label](rngs[1])
            short = page
            for k, (app, f, skip) in enumerate(
                ((small[0], f_small, skip_small), (large[0], f_large, skip_large), (large[0], f_large, skip_large))
            ):
                started = time.perf_counter()
                rows, _ = queries.events(app, f, short if k == 1 else page, skip)
                took = (time.perf_counter() - started) * 1000
                if k == 0:
                    short = max(1, len(rows))
                if i >= 5:
                    times[k].append(took)
                    returned[k] += len(rows)
        plans = []
        for k, (app, _) in enumerate(logs):
            f, skip = draws[k][label](rngs[k])
            plans.append(plan_of(app, f, page, skip))
        out[label] = (
            _summary(times[0], returned[0], runs, plans[0]),
            _summary(times[1], returned[1], runs, plans[1]),
            _summary(times[2], returned[2], runs, plans[1]),
        )
    return out


def open_log(n: int, suffix: str) -> tuple[Rulestream, str]:
    url = fresh_database(DATABASE + suffix)
    app = Rulestream(env=eventsourcing_env(Settings(database_url=url)))
    build(app, n)
    return app, DATABASE + suffix


def drop(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="the large log (default 1M)")
    parser.add_argument("--small", type=int, default=10_000, help="the small log the growth is against")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per filter")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the large database (rulestream_bench_events_log)")
    args = parser.parse_args()
    opened = [open_log(args.small, "_small"), open_log(args.rows, "")]
    try:
        started = time.perf_counter()
        measured = measure((opened[0][0], args.small), (opened[1][0], args.rows), args.runs, args.page_size)
        sys.stderr.write(f"  measured in {time.perf_counter() - started:.0f} s\n")
    finally:
        for app, name in opened:
            app.close()
            if not (args.keep and name == DATABASE):
                drop(name)
    s, l_ = (
        f"{args.small // 1000:,}k",
        (f"{args.rows // 1_000_000}M" if args.rows % 1_000_000 == 0 else f"{args.rows:,}"),
    )
    table = [
        f"| filter | {s} p50 ms | {s} p99 ms | {s} rows | {l_} p50 ms | {l_} p99 ms | {l_} rows | growth (p50, same "
        f"rows) | {l_} full page: p50 ms, rows | index at {l_} (EXPLAIN) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, (low, high, full) in measured.items():
        growth = high.p50 / low.p50
        mark = "" if growth <= 1.2 else " ✗"
        table.append(
            f"| {label} | {low.p50:.2f} | {low.p99:.2f} | {low.rows:.0f} | {high.p50:.2f} | {high.p99:.2f} "
            f"| {high.rows:.0f} | {growth:.2f}×{mark} | {full.p50:.2f}, {full.rows:.0f} | {high.plan} |"
        )
    text = "\n".join(table)
    sys.stdout.write(text + "\n")
    if not args.no_results:
        append_results(
            f"events-log query latency, {s} vs {l_} events",
            f"`.venv/bin/python bench/events_log.py --rows {args.rows} --small {args.small} --runs {args.runs} "
            f"--page-size {args.page_size}`: through `queries.events` (the API's query), page of {args.page_size}, "
            "parameters drawn per run; growth target (issue 7, B6): within 1.2×, of a page of the same rows (the "
            f"{l_} log's page capped at what the {s} log returned for the same draw; its full page beside).",
            text,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
