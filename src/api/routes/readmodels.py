"""Read models over HTTP: the events log, sessions, customers and their loyalty ledger, effects, and the
projections' status and rebuild (Management API subset of Talon.One, API.md §3 and §5).

Every read waits, bounded, until the read model has applied what the log held when the read arrived (so a
client reads its own writes, and everyone else's that had answered), or the position of
``Rulestream-Min-Position: <log position>`` (e.g. one a write answered with; ``0``: no wait); it answers with
``Rulestream-Checkpoint`` and, if the wait timed out, ``Rulestream-Stale: true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse

from api.deps import ApplicationDep, AuditorKey, EffectsDep, ManagementKey
from api.effects import EffectsReader
from api.errors import respond
from api.limits import MAX_INT, SLASHES
from api.wire import readmodels as wire
from api.wire.json import FastJSONResponse
from api.wire.talon import APPLICATION_ID
from domain.application import Rulestream
from domain.errors import NotFound, Problem
from projections import queries, status
from projections.rebuild import Rebuild

router = APIRouter(default_response_class=FastJSONResponse)

ApplicationId = Annotated[int, Path(alias="applicationId", description="Always 1: the built-in Application.")]
MinPosition = Annotated[
    int | None,
    Header(
        alias="Rulestream-Min-Position",
        ge=0,
        le=MAX_INT,
        description="Wait until the read model has applied this position (default: the log head as of the read).",
    ),
]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=queries.MAX_PAGE)]
Skip = Annotated[int, Query(ge=0, le=MAX_INT)]
Time = Annotated[str | None, Query(description="RFC 3339 time")]


def _missing(message: str, headers: dict[str, str] | None) -> Any:
    """A read model's 404, with its ``Rulestream-Checkpoint`` (and ``Rulestream-Stale``) like any of its answers:
    a client tells "not there yet" from "not there"."""
    return respond(404, message, [Problem(title="Not found", details=message)], headers)


def _application(application_id: int) -> None:
    if application_id != APPLICATION_ID:
        raise NotFound(f"no application {application_id} (Rulestream has one, with id {APPLICATION_ID})")


EVALUATED = frozenset({"events_log", "effects", "loyalty"})
"""Read models that show the rule policy's evaluations: a read of them waits for the policy too (sessions and
profiles do not: a stopped policy would slow every read of them for nothing)."""


def _read(
    app: Rulestream, effects: EffectsReader, application_id: int, names: Sequence[str], min_position: int | None
) -> dict[str, str]:
    """Check the application, make the models exist, wait for ``min_position`` (none: the log head as of now and
    the rule policy's evaluations of it); answer the headers to send."""
    _application(application_id)
    status.ensure(app)
    timeout = status.IMPLICIT_WAIT_SECONDS if min_position is None else status.DEFAULT_WAIT_SECONDS
    settle = effects.settled if EVALUATED.intersection(names) else None
    reached, target = status.wait_for_position(app, list(names), min_position, timeout, settle)
    headers = {"Rulestream-Checkpoint": str(reached)}
    if reached < target:
        headers["Rulestream-Stale"] = "true"
    return headers


@router.get(
    "/v1/applications/{applicationId}/events/no_total",
    tags=["Events log"],
    summary="List the Application's events, with their effects",
)
def list_events(
    app: ApplicationDep, effects: EffectsDep,
    _: AuditorKey,
    application_id: ApplicationId,
    page_size: PageSize = 1000,
    skip: Skip = 0,
    sort: Annotated[str | None, Query(description="`created` (default) or `-created`")] = None,
    type: Annotated[str | None, Query(description="Comma-separated event types, exact")] = None,  # noqa: A002
    created_before: Annotated[str | None, Query(alias="createdBefore")] = None,
    created_after: Annotated[str | None, Query(alias="createdAfter")] = None,
    session: Annotated[str | None, Query(description="Session integration id, exact")] = None,
    profile: Annotated[str | None, Query(description="Profile integration id, exact")] = None,
    effect_type: Annotated[str | None, Query(alias="effectType")] = None,
    attributes_query: Annotated[
        str | None, Query(alias="attributesQuery", description="JSON object the event's attributes contain")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_INT, description="Cursor: events after this log position, in log order")
    ] = None,
    min_position: MinPosition = None,
) -> Any:
    """Talon.One's events log (``ManagementApi.get_application_events_without_total_count``).

    Ordered by ``created`` (ties by position); with the ``after`` cursor, by log position instead
    (``-created`` pages backwards from ``after``), which pages deep without offset scans. Every filter is
    served by an index.
    """
    headers = _read(app, effects, application_id, ["events_log"], min_position)
    f = queries.EventFilter(
        types=[t.strip() for t in type.split(",") if t.strip()] if type else (),
        created_before=wire.parse_time(created_before, "createdBefore"),
        created_after=wire.parse_time(created_after, "createdAfter"),
        session=session,
        profile=profile,
        effect_type=effect_type,
        attributes=wire.parse_json_object(attributes_query, "attributesQuery"),
        after=after,
        descending=wire.parse_sort(sort),
    )
    rows, more = queries.events(app, f, page_size, skip)
    return FastJSONResponse(
        {"hasMore": more, "data": [wire.application_event(r) for r in rows]}, headers=headers
    )


