"""``api.outage.OutageGuard``: a request that does not start answering within the deadline, while the database
is unreachable, gets a 503 at once (and the following ones too); a slow request to a reachable database waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api import outage
from api.outage import OutageGuard


def _app(delay: float, log: list[str]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late" if delay else b"ok"})
        log.append("finished")

    return app


async def _call(guard: OutageGuard) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    await guard({"type": "http", "path": "/v2/events"}, receive, send)
    return sent


def test_a_fast_request_passes_and_a_slow_one_waits_while_the_database_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probes: list[int] = []
    monkeypatch.setattr(outage, "database_reachable", lambda conninfo: probes.append(1) or True)
    log: list[str] = []
    sent = asyncio.run(_call(OutageGuard(_app(0, log), {}, deadline=0.05)))
    assert [m.get("status") for m in sent] == [200, None] and sent[1]["body"] == b"ok" and not probes
    sent = asyncio.run(_call(OutageGuard(_app(0.3, log), {}, deadline=0.05)))
    assert sent[1]["body"] == b"late" and len(probes) >= 2  # probed at each deadline, found up, kept waiting
    assert log == ["finished", "finished"]


def test_a_request_stuck_on_an_unreachable_database_gets_a_503_and_so_do_the_next_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outage, "database_reachable", lambda conninfo: False)
    log: list[str] = []
    guard = OutageGuard(_app(0.5, log), {}, deadline=0.05)

    async def main() -> tuple[list[dict[str, Any]], float, list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body":
                answered.set_result(loop.time() - started)

        answered: asyncio.Future[float] = loop.create_future()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        request = asyncio.ensure_future(guard({"type": "http", "path": "/v2/events"}, receive, send))
        took = await answered
        await request  # the request itself runs on; what it sends after the 503 is dropped
        return sent, took, await _call(guard)

    sent, took, next_one = asyncio.run(main())
    assert [m.get("status") for m in sent] == [503, None] and took < 0.4
    assert log == ["finished"] and guard.down
    assert next_one[0]["status"] == 503  # at once: the outage is remembered until a probe finds it over
