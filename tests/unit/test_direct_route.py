"""``api.direct.DirectRoute``: the planned path answers what FastAPI's would, and leaves it everything else."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated, Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.direct import DirectRoute, plan


class Body(BaseModel):
    name: Annotated[str, Field(min_length=1)]
    amount: int = 0


calls: list[str] = []


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    calls.append("caller")
    if authorization != "ok":
        raise PermissionError("no")
    return "alice"


async def correlation(request: Request, x_correlation_id: Annotated[str | None, Header()] = None) -> str:
    return x_correlation_id or "new"


router = APIRouter(route_class=DirectRoute)


@router.put("/things/{thingId}")
def put_thing(
    thing_id: Annotated[str, Path(alias="thingId", max_length=5)],
    body: Body,
    who: Annotated[str, Depends(caller)],
    cid: Annotated[str, Depends(correlation)],
    dry: Annotated[bool, Query()] = False,
) -> Any:
    return JSONResponse({"thing": thing_id, "name": body.name, "amount": body.amount, "who": who, "cid": cid,
                         "dry": dry})  # fmt: skip


@router.post("/plain")
def plain(who: Annotated[str, Depends(caller)]) -> Any:
    return {"who": who}


class Client:
    """Requests to the app in this process (ASGI), one event loop per request."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def make_app() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(PermissionError)
    async def forbidden(request: Request, error: PermissionError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=403)

    app.include_router(router)
    return app


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times FastAPI's own dependency solving ran (the usual path)."""
    count = [0]
    original = vars(fastapi.routing)["solve_dependencies"]

    async def counting(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    calls.clear()
    yield count


AUTH = {"Authorization": "ok", "X-Correlation-ID": "c-1"}


def test_a_request_that_fits_the_plan_skips_dependency_solving_and_answers_the_same(solved: list[int]) -> None:
    client = Client(make_app())
    direct = client.put("/things/a1", json={"name": "x", "amount": 2}, headers=AUTH)
    assert solved[0] == 0
    usual = client.put("/things/a1?dry=false", json={"name": "x", "amount": 2}, headers=AUTH)
    assert solved[0] == 1
    assert direct.status_code == usual.status_code == 200
    assert direct.json() == usual.json() == {"thing": "a1", "name": "x", "amount": 2, "who": "alice", "cid": "c-1",
                                             "dry": False}  # fmt: skip
    assert calls == ["caller", "caller"]  # once per request on either path


def test_what_the_plan_cannot_answer_goes_fastapis_way_with_its_errors(solved: list[int]) -> None:
    client = Client(make_app())
    invalid = client.put("/things/a1", json={"name": ""}, headers=AUTH)
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "name"]
    too_long = client.put("/things/abcdefgh", json={"name": "x"}, headers=AUTH)
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["path", "thingId"]
    not_json = client.put("/things/a1", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["type"] == "json_invalid"
    other_type = client.put("/things/a1", content=b'{"name": "x"}', headers={**AUTH, "Content-Type": "text/plain"})
    assert other_type.status_code == 422
    assert solved[0] == 3  # FastAPI answers a body that is not JSON before it solves anything
    assert calls == ["caller"] * 3  # FastAPI's calls only: the plan called none before handing over


def test_dependency_errors_reach_the_same_handlers_and_other_results_are_rendered() -> None:
    client = Client(make_app())
    assert client.put("/things/a1", json={"name": "x"}, headers={"Authorization": "bad"}).status_code == 403
    assert client.post("/plain", headers=AUTH).json() == {"who": "alice"}


def test_endpoints_the_plan_does_not_know_are_left_to_fastapi() -> None:
    def required_query(q: Annotated[int, Query()]) -> None: ...
    async def asynchronous() -> None: ...
    def wants_request(request: Request) -> None: ...
    def cached_dependency(a: Annotated[str, Depends(caller)], b: Annotated[str, Depends(caller)]) -> None: ...

    for endpoint in (required_query, asynchronous, wants_request, cached_dependency):
        route = DirectRoute("/x", endpoint)
        assert plan(route.dependant) is None, endpoint.__name__
    assert plan(DirectRoute("/x", plain).dependant) is not None


def test_the_offload_runs_calls_in_threads_of_its_own_with_the_callers_context_and_at_most_its_limit() -> None:
    import contextvars
    import threading

    from api.direct import Offload

    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
    offload = Offload(limit=3)
    release = threading.Event()
    running: set[str] = set()

    def job(n: int) -> tuple[str, str]:
        running.add(threading.current_thread().name)
        release.wait(5)
        return who.get(), threading.current_thread().name

    def fail() -> None:
        raise LookupError("from the thread")

    async def main() -> None:
        who.set("alice")
        jobs = [asyncio.ensure_future(offload.run(job, {"n": n})) for n in range(6)]
        await asyncio.sleep(0.2)
        assert len(running) == 3  # the limit: the other three wait in the queue
        release.set()
        done = await asyncio.gather(*jobs)
        assert {context for context, _ in done} == {"alice"}
        assert {thread for _, thread in done} <= running and threading.current_thread().name not in running
        with pytest.raises(LookupError, match="from the thread"):
            await offload.run(fail, {})
        cancelled = asyncio.ensure_future(offload.run(lambda: release.wait(0.1), {}))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0.3)  # its result arrives for a cancelled future: ignored, nothing raised
        assert await offload.run(lambda: "again", {}) == "again"
        assert offload._threads == 3

    asyncio.run(main())