@router.get(
    "/v1/applications/{applicationId}/events/{eventId}/effects",
    tags=["Events log"],
    summary="The effects one event caused",
)
def event_effects(
    app: ApplicationDep, effects: EffectsDep, _: AuditorKey, application_id: ApplicationId,
    event_id: Annotated[int, Path(alias="eventId", description="The event's id (its log position)")],
    min_position: MinPosition = None,
) -> Any:  # fmt: skip
    headers = _read(app, effects, application_id, ["effects"], min_position)
    rows = queries.effects_of(app, event_id)
    data = [wire.effect({"campaignId": r["campaign_id"], "rulesetId": r["ruleset_id"],
                         "ruleIndex": r["rule_index"],
                         "ruleName": r["rule_name"], "effectType": r["effect_type"], "props": r["props"]})
            for r in rows]  # fmt: skip
    return FastJSONResponse({"totalResultSize": len(data), "data": data}, headers=headers)


@router.get(
    "/v1/applications/{applicationId}/sessions",
    tags=["Customer data"],
    summary="List the Application's customer sessions",
)
def list_sessions(
    app: ApplicationDep, effects: EffectsDep,
    _: AuditorKey,
    application_id: ApplicationId,
    page_size: PageSize = 1000,
    skip: Skip = 0,
    sort: Annotated[str | None, Query(description="`created` (default) or `-created`")] = None,
    profile: Annotated[str | None, Query(description="Profile integration id, exact")] = None,
    state: Annotated[str | None, Query(description="open, closed, partially_returned or cancelled")] = None,
    created_before: Annotated[str | None, Query(alias="createdBefore")] = None,
    created_after: Annotated[str | None, Query(alias="createdAfter")] = None,
    coupon: str | None = None,
    referral: str | None = None,
    integration_id: Annotated[str | None, Query(alias="integrationId")] = None,
    store_integration_id: Annotated[str | None, Query(alias="storeIntegrationId")] = None,
    min_position: MinPosition = None,
) -> Any:
    """Talon.One's session listing (``ManagementApi.get_application_sessions``), from the sessions model."""
    headers = _read(app, effects, application_id, ["sessions"], min_position)
    f = queries.SessionFilter(
        profile=profile, state=state, coupon=coupon, referral=referral, integration_id=integration_id,
        store=store_integration_id, created_before=wire.parse_time(created_before, "createdBefore"),
        created_after=wire.parse_time(created_after, "createdAfter"), descending=wire.parse_sort(sort),
    )  # fmt: skip
    rows, more = queries.sessions(app, f, page_size, skip)
    return FastJSONResponse(
        {"hasMore": more, "data": [wire.application_session(r) for r in rows]}, headers=headers
    )


@router.get(
    "/v1/applications/{applicationId}/sessions/{sessionId}",
    tags=["Customer data"],
    summary="One customer session",
)
def get_session(
    app: ApplicationDep, effects: EffectsDep, _: AuditorKey, application_id: ApplicationId,
    session_id: Annotated[str, Path(alias="sessionId", description="Internal id, or the integration id"), SLASHES],
    min_position: MinPosition = None,
) -> Any:  # fmt: skip
    """``ApplicationSession`` by internal id (``ManagementApi.get_application_session``) or integration id."""
    headers = _read(app, effects, application_id, ["sessions"], min_position)
    row = queries.session(app, session_id)
    if row is None:
        return _missing(f"no customer session '{session_id}'", headers)
    return FastJSONResponse(wire.application_session(row), headers=headers)


