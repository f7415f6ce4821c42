"""A route class whose common request skips FastAPI's per-request machinery, and falls back to it otherwise.

FastAPI solves an endpoint's dependencies anew for every request: it walks the dependency tree, looks up each
header and query parameter, validates each value through a field, and caches by call identity. For the
Integration API's commands that was a tenth of the API process's CPU under B1's load (py-spy). ``DirectRoute``
plans, once per route, how to produce the same arguments directly:

- the body: the one JSON body model, validated with ``model_validate`` on what ``orjson`` parsed — FastAPI
  validates what ``json.loads`` parsed with the same model in the same (Python) mode;
- path parameters: through FastAPI's own ``request_params_to_args``, so their constraints are the same;
- query parameters: their defaults, so only requests without a query string take this path;
- dependencies: those whose own parameters are only the ``Request`` and optional string headers (all of
  ``api.deps``), called with exactly those, once each.

Whatever the plan cannot answer goes the usual way, unchanged: a query string, a body that is not JSON (or that
``orjson`` refuses), a body or path parameter that does not validate (FastAPI then builds the 400 with its
pointer), an endpoint whose parameters the plan does not know, dependency overrides. Exceptions from the
dependencies and the endpoint propagate as from FastAPI's handler, to the same exception handlers. The endpoint
runs in a thread of ``Offload`` (a leaner hand-off than Starlette's ``run_in_threadpool``). The endpoint
should answer a ``Response`` (the Integration API's do); anything else is encoded and rendered by the route's
response class, as FastAPI does without a response model.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

JSON_TYPES = ("application/json", "application/json; charset=utf-8")
"""The content types this path parses; others (``+json`` types, other charsets) go FastAPI's way."""

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


@dataclass(frozen=True)
class _Dependency:
    """A dependency called with the request and its header parameters, its value passed as ``name``."""

    name: str
    call: Callable[..., Awaitable[Any]]
    request_param: str | None
    headers: tuple[tuple[str, str], ...]
    """(parameter, header name) pairs."""

    async def value(self, request: Request) -> Any:
        kwargs: dict[str, Any] = {param: request.headers.get(header) for param, header in self.headers}
        if self.request_param:
            kwargs[self.request_param] = request
        return await self.call(**kwargs)


@dataclass(frozen=True)
class _Plan:
    body_name: str | None
    body_model: type[BaseModel] | None
    defaults: dict[str, Any]
    dependencies: tuple[_Dependency, ...]
    dependant: Dependant


def _header(field: Any) -> tuple[str, str] | None:
    """A header parameter the plan can pass as is: an optional ``str`` with ``None`` as its default."""
    if field.field_info.annotation not in (str | None,) or field.field_info.default is not None:
        return None
    alias = field.alias
    header = alias.replace("_", "-") if alias == field.name and field.field_info.convert_underscores else alias
    return field.name, header.lower()


def _dependency(sub: Dependant) -> _Dependency | None:
    if not sub.name or sub.call is None or not inspect.iscoroutinefunction(sub.call) or sub.dependencies:
        return None
    if sub.path_params or sub.query_params or sub.cookie_params or sub.body_params:
        return None
    if sub.response_param_name or sub.background_tasks_param_name or sub.security_scopes_param_name:
        return None
    if sub.http_connection_param_name or sub.websocket_param_name:
        return None
    headers = [_header(field) for field in sub.header_params]
    if any(h is None for h in headers):
        return None
    return _Dependency(sub.name, sub.call, sub.request_param_name, tuple(h for h in headers if h is not None))


