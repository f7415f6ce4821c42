"""Rulestream's benchmarks, each against a baseline measured in the same run on the same machine.

    bin/bench [--seconds N] [--only B1,B3]

prints one table (benchmark, ours, baseline, ratio, target) and appends it, with the date and the machine, to
bench/RESULTS.md. HTTP load comes from ``wrk`` (compiled, so the load generator is not the bottleneck).
Everything — PostgreSQL, server, load — shares this machine: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any
from uuid import UUID

import httpx
import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

ADMIN_URL = os.environ.get("RULESTREAM_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
INTEGRATION_KEY = "rs_int_bench-integration-key-0123456789"
MANAGEMENT_KEY = "rs_man_bench-management-key-0123456789"


@dataclass
class Row:
    name: str
    ours: str
    baseline: str
    ratio: str
    target: str


def fresh_database(name: str) -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def start(command: list[str], env: dict[str, str], probe: str | None) -> subprocess.Popen[bytes]:
    log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log)
    if probe is not None:
        wait_up(probe, process)
    else:
        time.sleep(2)
    return process


WRK_SCRIPT = Template("""
-- Each wrk thread draws its own random numbers: with one seed, both threads would send the same profile
-- at the same moment, and measure write conflicts instead of throughput.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(id * 7919 + os.time())
end
request = function()
  local n = math.random(1, $spread)
  local path = $path
  local body = $body
  return wrk.format("$method", path, {["Content-Type"] = "application/json",
    ["Authorization"] = "ApiKey-v1 $key"}, body)
end
""")


def wrk(url: str, script: str, seconds: int, connections: int = 64) -> tuple[float, float]:
    """Requests per second and p99 latency in ms."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{out}")
    return rate, float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")  # type: ignore[union-attr]


def lua(method: str, path: str, body: str, spread: int = 10_000) -> str:
    """A wrk script; ``path`` and ``body`` are Lua expressions of ``n``, a random number up to ``spread``."""
    return WRK_SCRIPT.substitute(method=method, path=path, body=body, spread=spread, key=INTEGRATION_KEY)


EVENT_BODY = """'{"profileId":"bench-' .. n .. '","type":"bench_purchase","attributes":{"amount":' .. (n % 97 + 1) .. '}}'"""
SESSION_BODY = (
    """'{"customerSession":{"profileId":"bench-' .. n .. '","cartItems":[{"sku":"a","price":12.5,"quantity":' """
    """.. (n % 3 + 1) .. '}]}}'"""
)


# -- the benchmarks --------------------------------------------------------------------------------------


def declare_rule(url: str) -> None:
    """B1's setup through the Management API: the event's ``amount`` attribute and a rule on it."""
    manage = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    httpx.post(f"{url}/v1/attributes", headers=manage, json={
        "entity": "Event", "eventType": "bench_purchase", "name": "amount", "title": "amount", "type": "number",
        "description": "", "suggestions": [], "editable": True}).raise_for_status()  # fmt: skip
    httpx.post(f"{url}/v1/rules", headers=manage, json={
        "name": "a point per euro", "trigger": ["bench_purchase"],
        "effects": [{"effectType": "addLoyaltyPoints",
                     "props": {"name": "p", "value": {"attr": "event.attributes.amount"}}}]}).raise_for_status()


ALTERNATIONS = 3
"""Runs of the trivial endpoint and of Rulestream, in turn, behind each B1 and B2 ratio."""


