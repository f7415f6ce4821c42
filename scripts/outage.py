"""PostgreSQL restarted mid-load: the server reconnects by itself, ``/ready`` says so, clients get 503, not a hang.

    .venv/bin/python scripts/outage.py                  # a dedicated cluster (15/rsoutage, port 5499), restart
    .venv/bin/python scripts/outage.py --down 5         # stop, 5 s without a database, start
    .venv/bin/python scripts/outage.py --cluster main --port 5432   # the machine's own cluster: careful!

Restarting a cluster cuts every client of it: by default the script creates (once) and uses its own cluster,
so that nobody else's tests lose their database. Needs root (``pg_createcluster``, ``pg_ctlcluster``). Never
run from the test suite.

A ``rulestream serve`` runs on a fresh database of that cluster; writers PUT new sessions and a probe polls
``/ready`` while the cluster restarts. Checks: every answer is 200 or 503 (no 500, nothing else); no request
takes longer than ``--max-seconds``; ``/ready`` answered 503 while the database was away and 200 after;
writes succeed again after the restart without restarting the server; every acknowledged write is readable.
Exit status 0 when all hold; a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.conftest import INTEGRATION_KEY, start_server  # noqa: E402

HEADERS = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}


@dataclass
class Record:
    started: float
    seconds: float
    status: int
    sid: str = ""


@dataclass
class Observations:
    writes: list[Record] = field(default_factory=list)
    probes: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def ensure_cluster(version: str, cluster: str, port: int) -> bool:
    """Start the cluster, creating it first if missing; answer whether this created it."""
    listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    created = not any(line.split()[:2] == [version, cluster] for line in listed.splitlines())
    if created:
        subprocess.run(
            ["pg_createcluster", version, cluster, "-p", str(port), "--", "--auth=trust"],
            check=True, capture_output=True,
        )  # fmt: skip
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "start"], capture_output=True)
    return created


def ctl(version: str, cluster: str, action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, action], check=True)


def fresh_database(port: int) -> str:
    import psycopg

    name = f"rulestream_outage_{os.getpid()}"
    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return f"postgresql://postgres@127.0.0.1:{port}/{name}"


def writer(url: str, stop: threading.Event, seen: Observations, timeout: float) -> None:
    with httpx.Client(timeout=timeout) as client:
        while not stop.is_set():
            sid = f"o-{uuid.uuid4().hex[:12]}"
            body = {"customerSession": {"profileId": f"p-{sid[-3:]}", "state": "open",
                                        "cartItems": [{"sku": "a", "price": 10, "quantity": 1}]}}  # fmt: skip
            started = time.monotonic()
            try:
                status = client.put(f"{url}/v2/customer_sessions/{sid}", json=body, headers=HEADERS).status_code
            except httpx.HTTPError:
                status = 0  # no answer at all (a timeout is a hang)
            with seen.lock:
                seen.writes.append(Record(started, time.monotonic() - started, status, sid))
            if status != 200:
                time.sleep(0.05)


def prober(url: str, stop: threading.Event, seen: Observations, timeout: float) -> None:
    with httpx.Client(timeout=timeout) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = client.get(f"{url}/ready").status_code
            except httpx.HTTPError:
                status = 0
            with seen.lock:
                seen.probes.append(Record(started, time.monotonic() - started, status))
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="15")
    parser.add_argument("--cluster", default="rsoutage")
    parser.add_argument("--port", type=int, default=5499)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--before", type=float, default=5, help="seconds of load before the restart")
    parser.add_argument("--after", type=float, default=20, help="seconds of load after the restart")
    parser.add_argument("--down", type=float, default=0, help="stop, wait this long, start (0: restart)")
    parser.add_argument("--max-seconds", type=float, default=15, help="longest acceptable answer")
    args = parser.parse_args()

    created = ensure_cluster(args.version, args.cluster, args.port)
    database = fresh_database(args.port)
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = start_server(database, log)
    seen, stop = Observations(), threading.Event()
    timeout = args.max_seconds * 2
    threads = [threading.Thread(target=writer, args=(server.url, stop, seen, timeout)) for _ in range(args.writers)]
    threads.append(threading.Thread(target=prober, args=(server.url, stop, seen, timeout)))
    try:
        for t in threads:
            t.start()
        time.sleep(args.before)
        cut = time.monotonic()
        if args.down:
            ctl(args.version, args.cluster, "stop")
            time.sleep(args.down)
            ctl(args.version, args.cluster, "start")
        else:
            ctl(args.version, args.cluster, "restart")
        back = time.monotonic()
        time.sleep(args.after)
        stop.set()
        for t in threads:
            t.join()
        with httpx.Client(timeout=30) as client:
            acknowledged = [w for w in seen.writes if w.status == 200]
            missing = [w.sid for w in acknowledged
                       if client.get(f"{server.url}/v2/customer_sessions/{w.sid}", headers=HEADERS).status_code != 200]
            refused = [w for w in seen.writes if w.status == 503]
            recorded_anyway = sum(
                client.get(f"{server.url}/v2/customer_sessions/{w.sid}", headers=HEADERS).status_code == 200
                for w in refused
            )  # fmt: skip
    finally:
        stop.set()
        server.process.terminate()
        server.process.wait(timeout=30)
        if created:  # leave the machine as it was (CI starts every cluster it finds)
            subprocess.run(["pg_dropcluster", "--stop", args.version, args.cluster], check=False)

    statuses: dict[str, int] = {}
    for w in seen.writes:
        statuses[str(w.status)] = statuses.get(str(w.status), 0) + 1
    during = [p for p in seen.probes if cut <= p.started <= back + 5]
    first_ok_after = min((w.started + w.seconds for w in seen.writes if w.started >= cut and w.status == 200),
                         default=None)  # fmt: skip
    tail = [w for w in seen.writes if w.started >= back + args.after / 2]
    summary = {
        "writes": len(seen.writes),
        "statuses": statuses,
        "slowestSeconds": round(max((w.seconds for w in seen.writes), default=0), 3),
        "readyDuringOutage": sorted({p.status for p in during}),
        "readyAtEnd": seen.probes[-1].status if seen.probes else None,
        "outageSeconds": round(back - cut, 2),
        "firstAcknowledgedWriteAfterCutSeconds": round(first_ok_after - cut, 2) if first_ok_after else None,
        "acknowledgedMissing": len(missing),
        "refusedButRecorded": recorded_anyway,
        "lastHalfAllOk": all(w.status == 200 for w in tail) and bool(tail),
        "serverLog": str(log),
    }
    problems = []
    if set(statuses) - {"200", "503"}:
        problems.append("answers other than 200/503")
    if summary["slowestSeconds"] > args.max_seconds:
        problems.append("a request took too long")
    if 503 not in summary["readyDuringOutage"]:
        problems.append("/ready never reported the outage")
    if summary["readyAtEnd"] != 200:
        problems.append("/ready did not recover")
    if not summary["lastHalfAllOk"]:
        problems.append("writes did not recover")
    if missing:
        problems.append("acknowledged writes missing")
    summary["problems"] = problems
    print(json.dumps(summary, indent=2))  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
