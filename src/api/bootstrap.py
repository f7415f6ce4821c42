"""Bring a database to a usable state: database, schema, and (on first start) a development key pair."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from api.db import ensure_database, eventsourcing_env
from api.settings import Settings
from domain.application import Rulestream
from domain.errors import Conflict
from domain.keys import hash_key
from projections.audit.schema import secure


@dataclass(frozen=True)
class Started:
    rulestream: Rulestream
    new_keys: dict[str, str]
    """Keys created by this start (name → secret), to print once."""


STARTUP_LOCK = (7_000, 1)


@contextlib.contextmanager
def _one_at_a_time(settings: Settings) -> Iterator[None]:
    """Processes starting together (docker-compose: api and workers) create the schema and keys one at a time."""
    info: dict[str, Any] = {"connect_timeout": 10, **settings.conninfo}
    with psycopg.connect(**info, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", STARTUP_LOCK)
        yield


def open_application(settings: Settings) -> Rulestream:
    """The domain application on the configured database, creating the database and tables if missing."""
    settings.export_connection_options()
    ensure_database(settings)
    with _one_at_a_time(settings):
        return secure(Rulestream(env=eventsourcing_env(settings)))  # the audit schema, then the writer role


def start(settings: Settings, *, development_keys: bool = True) -> Started:
    """Open the application; honour seed keys; on an installation without keys, create the development pair
    (``development_keys``: a process that prints them; a worker started beside the API would make them unseen)."""
    app = open_application(settings)
    with _one_at_a_time(settings):
        return Started(app, _keys(app, settings, development_keys))


def _keys(app: Rulestream, settings: Settings, development_keys: bool) -> dict[str, str]:
    new_keys: dict[str, str] = {}
    seeds = {"seed-integration": ("integration", settings.integration_key),
             "seed-management": ("management", settings.management_key)}
    existing = {k.name: k for k in app.keys()}
    for name, (role, secret) in seeds.items():
        if secret and name not in existing:
            app.issue_key(name, role, secret=secret)
        elif secret and existing[name].key_hash != hash_key(secret):
            raise Conflict(f"the seed key '{name}' exists with another secret; revoke it or change the setting")
    if development_keys and not existing and not any(secret for _, secret in seeds.values()):
        for role in ("integration", "management"):
            new_keys[f"dev-{role}"] = app.issue_key(f"dev-{role}", role)
    return new_keys