@router.get(
    "/v1/applications/{applicationId}/customers/{customerId}",
    tags=["Customer data"],
    summary="One customer profile, with its loyalty balance",
)
def get_customer(
    app: ApplicationDep, effects: EffectsDep, _: AuditorKey, application_id: ApplicationId,
    customer_id: Annotated[str, Path(alias="customerId", description="Internal id, or the integration id"), SLASHES],
    min_position: MinPosition = None,
) -> Any:  # fmt: skip
    """``ApplicationCustomer``: attributes, ``closedSessions``, ``totalSales``, ``lastActivity``, loyalty."""
    headers = _read(app, effects, application_id, ["profiles", "loyalty"], min_position)
    row = queries.profile(app, customer_id)
    if row is None:
        return _missing(f"no customer profile '{customer_id}'", headers)
    return FastJSONResponse(wire.application_customer(row), headers=headers)


@router.get(
    "/v1/applications/{applicationId}/customers/{customerId}/ledger",
    tags=["Customer data"],
    summary="A customer's loyalty ledger",
)
def get_ledger(
    app: ApplicationDep, effects: EffectsDep, _: AuditorKey, application_id: ApplicationId,
    customer_id: Annotated[str, Path(alias="customerId", description="The profile's integration id"), SLASHES],
    page_size: PageSize = 1000,
    after: Annotated[int | None, Query(ge=0, le=MAX_INT, description="Cursor: entries after this position")] = None,
    min_position: MinPosition = None,
) -> Any:  # fmt: skip
    """Every points entry of the profile in log order, with the balance the entries add up to."""
    headers = _read(app, effects, application_id, ["profiles", "loyalty"], min_position)
    row = queries.profile(app, customer_id)
    if row is None:
        return _missing(f"no customer profile '{customer_id}'", headers)
    rows, more = queries.ledger(app, row["integration_id"], page_size, after)
    return FastJSONResponse(
        {"balance": row["balance"] or 0, "hasMore": more, "next": rows[-1]["position"] if rows else after,
         "data": [wire.ledger_entry(r) for r in rows]},
        headers=headers,
    )  # fmt: skip


@router.get(
    "/v1/applications/{applicationId}/export_effects",
    tags=["Events log"],
    summary="Export the triggered effects as CSV",
)
def export_effects(
    app: ApplicationDep, effects: EffectsDep, _: AuditorKey, application_id: ApplicationId,
    campaign_id: Annotated[int | None, Query(alias="campaignId")] = None,
    created_before: Annotated[str | None, Query(alias="createdBefore")] = None,
    created_after: Annotated[str | None, Query(alias="createdAfter")] = None,
    date_format: Annotated[str, Query(alias="dateFormat", pattern="^(excel|ISO8601)$")] = "ISO8601",
    min_position: MinPosition = None,
) -> Any:  # fmt: skip
    """Talon.One's effects export (``ManagementApi.export_effects``), streamed in log order."""
    headers = _read(app, effects, application_id, ["effects", "sessions"], min_position)
    rows = queries.effects_export(
        app,
        campaign_id,
        wire.parse_time(created_before, "createdBefore"),
        wire.parse_time(created_after, "createdAfter"),
    )
    headers["Content-Disposition"] = 'attachment; filename="effects.csv"'
    return StreamingResponse(wire.effects_csv(rows, date_format), media_type="text/csv", headers=headers)


@router.get("/v1/projections", tags=["Projections"], summary="Each read model's checkpoint, lag and state")
def list_projections(app: ApplicationDep, _: AuditorKey) -> Any:
    """Per read model: ``checkpoint`` (log position applied), ``head`` (last position recorded),
    ``lagEvents``,
    ``lagSeconds`` (age of the oldest event not applied), ``state`` (``live``, ``rebuilding``, ``failed`` with
    ``error``), and the progress of a running rebuild."""
    return FastJSONResponse({"data": status.status(app)})


@router.post(
    "/v1/projections/{name}/rebuild",
    tags=["Projections"],
    status_code=202,
    summary="Rebuild a read model from the log while the current one keeps serving",
)
def rebuild_projection(app: ApplicationDep, _: ManagementKey, name: str) -> Any:
    """Starts the rebuild in the background and answers 202; ``GET /v1/projections`` shows its progress.
    Readers
    switch to the new copy atomically once it has caught up. 409 if a rebuild of this model is running."""
    status.ensure(app)
    Rebuild(app, name).in_background()
    return FastJSONResponse({"name": name, "state": "rebuilding"}, status_code=202)
