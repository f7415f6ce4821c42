"""The rule policy's cost per batch: a backlog of custom events caught up in batches of a fixed size.

    .venv/bin/python bench/policy_step.py [--batch 1] [--events 1500] [--tree DIR]

Prints the wall and CPU milliseconds per batch (this process: the policy runs in it, nothing else does while it
catches up). Small batches show the fixed cost of a step (its round trips and statements); for A/B runs on a
noisy machine, run it in turn against another checkout with ``--tree``.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1, help="the policy's batch size")
    parser.add_argument("--events", type=int, default=1500, help="custom events in the backlog")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent, help="source tree")
    args = parser.parse_args()
    sys.path[:0] = [str(args.tree / "src"), str(args.tree)]
    from bench.run import _app_with_rule, fresh_database

    from projections.follower import FollowerRunner
    from projections.policy import RulePolicy

    app = _app_with_rule(fresh_database("rulestream_bench_policy_step"))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: app.track_event("bench_purchase", {"amount": 1}, f"p-{i % 300}", None),
                      range(args.events)))  # fmt: skip
    policy = RulePolicy(app)
    policy.batch_size = args.batch
    started, cpu = time.perf_counter(), time.process_time()
    FollowerRunner(app, policy).run_until_caught_up()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    steps = args.events / args.batch
    sys.stdout.write(f"{args.tree}: {wall / steps * 1000:.2f} ms wall, {cpu / steps * 1000:.2f} ms CPU per batch "
                     f"of {args.batch}\n")  # fmt: skip
    app.close()


if __name__ == "__main__":
    main()
