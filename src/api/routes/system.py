"""Liveness, readiness and metrics."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ApplicationDep, SettingsDep
from api.outage import database_reachable
from api.wire.json import FastJSONResponse
from projections.status import observe

log = logging.getLogger("rulestream.metrics")

router = APIRouter(tags=["System"], default_response_class=FastJSONResponse)


@router.get("/health", summary="The process is up")
def health() -> Any:
    return {"status": "ok"}


@router.get("/ready", summary="The database is reachable and the schema current")
def ready(app: ApplicationDep, settings: SettingsDep, request: Request) -> Any:
    """503 as soon as the database cannot be reached: probed on a connection of its own with a short timeout,
    since the pool (and the library's retries) would wait out an outage instead of reporting it."""
    try:
        if not database_reachable(settings.conninfo):
            raise ConnectionError("the database cannot be reached")
        position = app.recorder.max_notification_id()
    except Exception as error:  # noqa: BLE001 - any failure means not ready, and says why
        return FastJSONResponse({"status": "unavailable", "reason": str(error)[:200]}, status_code=503)
    return {"status": "ready", "logPosition": position or 0}


@router.get("/metrics", summary="Prometheus metrics")
def metrics(app: ApplicationDep, settings: SettingsDep) -> Response:
    """This process's metrics, and every follower's checkpoint and lag as the database has them (the followers
    run in other processes). Without the database (probed first: the pool would wait out an outage), the rest."""
    try:
        if database_reachable(settings.conninfo):
            observe(app)
    except Exception:  # noqa: BLE001 - a scrape must not fail with the database
        log.warning("metrics: could not read the followers' checkpoints", exc_info=True)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
