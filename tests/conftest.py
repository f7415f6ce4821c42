"""Infrastructure fixtures only: databases and a running server. Test data builders live in tests/builders.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

ADMIN_URL = os.environ.get("RULESTREAM_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
INTEGRATION_KEY = "rs_int_test-integration-key-0123456789abcdef"
MANAGEMENT_KEY = "rs_man_test-management-key-0123456789abcdef"


RUN = f"{os.getpid()}"
"""Databases are named per test run, so that several runs on one machine do not collide."""


def fresh_database(name: str) -> str:
    """Drop and create database ``name`` (suffixed with this run's id) and return its URL."""
    name = f"{name}_{RUN}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = fresh_database("rulestream_test")
    yield url
    drop_database(url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(self, url: str, database_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url, self.database_url, self.process, self.log = url, database_url, process, log


def start_server(
    database_url: str, log: Path, extra_env: dict[str, str] | None = None, args: list[str] | None = None
) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RULESTREAM_INTEGRATION_KEY": INTEGRATION_KEY,
        "RULESTREAM_MANAGEMENT_KEY": MANAGEMENT_KEY,
        **(extra_env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), *(args or [])],
            env=env,
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return Server(url, database_url, process, log)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``rulestream serve`` for the end-to-end tests, on a fresh database."""
    database = fresh_database("rulestream_e2e")
    running = start_server(database, tmp_path_factory.mktemp("server") / "server.log")
    yield running
    running.process.terminate()
    try:
        running.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait(timeout=10)
    drop_database(database)
