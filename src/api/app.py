"""The FastAPI application: routers per API, one error mapping, the domain application in ``app.state``."""

from __future__ import annotations

from fastapi import FastAPI

from api import errors, gc_tuning, openapi
from api.auth import KeyCache
from api.effects import EffectsReader
from api.idempotency import IdempotencyMiddleware
from api.limits import RequestChecks
from api.loyalty import LoyaltyReader
from api.outage import OutageGuard
from api.routes import (
    audit,
    catalog,
    customer_data,
    gameball,
    integration,
    keys,
    loyalty,
    readmodels,
    rules,
    system,
    webhooks,
)
from api.settings import Settings
from api.wire.json import FastJSONResponse
from domain.application import Rulestream

DESCRIPTION = """Rulestream: an event-sourced promotion and loyalty rules engine.

The Integration API is wire-compatible with Talon.One's Integration API v2 (`talon-one-sdk` drives it unmodified).
Authenticate with `Authorization: ApiKey-v1 <key>` (integration) or `ManagementKey-v1 <key>` (management, auditor).
"""


def create_app(settings: Settings, rulestream: Rulestream) -> FastAPI:
    """Build the HTTP application around an already constructed domain application."""
    app = FastAPI(
        title="Rulestream",
        version="0.1.0",
        description=DESCRIPTION,
        default_response_class=FastJSONResponse,
    )
    app.state.settings = settings
    app.state.rulestream = rulestream
    app.state.keys = KeyCache(rulestream)
    app.state.effects = EffectsReader(rulestream, settings.effects_wait_seconds)
    app.state.loyalty = LoyaltyReader(rulestream)
    errors.install(app)
    app.add_middleware(IdempotencyMiddleware, rulestream=rulestream)
    app.add_middleware(OutageGuard, conninfo=settings.conninfo)  # 503 soon while the database is away
    app.add_middleware(RequestChecks)  # outermost: a body too large or holding NUL is refused before anything
    app.include_router(system.router)
    for module in (
        integration, customer_data, gameball, catalog, rules, loyalty, readmodels, audit, webhooks, keys
    ):
        app.include_router(module.router)
    openapi.install(app)
    return app


def from_environment() -> FastAPI:
    """The app of one of several API worker processes (``rulestream api --workers N``), from the environment."""
    from api.bootstrap import open_application

    settings = Settings()
    app = create_app(settings, open_application(settings))
    gc_tuning.settle()
    return app