def bench_http(seconds: int, rows: list[Row], only: set[str], split: bool = False) -> None:
    """B1 and B2 against ``rulestream serve`` (one process) or ``serve --split`` (the policy and the projections
    as child processes: production's shape on one machine), each against the trivial endpoint under the same load
    (the benchmark's own requests), in ``ALTERNATIONS`` alternating runs of half ``seconds`` each: on a
    shared machine the speed drifts within seconds, and one run of each, one after the other, compared two
    different machines (the same tree's ratio moved from 0.35 to 0.47 between two such runs)."""
    database = fresh_database("rulestream_bench")
    port, trivial_port = free_port(), free_port()
    env = {"DATABASE_URL": database, "RULESTREAM_INTEGRATION_KEY": INTEGRATION_KEY,
           "RULESTREAM_MANAGEMENT_KEY": MANAGEMENT_KEY, "RULESTREAM_PORT": str(port)}  # fmt: skip
    command = [sys.executable, "-m", "api.cli", "serve", *(["--split"] if split else [])]
    server = start(command, env, f"http://127.0.0.1:{port}/health")
    shape = "serve --split" if split else "serve"
    trivial = start([sys.executable, str(HERE / "trivial.py"), str(trivial_port)], {}, f"http://127.0.0.1:{trivial_port}/docs")
    try:
        url = f"http://127.0.0.1:{port}"
        declare_rule(url)

        def against_trivial(method: str, path: str, body: str) -> tuple[float, float, float, float]:
            """(our rate, our p99, trivial rate, trivial p99): rates averaged over the runs, p99s their median."""
            part = max(seconds // 2, 3)
            trivial, ours = [], []
            for _ in range(ALTERNATIONS):
                trivial.append(wrk(f"http://127.0.0.1:{trivial_port}", lua(method, '"/echo"', body), part))
                ours.append(wrk(url, lua(method, path, body), part))
                time.sleep(1.0)  # the read models' last batch: not on the trivial endpoint's time
            return (statistics.mean(r for r, _ in ours), statistics.median(p for _, p in ours),
                    statistics.mean(r for r, _ in trivial), statistics.median(p for _, p in trivial))  # fmt: skip

        if "B1" in only:
            rate, p99, trivial_rate, trivial_p99 = against_trivial("POST", '"/v2/events"', EVENT_BODY)
            rows.append(Row(f"B1 POST /v2/events, 1 rule, effects, 64 conns ({shape})", f"{rate:.0f} req/s, p99 {p99:.0f} ms",
                            f"{trivial_rate:.0f} req/s, p99 {trivial_p99:.0f} ms", f"{rate / trivial_rate:.2f}",
                            ">= 0.50, p99 <= 50 ms"))  # fmt: skip
        if "B2" in only:
            rate, p99, trivial_rate, _ = against_trivial("PUT", '"/v2/customer_sessions/bench-s" .. n', SESSION_BODY)
            rows.append(Row(f"B2 PUT /v2/customer_sessions, 10k sessions, 64 conns ({shape})",
                            f"{rate:.0f} req/s, p99 {p99:.0f} ms", f"{trivial_rate:.0f} req/s",
                            f"{rate / trivial_rate:.2f}", ">= 0.40, p99 <= 50 ms"))  # fmt: skip
    finally:
        for process in (server, trivial):
            process.terminate()
            process.wait(timeout=20)


def _writers(seconds: float, threads: int, command: Callable[[int, int], None]) -> tuple[int, float]:
    """Run ``command(writer, count)`` in ``threads`` threads for ``seconds``; answer the commands run and the
    seconds they took."""
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def writer(n: int) -> None:
        while time.monotonic() < stop:
            command(n, counts[n])
            counts[n] += 1

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    started = time.monotonic()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(counts), time.monotonic() - started


def _rate(counted: tuple[int, float]) -> float:
    return counted[0] / counted[1]


def bench_appends(seconds: int, rows: list[Row], writers: int = 16) -> None:
    """B3: commands through the domain application (16 writers), against three baselines of the same shape:
    raw INSERTs of the same rows into an identical table, batched (the target's) and one row per transaction
    (16 writers), and the ``eventsourcing`` library used plainly: one ``save()`` per command, 16 writers, each
    command a new aggregate with two events, as a ``track_event`` of a new profile records."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    from api.db import eventsourcing_env
    from api.settings import Settings
    from domain.application import Rulestream

    database = fresh_database("rulestream_bench_appends")
    app = Rulestream(env={**eventsourcing_env(Settings(database_url=database)), "RULESTREAM_POOL_SIZE": "16"})
    app.create_attribute("Event", "amount", "number", event_type="bench_purchase")
    before = app.recorder.max_notification_id() or 0
    commands, took = _writers(
        seconds, writers, lambda n, i: app.track_event("bench_purchase", {"amount": 1}, f"bench-{n}-{i}", None) and None
    )
    ours = commands / took
    events_per_command = ((app.recorder.max_notification_id() or 0) - before) / max(commands, 1)
    # The same rows, inserted raw into an identical table (its indexes, not the hash-chain trigger).
    rows_source = app.recorder.select_notifications(start=0, limit=10_000)
    app.close()
    payload = [(n.topic, n.state) for n in rows_source]
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw_events (LIKE rulestream_events INCLUDING ALL)")
        conn.execute("CREATE SEQUENCE raw_seq")
        conn.execute("ALTER TABLE raw_events ALTER COLUMN notification_id SET DEFAULT nextval('raw_seq')")
    insert = "INSERT INTO raw_events (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)"
    with psycopg.connect(database, autocommit=True) as conn:
        inserted, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            with conn.transaction(), conn.cursor() as cur:
                batch = [(uuid.uuid4(), 1, t, s) for (t, s) in payload[:100]]
                cur.executemany(insert, batch)
                inserted += len(batch)
        batched = inserted / (time.monotonic() - started)
    connections = [psycopg.connect(database, autocommit=True) for _ in range(writers)]
    try:
        single = _rate(_writers(seconds, writers, lambda n, i: connections[n].execute(
            insert, (uuid.uuid4(), 1, *payload[i % len(payload)]), prepare=True) and None))  # fmt: skip
    finally:
        for conn in connections:
            conn.close()

    class Customer(Aggregate):
        @event("Tracked")
        def track(self, event_type: str, attributes: dict[str, Any]) -> None:
            self.last = (event_type, attributes)

    plain_env = {k: v for k, v in eventsourcing_env(Settings(database_url=fresh_database("rulestream_bench_plain"))).items()
                 if k.startswith("POSTGRES_") or k == "CREATE_TABLE"}  # fmt: skip
    plain = Application[UUID](env={**plain_env, "PERSISTENCE_MODULE": "eventsourcing.postgres",
                                   "POSTGRES_POOL_SIZE": str(writers), "POSTGRES_MAX_OVERFLOW": "0"})  # fmt: skip

    def plain_command(n: int, i: int) -> None:
        customer = Customer()
        customer.track("bench_purchase", {"amount": 1})
        plain.save(customer)

    library = _rate(_writers(seconds, writers, plain_command))
    plain.close()
    per = f"{events_per_command:.1f} events per command"
    rows.append(Row(f"B3 domain appends (track event), {writers} writers", f"{ours:.0f} commands/s ({per})",
                    f"{batched:.0f} rows/s raw batched INSERT", f"{ours / batched:.2f}", ">= 0.50"))  # fmt: skip
    rows.append(Row(f"B3 vs raw single-row INSERT transactions, {writers} writers", f"{ours:.0f} commands/s",
                    f"{single:.0f} rows/s", f"{ours / single:.2f}", "—"))  # fmt: skip
    rows.append(Row(f"B3 vs the eventsourcing library used plainly (one save() per command), {writers} writers",
                    f"{ours:.0f} commands/s", f"{library:.0f} commands/s (2 events each)", f"{ours / library:.2f}",
                    "—"))  # fmt: skip


def _app_with_rule(database: str) -> Any:
    """The application as a server opens it (the audit schema included: a worker started on the same database
    would add it under the running application's prepared statements), with B1's attribute and rule."""
    from api.bootstrap import open_application
    from api.settings import Settings
    from domain.rulebook import RuleBook

    app = open_application(Settings(database_url=database))
    app.create_attribute("Event", "amount", "number", event_type="bench_purchase")
    RuleBook(app).create({"name": "a point per euro", "trigger": ["bench_purchase"],
                          "effects": [{"effectType": "addLoyaltyPoints",
                                       "props": {"name": "p", "value": {"attr": "event.attributes.amount"}}}]},
                         "bench")  # fmt: skip
    return app


def bench_policy(rows: list[Row], events: int = 3000) -> None:
    """P1: the policy catching up on a backlog, vs a raw SELECT + decode of the same rows."""
    from concurrent.futures import ThreadPoolExecutor

    from projections.follower import FollowerRunner
    from projections.policy import RulePolicy

    app = _app_with_rule(fresh_database("rulestream_bench_policy"))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: app.track_event("bench_purchase", {"amount": i % 50 + 1}, f"p-{i % 1000}", None),
                      range(events)))  # fmt: skip
    started = time.perf_counter()
    decoded = 0
    position = 0
    while page := app.recorder.select_notifications(start=position, limit=500, inclusive_of_start=False):
        decoded += sum(1 for n in page if app.mapper.to_domain_event(n))
        position = page[-1].id
    raw = decoded / (time.perf_counter() - started)
    started = time.perf_counter()
    FollowerRunner(app, RulePolicy(app)).run_until_caught_up()
    ours = events / (time.perf_counter() - started)
    app.close()
    rows.append(Row(f"P1 policy over a backlog of {events} events, 1 rule", f"{ours:.0f} events/s",
                    f"{raw:.0f} events/s raw SELECT + decode", f"{ours / raw:.2f}", "thousands of events/s"))  # fmt: skip


def bench_effect_latency(rows: list[Row], seconds: int, rate: int = 1000) -> None:
    """B4: latency from an append to its effects recorded, at a steady rate of appended events.

    The rule policy runs as production runs it: ``rulestream worker policy``, a process of its own. The load
    generator must not be the bottleneck: commands through the application cost ~1.4 ms of CPU each (B3's
    subject), so at 1,000/s the loader alone would take most of the two cores the policy needs. So the events
    (a custom event each, on 500 profiles registered beforehand) are made by the domain aggregates and sealed
    by the application's mapper before the clock starts; the timed loop appends them through the application's
    recorder (the group commit, as commands do) at the offered rate. The latency of each is from its commit
    returning to the policy's progress notification passing its position, heard as a request waiting for
    effects hears it (``PolicyProgress``)."""
    from queue import SimpleQueue

    from api.effects import PolicyProgress
    from domain.catalog.service import checked_event

    database = fresh_database(f"rulestream_bench_latency_{rate}")  # one each: the last run's listeners may linger
    app = _app_with_rule(database)
    profiles = 500
    for p in range(profiles):
        app.update_profile(f"l-{p}", {}, run_rule_engine=False)
    values = checked_event(app.catalog(), "bench_purchase", {"amount": 1}, [])
    total = seconds * rate
    pending: list[list[Any]] = [[] for _ in range(profiles)]  # per profile, its events in version order
    for p in range(profiles):
        profile = app.get_profile(f"l-{p}")
        assert profile is not None
        for _ in range(-(-total // profiles)):
            profile.track("bench_purchase", values)
        pending[p] = [app.mapper.to_stored_event(e) for e in profile.collect_events()]

    passed: list[tuple[int, float]] = []

    class Clocked(PolicyProgress):
        def _advance(self, position: int, *, heard: bool = True) -> None:
            if position > self.checkpoint:  # called by the one listening thread only
                passed.append((position, time.perf_counter()))
            super()._advance(position, heard=heard)

    policy = start([sys.executable, "-m", "api.cli", "worker", "policy"], {"DATABASE_URL": database}, None)
    progress: Clocked | None = None
    try:  # the worker and the listener go whatever happens: a leaked worker would load the next runs
        progress = Clocked(app)
        # Steady state: the worker has started, elected itself and evaluated once before the clock starts.
        warm = app.track_event("bench_purchase", {"amount": 1}, "l-warm", None).last_position
        if warm is None or not progress.wait(warm, 60.0):
            raise RuntimeError("the policy worker did not start")
        committed: list[tuple[int, float]] = []
        writers = 8
        queues: list[SimpleQueue[Any]] = [SimpleQueue() for _ in range(writers)]

        def writer(q: SimpleQueue[Any]) -> None:
            while (stored := q.get()) is not None:
                ids = app.recorder.insert_events([stored])
                committed.append((ids[-1], time.perf_counter()))

        threads = [threading.Thread(target=writer, args=(q,)) for q in queues]
        for t in threads:
            t.start()
        try:
            started = time.perf_counter()
            for i in range(total):
                p = i % profiles
                queues[p % writers].put(pending[p][i // profiles])
                time.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
        finally:
            for q in queues:
                q.put(None)
            for t in threads:
                t.join()
        achieved = len(committed) / (time.perf_counter() - started)
        last = max(position for position, _ in committed)
        deadline = time.monotonic() + 10
        while progress.checkpoint < last and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if progress is not None:
            progress.stop()
        policy.terminate()
        policy.wait(timeout=20)
        app.close()
    latencies = sorted(_heard_after(passed, position) - at for position, at in committed)
    latencies = [x for x in latencies if x == x]  # a position the policy never passed: NaN, reported below
    missed = len(committed) - len(latencies)
    p50, p99 = latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000
    rows.append(Row(f"B4 append → effects recorded, offered {rate}/s", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                    f"(achieved {achieved:.0f}/s{f', {missed} not passed in 10 s' if missed else ''})", "—", "—",
                    "p50 <= 5 ms, p99 <= 25 ms"))  # fmt: skip


def _heard_after(heard: list[tuple[int, float]], position: int) -> float:
    """When the policy's progress was first heard at or past ``position`` (NaN if never)."""
    import bisect

    i = bisect.bisect_left(heard, position, key=lambda h: h[0])
    return heard[i][1] if i < len(heard) else float("nan")


def bench_rules(rows: list[Row]) -> None:
    """One event against 1,000 enabled rules, 10 of them triggered by its type."""
    from tests.unit.rules.builders import compiled, context, item, session

    from domain.rules.decide import RuleIndex, decide

    condition = {"all": [{"attr": "session.total", "op": "gte", "value": 50},
                         {"cartItems": {"attr": "category", "op": "eqIgnoreCase", "value": "shoes"},
                          "count": {"op": "gte", "value": 1}}]}  # fmt: skip
    effects = [{"effectType": "addLoyaltyPoints", "props": {"name": "p", "value": {"mul": [{"attr": "session.total"}, 2]}}}]
    index = RuleIndex(
        compiled(i, trigger=["purchase" if i % 100 == 0 else f"other{i % 7}"], condition=condition, effects=effects)
        for i in range(1000)
    )
    ctx = context(session_view=session("80", items=(item(category="Shoes"),)))
    samples = []
    for _ in range(2000):
        t = time.perf_counter()
        decide(index.for_event("purchase"), ctx)
        samples.append(time.perf_counter() - t)
    p50 = statistics.median(samples) * 1e6
    rows.append(Row("B0 decide: 1 event vs 1,000 rules (10 triggered)", f"p50 {p50:.0f} µs", "—", "—", "< 1000 µs"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load run")
    parser.add_argument("--only", default="B0,B1,B2,B3,B4,P1", help="comma list of benchmarks")
    parser.add_argument("--shapes", default="serve,split",
                        help="B1 and B2 against `serve` (one process), `serve --split` (followers as child processes), or both")
    args = parser.parse_args()
    only = set(args.only.split(","))
    shapes = args.shapes.split(",")
    if not set(shapes) <= {"serve", "split"}:
        parser.error("--shapes: serve, split or both")
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("B0", lambda: bench_rules(rows)),
        ("B1", lambda: [bench_http(args.seconds, rows, only, shape == "split") for shape in shapes]),
        ("B3", lambda: bench_appends(args.seconds, rows)),
        ("B4", lambda: [bench_effect_latency(rows, args.seconds, rate) for rate in (100, 1000)]),
        ("P1", lambda: bench_policy(rows)),
    ]
    for name, step in steps:
        if name in only or (name == "B1" and "B2" in only):
            step()
    table = ["| benchmark | ours | baseline | ratio | target |", "|---|---|---|---|---|"]
    table += [f"| {r.name} | {r.ours} | {r.baseline} | {r.ratio} | {r.target} |" for r in rows]
    text = "\n".join(table)
    sys.stdout.write(text + "\n")
    append_results(f"{args.seconds} s runs", "", text)


def append_results(title: str, preface: str, table: str) -> None:
    """Append a table to bench/RESULTS.md under a heading with the date, the title and the machine."""
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    with (HERE / "RESULTS.md").open("a") as results:
        results.write(f"\n## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {title} — {machine}\n\n"
                      + (f"{preface}\n\n" if preface else "") + f"{table}\n")  # fmt: skip


if __name__ == "__main__":
    main()
