"""Cost growth of the write path with the size of the log (issue 7, B6): 10k events vs 1M, within 1.2×.

    .venv/bin/python bench/growth.py [--big 1000000] [--small 10000] [--runs 300] [--no-results]

For each size, in its own fresh database (both kept open, measured alternately so that the machine's noise
falls on both alike):

1. the real application seeds 200 customer sessions (opened, updated twice, closed: about 7 events each with
   the profile's bookkeeping) through ``Rulestream.update_session``;
2. the log is filled up to the size with copies of those events under new stream ids (one ``INSERT ... SELECT``;
   ``session_replication_role = replica`` skips the hash-chain trigger, which would only slow the fill), then
   ``VACUUM ANALYZE``;
3. measures, one at a time, ``--runs`` times each:
   - **append**: ``Rulestream.update_session`` of a new session of a new profile (load + decide + group commit
     of the session's and the profile's events, with the hash-chain trigger), wall time;
   - **session load**: ``repository.get`` of a seeded session with the aggregate cache off (a query of its
     events by stream id, decoding, replay).

Prints p50/p99 per size and the growth (1M p50 / 10k p50), and appends the table to bench/RESULTS.md.
The events-log queries' part of B6 is ``bench/events_log.py``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/projections.py would shadow the ``projections`` package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.run import append_results, fresh_database  # noqa: E402
from psycopg import sql  # noqa: E402
from tests.builders import cart_item, session_changes  # noqa: E402

from api.db import eventsourcing_env  # noqa: E402
from api.settings import Settings  # noqa: E402
from domain.application import Rulestream, session_id  # noqa: E402

SEEDED = 200


def seed(app: Rulestream) -> list[str]:
    sessions = []
    for n in range(SEEDED):
        sid, profile = f"seed-s{n}", f"seed-p{n}"
        app.update_session(sid, session_changes(cart_item("a", 10, 1), profile=profile), "open")
        app.update_session(sid, session_changes(cart_item("a", 10, 2), profile=profile), None)
        app.update_session(sid, session_changes(cart_item("b", 7, 1), profile=profile), None)
        app.update_session(sid, session_changes(cart_item("b", 7, 1), profile=profile), "closed")
        sessions.append(sid)
    return sessions


def fill(app: Rulestream, size: int) -> float:
    """Copies of the seeded events under new stream ids until the log holds ``size`` events; seconds taken."""
    recorder: Any = app.recorder
    table = sql.Identifier(recorder.events_table_name)
    datastore = recorder.datastore
    started = time.perf_counter()
    with datastore.get_connection() as conn:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            seeded = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(table)).fetchone()["n"]
            copies = max(0, (size - seeded) // max(seeded, 1))
            conn.execute(
                sql.SQL(
                    "INSERT INTO {t} (originator_id, originator_version, topic, state) "
                    "SELECT md5(g::text || ':' || e.originator_id::text)::uuid, e.originator_version, e.topic, e.state "
                    "FROM generate_series(1, %s) AS g CROSS JOIN "
                    "(SELECT originator_id, originator_version, topic, state FROM {t} "
                    " WHERE notification_id <= %s) AS e ORDER BY g, e.originator_id, e.originator_version"
                ).format(t=table),
                (copies, seeded),
            )
        conn.autocommit = True
        try:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table))
        finally:
            conn.autocommit = False
        total = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(table)).fetchone()["n"]
    sys.stderr.write(f"  {total:,} events in the log ({time.perf_counter() - started:.1f} s to fill)\n")
    return float(total)


def append_once(app: Rulestream) -> float:
    tag = uuid.uuid4().hex[:12]
    started = time.perf_counter()
    app.update_session(f"g-s{tag}", session_changes(cart_item("a", 10, 1), profile=f"g-p{tag}"), "open")
    return time.perf_counter() - started


def load_once(app: Rulestream, sessions: list[str], rng: random.Random) -> float:
    aggregate = session_id(rng.choice(sessions))
    started = time.perf_counter()
    app.repository.get(aggregate)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    apps: dict[int, Rulestream] = {}
    sessions: list[str] = []
    for size in (args.small, args.big):
        env = eventsourcing_env(Settings(database_url=fresh_database(f"rulestream_bench_growth_{size}")))
        env["AGGREGATE_CACHE_MAXSIZE"] = ""  # every load reads the database
        apps[size] = app = Rulestream(env=env)
        sessions = seed(app)
        fill(app, size)
    rng = random.Random(7)
    timings: dict[tuple[str, int], list[float]] = {}
    for app in apps.values():  # warm-up: prepared statements, caches of the process
        for _ in range(20):
            append_once(app)
            load_once(app, sessions, rng)
    for _ in range(args.runs):
        for size, app in apps.items():
            timings.setdefault(("append", size), []).append(append_once(app))
            timings.setdefault(("session load", size), []).append(load_once(app, sessions, rng))
    for app in apps.values():
        app.close()

    def stats(values: list[float]) -> tuple[float, float]:
        ordered = sorted(values)
        return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000

    lines = [
        f"| operation | {args.small:,} p50 ms | p99 ms | {args.big:,} p50 ms | p99 ms | growth (p50) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for operation in ("append", "session load"):
        small, big = stats(timings[(operation, args.small)]), stats(timings[(operation, args.big)])
        growth = big[0] / small[0]
        mark = "" if growth <= 1.2 else " ✗"
        lines.append(
            f"| {operation} | {small[0]:.2f} | {small[1]:.2f} | {big[0]:.2f} | {big[1]:.2f} | {growth:.2f}×{mark} |"
        )
    text = "\n".join(lines)
    sys.stdout.write(text + "\n")
    if not args.no_results:
        append_results(
            f"B6 write path, {args.small:,} vs {args.big:,} events",
            f"`.venv/bin/python bench/growth.py --big {args.big} --small {args.small} --runs {args.runs}`: append = "
            "`update_session` of a new session "
            "(group commit, hash-chain trigger); session load = `repository.get` with the aggregate cache off.",
            text,
        )


if __name__ == "__main__":
    main()
