"""Settings, read once from the environment (and a ``.env`` file), passed down from there."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode

import psycopg
from platformdirs import user_data_dir
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BASIC_PARAMETERS = frozenset({"dbname", "host", "port", "user", "password"})
SECRET_PARAMETERS = frozenset({"sslpassword"})
"""Parameters a URL printed without its password leaves out too."""
LIBPQ_VARIABLES = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL", "sslcompression": "PGSSLCOMPRESSION", "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION", "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING", "requirepeer": "PGREQUIREPEER", "application_name": "PGAPPNAME",
    "options": "PGOPTIONS", "target_session_attrs": "PGTARGETSESSIONATTRS", "connect_timeout": "PGCONNECT_TIMEOUT",
    "krbsrvname": "PGKRBSRVNAME", "service": "PGSERVICE", "passfile": "PGPASSFILE", "hostaddr": "PGHOSTADDR",
}  # fmt: skip
"""libpq's environment variable for each connection parameter a ``DATABASE_URL`` may carry besides the basic five."""

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "password", "dev", "development", "test"}


class Settings(BaseSettings):
    """Rulestream's configuration. Every field is an environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, description="postgresql://user:pass@host:port/dbname")
    """Neither this nor ``POSTGRES_HOST`` set: Rulestream runs on an embedded PostgreSQL (api.embedded)."""
    postgres_host: str | None = None
    postgres_port: int | None = None
    postgres_user: str | None = None
    postgres_password: str | None = None
    postgres_db: str | None = None

    environment: Literal["development", "production"] = Field(
        default="development", validation_alias="RULESTREAM_ENV"
    )
    host: str = Field(default="127.0.0.1", validation_alias="RULESTREAM_HOST")
    port: int = Field(default=8000, ge=0, le=65535, validation_alias="RULESTREAM_PORT")
    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("rulestream")), validation_alias="RULESTREAM_DATA_DIR"
    )
    effects_wait_seconds: float = Field(default=2.0, validation_alias="RULESTREAM_EFFECTS_WAIT")
    pool_size: int = Field(default=16, ge=2, validation_alias="RULESTREAM_POOL_SIZE")
    aggregate_cache_size: int = Field(default=10_000, ge=1, validation_alias="RULESTREAM_AGGREGATE_CACHE")
    """Aggregates the application keeps in memory (an LRU; queries bring a cached one up to date first)."""
    sole_writer: bool = Field(default=True, validation_alias="RULESTREAM_SOLE_WRITER")
    """This process is the only one writing sessions and profiles (one API process): commands may trust its cache
    of them without asking the database for newer events. ``rulestream api --workers N`` turns it off."""
    policy_cache_size: int = Field(default=20_000, ge=1, validation_alias="RULESTREAM_POLICY_CACHE")
    """Sessions and profiles the rule policy keeps as of the last event it read of each (an LRU)."""
    policy_state_cache_size: int = Field(default=200_000, ge=1, validation_alias="RULESTREAM_POLICY_STATE_CACHE")
    """Loyalty balances and session ledgers the rule policy keeps between batches (each map emptied when full)."""
    key_cache_size: int = Field(default=100_000, ge=1, validation_alias="RULESTREAM_KEY_CACHE")
    """Profiles' data keys a process keeps (each for ``api.shredding.KEY_TTL`` s; emptied when full)."""
    integration_key: str | None = Field(default=None, validation_alias="RULESTREAM_INTEGRATION_KEY")
    management_key: str | None = Field(default=None, validation_alias="RULESTREAM_MANAGEMENT_KEY")
    """Seed keys: when set, keys named ``seed-integration`` / ``seed-management`` with these secrets exist."""

    @field_validator("integration_key", "management_key", "database_url", "postgres_host", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _a_connection_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                conninfo_to_dict(value.replace("postgresql+psycopg://", "postgresql://", 1))
            except psycopg.ProgrammingError as error:  # libpq's own words: "missing "=" after ..."
                raise ValueError(f"not a PostgreSQL connection URL: {error}") from None
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            for name in ("integration_key", "management_key"):
                value = getattr(self, name)
                if value is not None and (value.lower() in PLACEHOLDER_SECRETS or len(value) < 24):
                    raise ValueError(f"RULESTREAM_{name.upper()} is a placeholder; set a real secret in production")
        return self

    @property
    def has_database(self) -> bool:
        """Whether an external server is configured; if not, the data directory holds an embedded one."""
        return bool(self.database_url or self.postgres_host)

    @property
    def conninfo(self) -> dict[str, str]:
        """The connection parameters of the database, from ``DATABASE_URL`` or the ``POSTGRES_*`` variables."""
        if self.database_url:
            url = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
            info = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        else:
            info = {
                k: str(v)
                for k, v in {
                    "host": self.postgres_host,
                    "port": self.postgres_port,
                    "user": self.postgres_user,
                    "password": self.postgres_password,
                    "dbname": self.postgres_db,
                }.items()
                if v is not None
            }
        info.setdefault("dbname", "rulestream")
        info.setdefault("host", "127.0.0.1")
        info.setdefault("port", "5432")
        info.setdefault("user", "postgres")
        return info

    @property
    def connection_options(self) -> dict[str, str]:
        """The ``DATABASE_URL``'s libpq parameters beyond where and who (``sslmode``, ``application_name``, ...)."""
        return {k: v for k, v in self.conninfo.items() if k not in BASIC_PARAMETERS}

    def export_connection_options(self) -> None:
        """Make every connection of this process (and its children) take the URL's libpq parameters, through
        libpq's own environment variables (``PGSSLMODE``, ...): the library's pools connect with the five basic
        parameters only. The URL wins over a variable already set (it is the explicit setting: a stray
        ``PGSSLMODE=prefer`` must not weaken its ``sslmode=verify-full``); a parameter without a variable reaches
        the first connections only, and says so."""
        for name, value in self.connection_options.items():
            variable = LIBPQ_VARIABLES.get(name)
            if variable is None:
                logging.getLogger("rulestream").warning("DATABASE_URL: '%s' reaches no pooled connection", name)
            else:
                os.environ[variable] = value

    def url(self, *, password: bool = True) -> str:
        """The database as a ``postgresql://`` URL for psql and other tools (a socket folder in ?host=), with the
        ``DATABASE_URL``'s other parameters."""
        info = self.conninfo
        auth = quote(info["user"], safe="")
        if password and info.get("password"):
            auth += ":" + quote(info["password"], safe="")
        dbname = quote(info["dbname"], safe="")
        options = {k: v for k, v in self.connection_options.items() if password or k not in SECRET_PARAMETERS}
        if info["host"].startswith("/"):
            query = urlencode({"host": info["host"], "port": info["port"], **options}, safe="/", quote_via=quote)
            return f"postgresql://{auth}@/{dbname}?{query}"
        query = urlencode(options, safe="/", quote_via=quote)
        return f"postgresql://{auth}@{info['host']}:{info['port']}/{dbname}" + (f"?{query}" if query else "")
