"""Soak: ten minutes at half the measured maximum throughput; memory and latency must stay flat.

    .venv/bin/python scripts/soak.py                      # measure max for 20 s, then 600 s at half of it
    .venv/bin/python scripts/soak.py --minutes 1 --rate 50   # a short run at a fixed rate (requests/s)
    .venv/bin/python scripts/soak.py --small-caches       # every bounded cache at 1,000 entries: full in a minute
    .venv/bin/python scripts/soak.py --small-caches --profiles 0   # ... and a new profile per session

A ``rulestream serve`` on a fresh database. Phase 1 drives session writes with many threads as fast as they go
and takes the throughput as the maximum. Phase 2 paces the same writes at half of it (open-loop: a request is
due every 1/rate s whatever the answers do) and reports, per minute, throughput, p50/p99 latency and the
server's resident memory. It fails when the last minute's p99 or memory exceeds the first minute's by more than
``--tolerance`` (default 50 %), when memory still grows in the second half of the run (a line fitted to the RSS,
sampled every 5 s, rises more than ``--max-slope`` MiB/min), when any request fails, or when the pace could not
be kept.

Every write opens a new session (unique ids) of one of ``--profiles`` profiles (256), so the server's bounded
caches (aggregates, the policy's streams and state, profiles' data keys) keep filling until they reach their
bounds: at the default bounds that takes longer than ten minutes, so memory rises all through the run.
``--small-caches N`` starts the server with every bound at N entries (``RULESTREAM_*_CACHE``), so they are full
early. What still grows then is either a leak or state that grows inside a cached aggregate: a profile keeps
every session it counted (``CustomerProfile.counted_sessions``), so with few profiles each cached profile grows
with every write. ``--profiles 0`` (a new profile per session) keeps every profile small, to tell the two apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.conftest import INTEGRATION_KEY, drop_database, fresh_database, start_server  # noqa: E402

HEADERS = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}
CACHES = ("RULESTREAM_AGGREGATE_CACHE", "RULESTREAM_POLICY_CACHE", "RULESTREAM_POLICY_STATE_CACHE",
          "RULESTREAM_KEY_CACHE")  # fmt: skip
RSS_EVERY = 5.0
ARENAS = {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
"""The server runs as ``bin/start`` and the Docker image run it: with two malloc arenas (README, "Soak")."""
local = threading.local()


def write(url: str, profiles: int) -> tuple[float, int | str]:
    """(seconds, status); the status is the exception's name when there was no answer."""
    client = getattr(local, "client", None) or httpx.Client(timeout=30)
    local.client = client
    sid = f"soak-{uuid.uuid4().hex[:12]}"
    profile = f"p-{int(sid[-6:], 16) % profiles}" if profiles else f"p-{sid}"
    body = {"customerSession": {"profileId": profile, "state": "closed",
                                "cartItems": [{"sku": "a", "price": 10, "quantity": 2}]}}  # fmt: skip
    started = time.perf_counter()
    try:
        status: int | str = client.put(f"{url}/v2/customer_sessions/{sid}", json=body, headers=HEADERS).status_code
    except httpx.HTTPError as error:
        status = type(error).__name__
    return time.perf_counter() - started, status


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    if len(samples) < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / len(samples)
    mean_m = sum(m for _, m in samples) / len(samples)
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    return sum((t - mean_t) * (m - mean_m) for t, m in samples) / spread * 60 if spread else 0.0


def sample_rss(pid: int, samples: list[tuple[float, float]], stop: threading.Event) -> None:
    started = time.monotonic()
    while not stop.wait(RSS_EVERY):
        samples.append((time.monotonic() - started, rss_mib(pid)))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


def measure_max(url: str, seconds: float, threads: int, profiles: int) -> float:
    done, stop = [0], threading.Event()

    def loop() -> None:
        while not stop.is_set():
            if write(url, profiles)[1] == 200:
                done[0] += 1

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return done[0] / seconds


