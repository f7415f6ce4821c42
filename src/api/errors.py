"""Every failure becomes Talon.One's ``ErrorResponse``, mapped here and nowhere else.

Domain errors map by class (see ``domain.errors``); body validation errors become 400 (Talon.One does not use
422) with a JSON pointer to each offending field; anything unexpected is a 500 that is logged, never a stack
trace on the wire. A database that cannot be reached is a 503.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import OperationalError as StoreOperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.wire.json import FastJSONResponse
from api.wire.talon import error
from domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    Problem,
    Unauthorized,
    escape_pointer_token,
)

log = logging.getLogger("rulestream.api")

STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409, Unauthorized: 401, Forbidden: 403}


def status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def problem_json(problem: Problem) -> dict[str, Any]:
    source: dict[str, str] = {}
    if problem.pointer is not None:
        source["pointer"] = problem.pointer
    if problem.parameter is not None:
        source["parameter"] = problem.parameter
    return {"title": problem.title, "details": problem.details or problem.title, "source": source}


def respond(status: int, message: str, problems: Sequence[Problem], headers: dict[str, str] | None = None) -> Any:
    return FastJSONResponse(
        error(message, [problem_json(p) for p in problems], status), status_code=status, headers=headers
    )


def validation_problems(exc: RequestValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        where, *path = err.get("loc", ()) or ("body",)
        # pydantic puts the names of union members and validators into the location; they are not fields.
        tokens = [t for t in path if not (isinstance(t, str) and ("[" in t or t.startswith("function-")))]
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":  # its location is a character offset, not a field
            reason = (err.get("ctx") or {}).get("error")
            details = f"{message}: {reason} at character {tokens[0]}" if reason and tokens else message
            problems.append(Problem(title="Invalid JSON", details=details, pointer="/"))
        elif where == "body":
            ptr = "".join("/" + escape_pointer_token(t) for t in tokens)
            problems.append(Problem(title="Invalid request body", details=message, pointer=ptr or "/"))
        else:
            name = str(tokens[0]) if tokens else str(where)
            problems.append(Problem(title=f"Invalid {where} parameter", details=message, parameter=name))
    return problems


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into an ``ErrorResponse``."""

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> Any:
        status = status_of(exc)
        headers = {"WWW-Authenticate": "ApiKey-v1"} if status == 401 else None
        return respond(status, exc.message, exc.problems, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Any:
        problems = validation_problems(exc)
        summary = "; ".join(f"{p.pointer or p.parameter}: {p.details}" for p in problems[:5])
        return respond(400, f"Invalid request: {summary}", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Any:
        return respond(exc.status_code, str(exc.detail), [Problem(title=str(exc.detail))], dict(exc.headers or {}))

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(StoreOperationalError)
    async def database_down(_: Request, exc: Exception) -> Any:
        log.warning("database unavailable: %s", exc)
        return respond(503, "The database is unavailable; try again shortly", [Problem(title="Unavailable")],
                       {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Any:
        log.exception("unexpected error", exc_info=exc)
        return respond(500, "Internal error", [Problem(title="Internal error")])
