"""Zero-setup start: ``rulestream serve`` without ``DATABASE_URL`` runs on an embedded PostgreSQL (pgserver)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import talon_one

from tests.conftest import Server, start_server

EMBEDDED = {
    "DATABASE_URL": "",  # empty is unset: no external database
    "POSTGRES_HOST": "",
    "RULESTREAM_INTEGRATION_KEY": "",  # no seed keys, so the first start creates the development pair
    "RULESTREAM_MANAGEMENT_KEY": "",
}


def rulestream(data_dir: Path, *args: str) -> str:
    """Run a ``rulestream`` command on the embedded database of ``data_dir`` and return its stdout."""
    env = {**os.environ, **EMBEDDED, "RULESTREAM_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory outside pytest's base temp folder, which pytest closes to other users on every run: as
    root, pgserver runs PostgreSQL as the user ``pgserver``, which must reach the cluster."""
    folder = Path(tempfile.mkdtemp(prefix="rulestream-embedded-"))
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


def stop(server: Server) -> None:
    """Stop as an operator does (SIGTERM): cleanly, every thread done with the database before it stops."""
    server.process.terminate()
    try:
        assert server.process.wait(timeout=30) == 0, server.log.read_text()
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise
    printed = server.log.read_text()
    assert not any(word in printed for word in ("Traceback", " ERROR ", " WARNING ")), printed


def integration_api(server: Server, key: str) -> talon_one.IntegrationApi:
    config = talon_one.Configuration(
        host=server.url, api_key={"api_key_v1": key}, api_key_prefix={"api_key_v1": "ApiKey-v1"}
    )
    return talon_one.IntegrationApi(talon_one.ApiClient(config))


@pytest.mark.integration
def test_an_embedded_database_keeps_a_session_across_a_restart(data_dir: Path, tmp_path: Path) -> None:
    env = {**EMBEDDED, "RULESTREAM_DATA_DIR": str(data_dir)}
    cluster = data_dir / "postgres"

    first = start_server("", tmp_path / "first.log", env)
    try:
        # a second process on the same data directory shares the running server, and leaves it running
        key = rulestream(data_dir, "keys", "create", "--role", "integration", "--name", "t")
        assert rulestream(data_dir, "db", "url").startswith("postgresql://postgres@/rulestream?host=")
        request = talon_one.IntegrationRequest(
            customer_session=talon_one.NewCustomerSessionV2(
                profile_id="ada", cart_items=[talon_one.CartItem(sku="shoe", price=49.5, quantity=2)]
            )
        )
        integration_api(first, key).update_customer_session_v2("cart-1", request)
    finally:
        stop(first)
    printed = (tmp_path / "first.log").read_text()
    assert f"data in {cluster}" in printed
    assert "dev-integration: rs_int_" in printed
    assert not (cluster / "postmaster.pid").exists(), "the embedded server outlived Rulestream"

    second = start_server("", tmp_path / "second.log", env)
    try:
        session = integration_api(second, key).get_customer_session("cart-1").customer_session
        assert (session.profile_id, session.total) == ("ada", 99)
    finally:
        stop(second)
    assert "Development keys" not in (tmp_path / "second.log").read_text()


@pytest.mark.integration
def test_split_workers_run_on_the_embedded_database_and_it_stops_after_them(data_dir: Path, tmp_path: Path) -> None:
    env = {**EMBEDDED, "RULESTREAM_DATA_DIR": str(data_dir)}
    server = start_server("", tmp_path / "split.log", env, args=["--split"])
    try:
        key = rulestream(data_dir, "keys", "create", "--role", "integration", "--name", "t")
        request = talon_one.IntegrationRequest(customer_session=talon_one.NewCustomerSessionV2(profile_id="ada"))
        integration_api(server, key).update_customer_session_v2("cart-1", request)
        deadline = time.monotonic() + 20  # the policy, a child process, follows the embedded database's log
        while 'rulestream_follower_checkpoint{follower="policy"} 0.0' in httpx.get(f"{server.url}/metrics").text:
            assert time.monotonic() < deadline, "the policy worker did not follow the log"
            time.sleep(0.1)
    finally:
        stop(server)
    assert "Workers (their own processes): policy" in (tmp_path / "split.log").read_text()
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "the embedded server outlived Rulestream"
