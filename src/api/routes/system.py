"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ApplicationDep
from api.wire.json import FastJSONResponse

router = APIRouter(tags=["System"], default_response_class=FastJSONResponse)


@router.get("/health", summary="The process is up")
def health() -> Any:
    return {"status": "ok"}


@router.get("/ready", summary="The database is reachable and the schema current")
def ready(app: ApplicationDep, request: Request) -> Any:
    try:
        position = app.recorder.max_notification_id()
    except Exception as error:  # noqa: BLE001 - any failure means not ready, and says why
        return FastJSONResponse({"status": "unavailable", "reason": str(error)[:200]}, status_code=503)
    return {"status": "ready", "logPosition": position or 0}


@router.get("/metrics", summary="Prometheus metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
