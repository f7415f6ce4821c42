from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.db import eventsourcing_env
from api.settings import Settings
from domain.application import Rulestream
from tests.conftest import drop_database, fresh_database


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def rulestream(settings: Settings) -> Iterator[Rulestream]:
    app = Rulestream(env=eventsourcing_env(settings))
    yield app
    app.close()


@pytest.fixture
def own_rulestream(request: pytest.FixtureRequest) -> Iterator[Rulestream]:
    """An application on a database of its own: for tests that need one without tables yet, or that write
    events other tests, which read the whole shared log, could not decode."""
    url = fresh_database(f"rulestream_{request.node.name[:40]}")
    app = Rulestream(env=eventsourcing_env(Settings(database_url=url)))
    yield app
    app.close()
    drop_database(url)
