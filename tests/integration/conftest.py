from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.db import eventsourcing_env
from api.settings import Settings
from domain.application import Rulestream


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def rulestream(settings: Settings) -> Iterator[Rulestream]:
    app = Rulestream(env=eventsourcing_env(settings))
    yield app
    app.close()
