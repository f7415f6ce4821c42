"""The database: make sure it exists, and describe it to the ``eventsourcing`` library."""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg import sql

from api.settings import Settings


def ensure_database(settings: Settings) -> None:
    """Create the database named in the settings if the server does not have it yet."""
    info: dict[str, Any] = {"connect_timeout": 10, **settings.conninfo}  # the URL's own timeout wins
    try:
        with psycopg.connect(**info):
            return
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise
    admin: dict[str, Any] = {**info, "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (info["dbname"],)).fetchone()
        if not exists:
            # Processes starting together (docker-compose) may race to create it: one does, the rest find it.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(info["dbname"])))


def eventsourcing_env(settings: Settings) -> dict[str, str]:
    """The library's environment for the Postgres recorders (``POSTGRES_ENABLE_DB_FUNCTIONS`` stays off: broken)."""
    info = settings.conninfo
    return {
        # The library's Postgres factory, whose mappers seal personal data under per-profile keys.
        "PERSISTENCE_MODULE": "api.shredding:ShreddingFactory",
        "POSTGRES_DBNAME": info["dbname"],
        "POSTGRES_HOST": info["host"],
        "POSTGRES_PORT": info["port"],
        "POSTGRES_USER": info["user"],
        "POSTGRES_PASSWORD": info.get("password", ""),
        # The library opens ``POOL_SIZE`` connections at once and grows by ``MAX_OVERFLOW`` under load:
        # start small, so idle processes (and test suites) do not hold many connections.
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": str(max(settings.pool_size - 2, 0)),
        "POSTGRES_LOCK_TIMEOUT": "5",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_PRE_PING": "n",  # a round trip per query; broken connections are retried instead
        "SINGLE_ROW_TRACKING": "y",
        "CREATE_TABLE": "y",
        "PROCESS_RECORDER_TOPIC": "api.store:GroupCommitRecorder",
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size),
        # Our own bounded caches, read from the application's environment where they are built.
        "POLICY_CACHE_MAXSIZE": str(settings.policy_cache_size),
        "POLICY_STATE_CACHE_MAXSIZE": str(settings.policy_state_cache_size),
        "PROFILE_KEY_CACHE_MAXSIZE": str(settings.key_cache_size),
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        "SOLE_WRITER": "y" if settings.sole_writer else "n",
    }
