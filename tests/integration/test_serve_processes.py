"""``rulestream serve --split``: the API in its process, the policy and the projections as supervised children."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server, drop_database, fresh_database, start_server

MANAGE = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
INTEGRATE = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}


def workers_of(pid: int) -> dict[str, int]:
    """The ``rulestream worker <group>`` children of process ``pid``, by group."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and b"worker" in argv:
            found[argv[argv.index(b"worker") + 1].decode()] = int(proc.name)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def until(check, seconds: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    database = fresh_database("rulestream_serve_processes")
    server = start_server(database, tmp_path / "server.log", args=["--split"])
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=30)
        drop_database(database)


def points_rule(url: str) -> None:
    httpx.post(f"{url}/v1/attributes", headers=MANAGE, json={
        "entity": "Event", "eventType": "purchase", "name": "amount", "title": "amount", "type": "number",
        "description": "", "suggestions": [], "editable": True}).raise_for_status()  # fmt: skip
    httpx.post(f"{url}/v1/rules", headers=MANAGE, json={
        "name": "a point per euro", "trigger": ["purchase"],
        "effects": [{"effectType": "addLoyaltyPoints",
                     "props": {"name": "p", "value": {"attr": "event.attributes.amount"}}}]}).raise_for_status()  # fmt: skip


def purchase(url: str, amount: int) -> httpx.Response:
    body = {"profileId": "ada", "type": "purchase", "attributes": {"amount": amount}}
    return httpx.post(f"{url}/v2/events", headers=INTEGRATE, json=body, timeout=30)


def test_the_followers_run_in_child_processes_that_are_started_again_when_they_die(served: Server) -> None:
    workers = workers_of(served.process.pid)
    assert set(workers) == {"policy", "projections"}
    points_rule(served.url)
    first = purchase(served.url, 3)
    assert first.status_code == 200
    assert "Rulestream-Effects" not in first.headers  # the policy was there to evaluate it
    assert [e["props"]["value"] for e in first.json()["effects"]] == [3]

    os.kill(workers["policy"], signal.SIGKILL)
    again = until(lambda: (w := workers_of(served.process.pid)).get("policy") not in (None, workers["policy"]) and w)
    assert again["projections"] == workers["projections"]
    later = purchase(served.url, 4)  # the new policy evaluates it (the response waits up to its bound)
    assert [e["props"]["value"] for e in later.json()["effects"]] == [4]

    metrics = httpx.get(f"{served.url}/metrics").text  # the followers' gauges, though they run elsewhere
    checkpoint = metrics.split('rulestream_follower_checkpoint{follower="policy"} ', 1)[1].split()[0]
    assert float(checkpoint) > 0
    assert 'rulestream_follower_checkpoint{follower="events_log"}' in metrics


def test_stopping_serve_stops_its_children(served: Server) -> None:
    workers = workers_of(served.process.pid)
    assert set(workers) == {"policy", "projections"}  # else the check below would pass on nothing
    served.process.terminate()
    assert served.process.wait(timeout=30) == 0
    assert not any(alive(pid) for pid in workers.values())


def test_children_of_a_killed_serve_stop_by_themselves(served: Server) -> None:
    workers = workers_of(served.process.pid)
    assert workers
    served.process.kill()
    served.process.wait(timeout=10)
    until(lambda: not any(alive(pid) for pid in workers.values()), seconds=15)


def test_serve_alone_runs_the_followers_as_threads(tmp_path: Path) -> None:
    database = fresh_database("rulestream_serve_one_process")
    server = start_server(database, tmp_path / "server.log")
    try:
        assert workers_of(server.process.pid) == {}
        points_rule(server.url)
        assert [e["props"]["value"] for e in purchase(server.url, 5).json()["effects"]] == [5]
    finally:
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0
        drop_database(database)
