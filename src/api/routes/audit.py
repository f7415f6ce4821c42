"""The audit API (API.md §5): histories, state as of a moment, the global feed and the integrity check.

Read straight from the event table by its indexes, never from a read model: what is shown is what is stored.
Keys of role ``auditor`` or ``management`` only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query

from api.deps import ApplicationDep, AuditorKey
from api.limits import MAX_INT, SLASHES
from api.wire import talon
from api.wire.json import FastJSONResponse
from domain.application import profile_id, session_id
from domain.errors import InvalidInput, NotFound
from domain.session import CustomerSession
from projections.audit import chain
from projections.audit.asof import history_of
from projections.audit.log import MAX_LIMIT, AuditLog

router = APIRouter(prefix="/v1/audit", tags=["Audit"], default_response_class=FastJSONResponse)

After = Annotated[
    int, Query(ge=0, le=MAX_INT, description="Only what comes after this (a version, or a feed position).")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many events.")]


@contextlib.contextmanager
def _named(stream: UUID, name: str) -> Iterator[None]:
    """A stream's 404 names what the client asked for, not the stream's internal id."""
    try:
        yield
    except NotFound as missing:
        raise NotFound(str(missing).replace(f"stream {stream}", name)) from None


@router.get("/sessions/{integrationId}/history", summary="History of a customer session")
def session_history(
    integration_id: Annotated[str, Path(alias="integrationId", min_length=1, max_length=1000), SLASHES],
    app: ApplicationDep,
    _: AuditorKey,
    after: After = 0,
    limit: Limit = 100,
) -> Any:
    """Every stored event of the session in order, with the effects each caused (rule id and version).

    Paged by version: pass the answer's ``next`` as ``after`` while ``hasMore`` is true.
    """
    with _named(session_id(integration_id), f"session '{integration_id}'"):
        return FastJSONResponse(AuditLog(app).history(session_id(integration_id), after, limit).to_json())


@router.get("/profiles/{integrationId}/history", summary="History of a customer profile")
def profile_history(
    integration_id: Annotated[str, Path(alias="integrationId", min_length=1, max_length=1000), SLASHES],
    app: ApplicationDep,
    _: AuditorKey,
    after: After = 0,
    limit: Limit = 100,
) -> Any:
    """Every stored event of the profile in order, with the effects each caused, and among them the delayed
    rule evaluations its events scheduled (``rulestream_delay_scheduled``, ``rulestream_delay_came_due``, with
    their ``causationId`` and effects). Paged like session histories, by the profile's versions."""
    with _named(profile_id(integration_id), f"profile '{integration_id}'"):
        return FastJSONResponse(AuditLog(app).profile_history(integration_id, after, limit).to_json())


@router.get("/sessions/{integrationId}/state", summary="A customer session as it was")
def session_state(
    integration_id: Annotated[str, Path(alias="integrationId", min_length=1, max_length=1000), SLASHES],
    app: ApplicationDep,
    _: AuditorKey,
    at: Annotated[
        datetime | None, Query(description="A moment (ISO 8601; UTC when no offset is given).")
    ] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT, description="A version of the session's stream.")] = None,
) -> Any:
    """The session exactly as it was at ``at`` or right after its event ``version``, rebuilt from the log.

    Same shape as the Integration API's ``customerSession``; ``version`` tells which version that is.
    """
    if (at is None) == (version is None):
        raise InvalidInput("give exactly one of 'at' and 'version'")
    history = history_of(app)
    stream = session_id(integration_id)
    with _named(stream, f"session '{integration_id}'"):
        wanted = version if version is not None else history.version_at(stream, at)  # type: ignore[arg-type]
        rebuilt = history.at_version(stream, wanted)
    if not isinstance(rebuilt.aggregate, CustomerSession):
        raise InvalidInput(f"'{integration_id}' does not name a customer session")
    return FastJSONResponse({"version": wanted, "customerSession": talon.customer_session(rebuilt.aggregate)})


@router.get("/feed", summary="The global log")
def feed(app: ApplicationDep, _: AuditorKey, after: After = 0, limit: Limit = 100) -> Any:
    """Every event of every stream in log order. Pass ``next`` as ``after`` to continue; positions only grow,
    and
    an event committed late never appears behind a position already handed out (writers commit in order)."""
    return FastJSONResponse(AuditLog(app).feed(after, limit).to_json())


@router.get("/verify", summary="Check the integrity of the log")
def verify(app: ApplicationDep, _: AuditorKey) -> Any:
    """Recompute the hash chain of every stream; ``broken`` names the first broken link of each broken
    stream."""
    return FastJSONResponse(chain.verify(app).to_json())
