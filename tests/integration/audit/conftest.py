"""The audit tests run on a database of their own: some of them alter stored rows as a superuser."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from api.bootstrap import open_application
from api.settings import Settings
from domain.application import Rulestream
from tests.conftest import drop_database, fresh_database


@pytest.fixture(scope="module")
def audit_url() -> Iterator[str]:
    url = fresh_database("rulestream_audit")
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def audit_settings(audit_url: str) -> Settings:
    return Settings(database_url=audit_url, pool_size=4)


@pytest.fixture(scope="module")
def app(audit_settings: Settings) -> Iterator[Rulestream]:
    """The application as the server opens it: audit schema installed, writing as ``rulestream_writer``."""
    opened = open_application(audit_settings)
    yield opened
    opened.close()


@pytest.fixture
def superuser(audit_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A direct connection as the configured (super)user, outside the server's pool and its role."""
    with psycopg.connect(audit_url, autocommit=True) as conn:
        yield conn
