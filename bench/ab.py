"""A/B: B1's load (or B2's) against two source trees, interleaved, with the CPU each process spent per request.

    PYTHONPATH=src:. .venv/bin/python bench/ab.py --base /tmp/base [--rounds 2] [--seconds 8] [--serve] [--load B2]

``--base`` is another checkout (e.g. ``git worktree add /tmp/base <commit>``); the other tree is this one. Each
round runs B1 (``POST /v2/events``, one rule, 64 connections, ``wrk``; ``--load B2``: B2's session updates) on a
fresh database against the base, then against this tree, so both see the same machine within seconds of each other: on a shared, noisy machine only
such pairs can be compared. Reported per run: requests/s and CPU ms per request of the API process, of each
worker (``--serve``: the one process) and of PostgreSQL (every ``postgres`` process on the machine, so run it on
an otherwise idle one). The table is appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE.parent)]

from bench.run import (  # noqa: E402
    EVENT_BODY,
    INTEGRATION_KEY,
    MANAGEMENT_KEY,
    SESSION_BODY,
    append_results,
    declare_rule,
    free_port,
    fresh_database,
    lua,
    start,
    wrk,
)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_cpu() -> float:
    """CPU of every ``postgres`` process (backends come and go: those that exit during a run are missed)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(proc.name))
            except OSError:
                continue
    return total


LOADS = {
    "B1": ("POST", '"/v2/events"', EVENT_BODY),
    "B2": ("PUT", '"/v2/customer_sessions/bench-s" .. n', SESSION_BODY),
}
"""The requests of each benchmark's load (``bench/run.py``)."""


def run_once(tree: Path, seconds: int, serve: bool, load: str = "B1") -> dict[str, float]:
    database = fresh_database("rulestream_bench_ab")
    port = free_port()
    env = {"DATABASE_URL": database, "RULESTREAM_INTEGRATION_KEY": INTEGRATION_KEY,
           "RULESTREAM_MANAGEMENT_KEY": MANAGEMENT_KEY, "RULESTREAM_PORT": str(port),
           "PYTHONPATH": f"{tree / 'src'}:{tree}"}  # fmt: skip
    health = f"http://127.0.0.1:{port}/health"
    if serve:
        processes = {"serve": start([sys.executable, "-m", "api.cli", "serve"], env, health)}
    else:
        processes = {"api": start([sys.executable, "-m", "api.cli", "api"], env, health)}
        for group in ("policy", "projections"):
            processes[group] = start([sys.executable, "-m", "api.cli", "worker", group], env, None)
    try:
        url = f"http://127.0.0.1:{port}"
        declare_rule(url)
        before = {name: cpu_seconds(p.pid) for name, p in processes.items()} | {"postgres": postgres_cpu()}
        rate, p99 = wrk(url, lua(*LOADS[load]), seconds)
        after = {name: cpu_seconds(p.pid) for name, p in processes.items()} | {"postgres": postgres_cpu()}
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=20)
    requests = rate * seconds
    cpu = {name: (after[name] - before[name]) * 1000 / requests for name in before}
    return {"rate": rate, "p99": p99, **cpu, "total": sum(cpu.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the other source tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--serve", action="store_true", help="one `rulestream serve` process instead of api + workers")
    parser.add_argument("--load", choices=sorted(LOADS), default="B1", help="whose requests (default B1's)")
    args = parser.parse_args()
    head = HERE.parent
    trees = {"base": args.base.resolve(), "this": head}
    labels = {name: subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h"], capture_output=True,
                                   text=True).stdout.strip() or str(tree) for name, tree in trees.items()}  # fmt: skip
    results: list[tuple[str, dict[str, float]]] = []
    for _ in range(args.rounds):
        for name, tree in trees.items():
            results.append((name, run_once(tree, args.seconds, args.serve, args.load)))
            sys.stdout.write(f"{labels[name]}: {results[-1]}\n")
    columns = [c for c in results[0][1] if c not in ("rate", "p99")]
    table = ["| tree | req/s | p99 ms | " + " | ".join(f"CPU ms/req {c}" for c in columns) + " |",
             "|---" * (3 + len(columns)) + "|"]  # fmt: skip
    for name, r in results:
        cells = " | ".join(f"{r[c]:.2f}" for c in columns)
        table.append(f"| {name} {labels[name]} | {r['rate']:.1f} | {r['p99']:.0f} | {cells} |")
    text = "\n".join(table)
    sys.stdout.write(text + "\n")
    mode = "serve" if args.serve else "split"
    append_results(f"A/B, {args.load}'s load, {mode}, {args.seconds} s rounds", "`bench/ab.py`", text)


if __name__ == "__main__":
    main()
