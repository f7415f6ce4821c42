"""FastAPI dependencies as ``Annotated`` aliases: the application service, the caller's key, the settings.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, and a thread hop
per dependency per request cost more than the command itself. None of them blocks (the key cache refreshes from
the database in a worker thread, when it must).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from api.auth import KeyCache
from api.effects import EffectsReader
from api.loyalty import LoyaltyReader
from api.settings import Settings
from domain.application import Rulestream
from domain.keys import ApiKey


async def _application(request: Request) -> Rulestream:
    app: Rulestream = request.app.state.rulestream
    return app


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _effects(request: Request) -> EffectsReader:
    effects: EffectsReader = request.app.state.effects
    return effects


async def _loyalty(request: Request) -> LoyaltyReader:
    loyalty: LoyaltyReader = request.app.state.loyalty
    return loyalty


def _role(*roles: str):  # type: ignore[no-untyped-def]
    async def check(request: Request, authorization: Annotated[str | None, Header()] = None) -> ApiKey:
        keys: KeyCache = request.app.state.keys
        if keys.stale(authorization):
            await run_in_threadpool(keys.refresh)
        key = keys.authenticate(authorization, *roles)
        request.state.key_name = key.name
        return key

    return check


async def correlation_id(request: Request, x_correlation_id: Annotated[str | None, Header()] = None) -> str:
    """The request's correlation id: the client's ``X-Correlation-ID`` if sent, else a new one."""
    cid = (x_correlation_id or "")[:200] or str(uuid.uuid4())
    request.state.correlation_id = cid
    return cid


ApplicationDep = Annotated[Rulestream, Depends(_application)]
EffectsDep = Annotated[EffectsReader, Depends(_effects)]
LoyaltyDep = Annotated[LoyaltyReader, Depends(_loyalty)]
SettingsDep = Annotated[Settings, Depends(_settings)]
IntegrationKey = Annotated[ApiKey, Depends(_role("integration"))]
ManagementKey = Annotated[ApiKey, Depends(_role("management"))]
AuditorKey = Annotated[ApiKey, Depends(_role("auditor", "management"))]
CorrelationId = Annotated[str, Depends(correlation_id)]
