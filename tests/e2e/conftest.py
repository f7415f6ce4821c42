from __future__ import annotations

import pytest
import talon_one

from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server


def _client(server: Server, key_name: str, key: str, prefix: str) -> talon_one.ApiClient:
    config = talon_one.Configuration(host=server.url, api_key={key_name: key}, api_key_prefix={key_name: prefix})
    return talon_one.ApiClient(config)


@pytest.fixture(scope="session")
def integration(server: Server) -> talon_one.IntegrationApi:
    return talon_one.IntegrationApi(_client(server, "api_key_v1", INTEGRATION_KEY, "ApiKey-v1"))


@pytest.fixture(scope="session")
def management(server: Server) -> talon_one.ManagementApi:
    return talon_one.ManagementApi(_client(server, "management_key", MANAGEMENT_KEY, "ManagementKey-v1"))
