"""Hostile input: schemathesis against the live OpenAPI document, with a fixed seed; no 5xx allowed.

    .venv/bin/python scripts/fuzz.py                   # a throwaway server on a fresh database, 300 examples
    .venv/bin/python scripts/fuzz.py --url http://127.0.0.1:8000 -n 50 --integration-key K --management-key K
    .venv/bin/python scripts/fuzz.py --strict          # also: every response matches the declared schema

Every operation is fuzzed with the key of its role (integration routes with the integration key, the rest with
the management key), so generated data reaches validation and the domain instead of stopping at 401/403.
Exit status 0 when schemathesis found nothing. The test suite runs the same with a few examples
(``tests/e2e/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION_ROUTES = r"^/(v2/|api/|v1/customer_data/|v1/loyalty_programs/)"


def fuzz(url: str, integration_key: str, management_key: str, *, examples: int, seed: int, strict: bool,
         phases: str, workers: int) -> int:  # fmt: skip
    """Run both passes; answer the worst exit status."""
    checks = "not_a_server_error" + (",response_schema_conformance,status_code_conformance" if strict else "")
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    common = [cli, "run", f"{url}/openapi.json", "--checks", checks, "--seed", str(seed),
              "--max-examples", str(examples), "--phases", phases, "--workers", str(workers),
              "--generation-database", "none", "--no-color", "--request-timeout", "30"]  # fmt: skip
    passes = [
        ["-H", f"Authorization: ApiKey-v1 {integration_key}", "--include-path-regex", INTEGRATION_ROUTES],
        ["-H", f"Authorization: ManagementKey-v1 {management_key}",
         "--exclude-path-regex", INTEGRATION_ROUTES],  # fmt: skip
    ]
    worst = 0
    for extra in passes:
        # In a scratch directory: the fuzzer leaves its state (``.schemathesis/``) in the working directory.
        done = subprocess.run(common + extra, env={**os.environ, "NO_COLOR": "1"}, cwd=tempfile.gettempdir())
        worst = max(worst, done.returncode)
    return worst


def main() -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--url", help="a running server (default: start one on a fresh database)")
    parser.add_argument("--integration-key")
    parser.add_argument("--management-key")
    parser.add_argument("-n", "--examples", type=int, default=300, help="examples per operation")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--workers", type=int, default=1, help="over 1: schemathesis threads crash")
    parser.add_argument("--strict", action="store_true", help="also check responses against the schema")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, drop_database, fresh_database, start_server

    options = {"examples": args.examples, "seed": args.seed, "strict": args.strict, "phases": args.phases,
               "workers": args.workers}  # fmt: skip
    if args.url:
        return fuzz(args.url, args.integration_key or INTEGRATION_KEY, args.management_key or MANAGEMENT_KEY,
                    **options)  # type: ignore[arg-type]  # fmt: skip
    database = fresh_database("rulestream_fuzz")
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = start_server(database, log)
    try:
        status = fuzz(server.url, INTEGRATION_KEY, MANAGEMENT_KEY, **options)  # type: ignore[arg-type]
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
        drop_database(database)
    print(f"server log: {log}")  # noqa: T201
    errors = [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]
    print(f"tracebacks in the server log: {len(errors)}")  # noqa: T201
    return status


if __name__ == "__main__":
    sys.exit(main())
