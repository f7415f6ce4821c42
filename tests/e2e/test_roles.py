"""Who may call what: every route of the OpenAPI document × (no key, each role, a revoked key)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server

PUBLIC = {"/health", "/ready", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
INTEGRATION_PREFIXES = ("/v2/", "/v1/loyalty_programs/", "/api/", "/v1/customer_data/")
AUDITOR_READS = re.compile(r"^/v1/(audit/|applications/|attributes|event_types|projections$|effects/feed)")
"""Reads an auditor may make (read-only history, the events log and read models, the catalog, status)."""


def expected_roles(method: str, path: str) -> set[str]:
    if path.startswith(INTEGRATION_PREFIXES):
        return {"integration"}
    if method == "GET" and AUDITOR_READS.match(path):
        return {"auditor", "management"}
    return {"management"}


def headers_for(path: str, scheme: str, key: str) -> dict[str, str]:
    if path.startswith("/api/"):
        return {"apikey": key}
    return {"Authorization": f"{scheme} {key}"}


@pytest.fixture(scope="module")
def keys(server: Server) -> dict[str, str]:
    manage = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    tag = uuid.uuid4().hex[:6]
    created = {}
    for role in ("auditor", "integration"):
        response = httpx.post(f"{server.url}/v1/keys", json={"name": f"{role}-{tag}", "role": role}, headers=manage)
        assert response.status_code == 201, response.text
        created[role] = response.json()["key"]
    revoked = created.pop("integration")
    assert httpx.delete(f"{server.url}/v1/keys/integration-{tag}", headers=manage).status_code == 204
    listed = httpx.get(f"{server.url}/v1/keys", headers=manage).json()["data"]
    assert all("key" not in k and "keyHash" not in k for k in listed)
    time.sleep(1.2)  # revocation takes effect within a second
    return {"integration": INTEGRATION_KEY, "management": MANAGEMENT_KEY, "auditor": created["auditor"],
            "revoked": revoked}  # fmt: skip


def routes(server: Server) -> list[tuple[str, str]]:
    spec: dict[str, Any] = httpx.get(f"{server.url}/openapi.json").json()
    found = []
    for path, operations in spec["paths"].items():
        for method in operations:
            if path not in PUBLIC:
                found.append((method.upper(), path))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_answers_401_403_or_lets_in_by_role(server: Server, keys: dict[str, str]) -> None:
    table = routes(server)
    assert len(table) > 15
    wrong = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, path in table:
            allowed = expected_roles(method, path)
            url = concrete(path)
            cases: dict[str, tuple[dict[str, str], set[int] | None]] = {
                "none": ({}, {401}),
                "revoked": (headers_for(path, "ApiKey-v1", keys["revoked"]), {401}),
            }
            for role in ("integration", "management", "auditor"):
                scheme = "ApiKey-v1" if role == "integration" else "ManagementKey-v1"
                cases[role] = (headers_for(path, scheme, keys[role]), None if role in allowed else {403})
            for case, (headers, expected) in cases.items():
                status = client.request(method, url, headers=headers, json={}).status_code
                ok = status in expected if expected else status not in (401, 403)
                if not ok or status >= 500:
                    wrong.append(f"{method} {path} with {case}: {status}")
    assert wrong == [], "\n".join(wrong)


def test_keys_never_appear_in_the_server_log(server: Server, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for secret in keys.values():  # known, revoked and wrong-role keys, on a route that logs nothing special
            client.get("/v2/customer_sessions/nope", headers={"Authorization": f"ApiKey-v1 {secret}"})
        client.get("/v2/customer_sessions/nope", headers={"Authorization": "ApiKey-v1 rs_int_made-up-secret-value"})
    log = server.log.read_text(errors="replace")
    leaked = [name for name, secret in keys.items() if secret in log] + (["made-up"] if "made-up-secret" in log else [])
    assert leaked == []


def test_the_openapi_document_names_the_errors_and_keys_of_every_operation(server: Server) -> None:
    """No 422 (the API never answers it); every operation documents Talon.One's ErrorResponse under 400 and 503,
    and every keyed one 401/403 and the key it takes, as the role table above enforces."""
    spec: dict[str, Any] = httpx.get(f"{server.url}/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert set(spec["components"]["securitySchemes"]) == {"integration_key", "management_key", "gameball_key"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for code in ("400", "503", *(() if path in PUBLIC else ("401", "403"))):
                schema = responses[code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, code)
            if path not in PUBLIC:
                (scheme,) = operation["security"][0]
                integration = "integration" in expected_roles(method.upper(), path)
                assert scheme == ("gameball_key" if path.startswith("/api/") else
                                  "integration_key" if integration else "management_key"), (method, path)  # fmt: skip
    assert "204" in spec["paths"]["/v2/events"]["post"]["responses"]