def soak(url: str, pid: int, rate: float, minutes: float, profiles: int) -> list[dict[str, Any]]:
    minutes_report: list[dict[str, Any]] = []
    interval, due = 1 / rate, time.monotonic()
    end = due + minutes * 60
    with ThreadPoolExecutor(max_workers=64) as pool:
        while due < end:  # one window a minute, on a schedule kept across windows
            window_end = min(end, due + 60)
            futures, late = [], 0
            while due < window_end:
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                elif now - due > 1:
                    late += 1
                futures.append(pool.submit(write, url, profiles))
                due += interval
            results = [f.result() for f in futures]
            latencies = [r[0] for r in results]
            failed = Counter(str(status) for _, status in results if status != 200)
            minutes_report.append({
                "requests": len(results), "failed": sum(1 for r in results if r[1] != 200), "late": late,
                "p50ms": round(percentile(latencies, 0.5) * 1000, 1),
                "p99ms": round(percentile(latencies, 0.99) * 1000, 1), "rssMiB": round(rss_mib(pid), 1),
            } | ({"failedStatus": dict(failed)} if failed else {}))  # fmt: skip
            print(json.dumps(minutes_report[-1]), flush=True)  # noqa: T201
    return minutes_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, help="requests per second (default: half the measured max)")
    parser.add_argument("--measure-seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--max-slope", type=float, default=0.5,
                        help="MiB/min the RSS may still rise over the second half of the run (default 0.5)")
    parser.add_argument("--small-caches", type=int, nargs="?", const=1000, metavar="N",
                        help="start the server with every bounded cache at N entries (default 1000)")
    parser.add_argument("--profiles", type=int, default=256,
                        help="profiles the sessions are spread over (default 256; 0: a new profile per session)")
    args = parser.parse_args()
    caches = {name: str(args.small_caches) for name in CACHES} if args.small_caches else {}
    database = fresh_database("rulestream_soak")
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        server = start_server(database, Path(tempfile.mkdtemp()) / "server.log", {**ARENAS, **caches})
        try:
            measure = (server.url, args.measure_seconds, args.threads, args.profiles)
            maximum = measure_max(*measure) if args.rate is None else None
            rate = args.rate or (maximum or 1) / 2
            print(json.dumps({"measuredMaxPerSecond": maximum, "ratePerSecond": rate, "profiles": args.profiles,
                              "caches": caches}), flush=True)  # fmt: skip  # noqa: T201
            threading.Thread(target=sample_rss, args=(server.process.pid, samples, stop), daemon=True).start()
            report = soak(server.url, server.process.pid, rate, args.minutes, args.profiles)
        finally:
            stop.set()
            server.process.terminate()
            server.process.wait(timeout=30)
    finally:
        drop_database(database)
    first, last = report[0], report[-1]
    half = args.minutes * 60 / 2
    slope = round(slope_per_minute([s for s in samples if s[0] >= half]), 2)
    after_first = report[1:] or report
    print(json.dumps({  # noqa: T201
        "minutes": len(report), "failed": sum(m["failed"] for m in report), "late": sum(m["late"] for m in report),
        "p50ms": [min(m["p50ms"] for m in after_first), max(m["p50ms"] for m in after_first)],
        "p99ms": [min(m["p99ms"] for m in after_first), max(m["p99ms"] for m in after_first)],
        "rssMiB": [first["rssMiB"], last["rssMiB"]], "secondHalfSlopeMiBPerMin": slope,
    }))  # fmt: skip
    problems = []
    if any(m["failed"] for m in report):
        problems.append("failed requests")
    if any(m["late"] for m in report):
        problems.append("the pace could not be kept")
    if last["p99ms"] > first["p99ms"] * (1 + args.tolerance):
        problems.append("p99 latency grew")
    if last["rssMiB"] > first["rssMiB"] * (1 + args.tolerance):
        problems.append("memory grew")
    if slope > args.max_slope:
        problems.append(f"memory still grows in the second half ({slope} MiB/min)")
    print(json.dumps({"problems": problems}))  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