def plan(dependant: Dependant, *, embedded_body: bool = False) -> _Plan | None:
    """How to call this endpoint without solving its dependencies, or ``None`` if the plan cannot tell."""
    if dependant.call is None or inspect.iscoroutinefunction(dependant.call) or embedded_body:
        return None
    if dependant.header_params or dependant.cookie_params or len(dependant.body_params) > 1:
        return None
    if dependant.request_param_name or dependant.response_param_name or dependant.background_tasks_param_name:
        return None
    if dependant.http_connection_param_name or dependant.security_scopes_param_name:
        return None
    body_name = body_model = None
    if dependant.body_params:
        field = dependant.body_params[0]
        model = field.field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or field.field_info.metadata:
            return None
        body_name, body_model = field.name, model
    defaults = {}
    for field in dependant.query_params:
        if field.field_info.is_required():
            return None
        defaults[field.name] = field.field_info.get_default(call_default_factory=True)
    dependencies = [_dependency(sub) for sub in dependant.dependencies]
    if any(d is None for d in dependencies) or len({d.call for d in dependencies if d}) != len(dependencies):
        return None  # a dependency used twice would be called twice (FastAPI caches it): not planned
    return _Plan(body_name, body_model, defaults, tuple(d for d in dependencies if d), dependant)


class Offload:
    """Threads that run the planned endpoints (they block on the database): a job is a ``SimpleQueue`` put and a
    ``call_soon_threadsafe`` back, where anyio's ``run_sync`` (Starlette's ``run_in_threadpool``) also enters a
    cancel scope, takes a capacity limiter and wakes its worker through a Python ``Condition``. Threads start as
    jobs find none idle, up to ``limit`` (anyio's default: 40); the endpoint runs in a copy of the context, as
    there."""

    def __init__(self, limit: int = 40) -> None:
        self.limit = limit
        self.jobs: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    async def run(self, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._idle <= 0 and self._threads < self.limit:
                self._threads += 1
                threading.Thread(target=self._work, name=f"endpoint-{self._threads}", daemon=True).start()
            else:
                self._idle -= 1  # a waiting worker takes it (or the queue holds it until one is free)
        self.jobs.put((loop, future, contextvars.copy_context(), call, kwargs))
        return await future

    def _work(self) -> None:
        while True:
            loop, future, context, call, kwargs = self.jobs.get()
            try:
                result = context.run(call, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting request
                loop.call_soon_threadsafe(_settle, future, None, error)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)
            with self._lock:
                self._idle += 1


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


OFFLOAD = Offload()


class DirectRoute(APIRoute):
    """An ``APIRoute`` that calls its endpoint directly when the request fits its plan (module docstring)."""

    def get_route_handler(self) -> Handler:
        usual = super().get_route_handler()
        planned = plan(self.dependant, embedded_body=self._embed_body_fields)
        if planned is None:
            return usual
        endpoint = self.dependant.call
        assert endpoint is not None
        response_class: Any = getattr(self.response_class, "value", self.response_class)
        status = self.status_code

        async def handler(request: Request) -> Response:
            arguments = await _arguments(planned, request)
            if arguments is None:
                return await usual(request)
            result = await OFFLOAD.run(endpoint, arguments)
            if isinstance(result, Response):
                return result
            rendered: Response = response_class(jsonable_encoder(result), **({"status_code": status} if status else {}))
            return rendered

        return handler


async def _arguments(planned: _Plan, request: Request) -> dict[str, Any] | None:
    """The endpoint's arguments for this request, or ``None`` to let FastAPI's handler take it."""
    scope = request.scope
    if scope.get("query_string") or getattr(request.app, "dependency_overrides", None):
        return None
    values: dict[str, Any] = dict(planned.defaults)
    if planned.dependant.path_params:
        found, errors = request_params_to_args(planned.dependant.path_params, request.path_params)
        if errors:
            return None
        values.update(found)
    if planned.body_model is not None and planned.body_name is not None:
        if request.headers.get("content-type", "").lower() not in JSON_TYPES:
            return None
        body = await request.body()  # kept on the request: FastAPI's handler reads it again if it takes over
        try:
            values[planned.body_name] = planned.body_model.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            return None
    for dependency in planned.dependencies:
        values[dependency.name] = await dependency.value(request)
    return values

