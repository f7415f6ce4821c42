"""Hostile input: schemathesis against the live OpenAPI document finds no 5xx (a few examples per operation).

The long run is ``scripts/fuzz.py`` (hundreds of examples per operation). This one gets its own server and
database: the fuzzer declares attributes and rules that would fire on the other tests' sessions.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    INTEGRATION_KEY,
    MANAGEMENT_KEY,
    Server,
    drop_database,
    fresh_database,
    start_server,
)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz.py"


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = fresh_database("rulestream_fuzz_e2e")
    running = start_server(database, tmp_path_factory.mktemp("fuzz") / "server.log")
    yield running
    running.process.terminate()
    running.process.wait(timeout=30)
    drop_database(database)


def test_generated_requests_to_every_operation_never_get_a_server_error(own_server: Server) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", own_server.url, "--examples", "2", "--seed", "1122",
         "--phases", "coverage,fuzzing", "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_nul_characters_are_refused_before_anything_is_recorded(server: Server) -> None:
    headers = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        body = {"customerSession": {"profileId": "nul\u0000profile"}}
        assert client.put("/v2/customer_sessions/nul-1", json=body).status_code == 400
        assert client.put("/v2/customer_sessions/nul%00two", json={}).status_code == 400
        assert client.get("/v2/customer_sessions/nul-1").status_code == 404
        escaped = {"customerSession": {"profileId": "back\\u0000slash"}}  # a backslash, then "u0000": fine
        assert client.put("/v2/customer_sessions/nul-3", json=escaped).status_code == 200


def test_positions_beyond_bigint_are_a_bad_request(server: Server) -> None:
    headers = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    for path in ("/v1/audit/feed", "/v1/effects/feed"):
        response = httpx.get(f"{server.url}{path}", params={"after": 2**70}, headers=headers)
        assert response.status_code == 400, (path, response.text)
