"""Rebuild rate of every read model against a raw ``SELECT`` + decode of the same rows, in the same process,
and the events log's query latency per filter.

    PYTHONPATH=src:. .venv/bin/python bench/projections.py [--customers 400] [--admin-url postgresql://...]

Writes a workload into a fresh database (each customer: profile, session opened and closed with evaluations,
returns or reopen and cancel, custom events: about 25 log events), then per read model: rebuild (fill a new
generation from the log and switch over) in events per second, and the baseline: every row of the log read
with the follower's own query and decoded into domain events. Prints the ratio (rebuild / baseline rate).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# This file's name would shadow the ``projections`` package: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from tests.integration.projections import workload

from api.db import eventsourcing_env
from api.settings import Settings
from domain.application import Rulestream
from projections import queries
from projections.follower import DecodedEvents, FollowerRunner
from projections.queries import EventFilter
from projections.rebuild import Rebuild
from projections.registry import READ_MODELS


def baseline(app: Rulestream, batch: int = 1000) -> tuple[int, float]:
    """Read and decode the whole log in batches, as the runner does, applying nothing."""
    runner = FollowerRunner(app, READ_MODELS["events_log"](app))
    DecodedEvents.of(app).clear()  # decoded here, not found among what the live followers decoded
    started, position, count = time.perf_counter(), 0, 0
    with app.recorder.datastore.get_connection() as conn, conn.cursor() as cursor:  # type: ignore[attr-defined]
        while rows := runner.read(cursor, position, batch):
            position, count = rows[-1].position, count + len(rows)
    return count, time.perf_counter() - started


def latency(app: Rulestream, f: EventFilter, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        queries.events(app, f, 50, 0)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--admin-url", default=None)
    args = parser.parse_args()
    from tests import conftest

    if args.admin_url:
        conftest.ADMIN_URL = args.admin_url
    url = conftest.fresh_database("rulestream_bench_projections")
    app = Rulestream(env=eventsourcing_env(Settings(database_url=url)))
    try:
        ids = workload.run(app, args.customers)
        for name in READ_MODELS:
            FollowerRunner(app, READ_MODELS[name](app)).run_until_caught_up()
        events, seconds = baseline(app)
        base_rate = events / seconds
        out = sys.stdout
        out.write(f"log: {events} events; baseline SELECT + decode: {base_rate:,.0f} ev/s\n")
        out.write(f"{'read model':<12} {'rebuild ev/s':>14} {'ratio':>7}\n")
        for name in READ_MODELS:
            # A rebuild reads the log from its start: of it, a process keeps only the latest events decoded.
            DecodedEvents.of(app).clear()
            started = time.perf_counter()
            Rebuild(app, name).run()
            rate = events / (time.perf_counter() - started)
            out.write(f"{name:<12} {rate:>14,.0f} {rate / base_rate:>7.2f}\n")
        pid, sid = ids["profiles"][len(ids["profiles"]) // 2], ids["sessions"][len(ids["sessions"]) // 2]
        filters: dict[str, Any] = {
            "none": EventFilter(),
            "type": EventFilter(types=["talon_session_closed"]),
            "profile": EventFilter(profile=pid),
            "session": EventFilter(session=sid),
            "effectType": EventFilter(effect_type="addLoyaltyPoints"),
            "attributesQuery": EventFilter(attributes={"stars": 3}),
            "after (cursor)": EventFilter(after=events // 2),
            "-created": EventFilter(descending=True),
        }
        out.write(f"events log, page of 50, median of 20 ({events} events):\n")
        for label, f in filters.items():
            out.write(f"  {label:<16} {latency(app, f):7.2f} ms\n")
    finally:
        app.close()
        conftest.drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
