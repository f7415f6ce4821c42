"""The OpenAPI document as the API answers: Talon.One's errors, not FastAPI's 422, and how to authenticate.

FastAPI documents a 422 ``HTTPValidationError`` for every operation with parameters or a body, and no other error.
This API never answers 422 (a body or parameter that does not validate is Talon.One's 400) and answers every error
as an ``ErrorResponse``; so the document drops the 422 and names, for each operation, the errors it may answer:
400 (bad input), 401 / 403 (no or unknown key / a key of another role), 404 (an id in the path that does not
exist), 409 (a state conflict, or an ``Idempotency-Key`` reused with another body: writes), 413 (a body over the
limit) and 503 (the database is away). Clients generated from it, tools that check answers against it
(schemathesis), and ``/docs`` (which gains an "Authorize" button) read what really happens.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PUBLIC = frozenset({"/health", "/ready", "/metrics"})
"""Operations without a key."""

INTEGRATION = ("/v2/", "/api/", "/v1/customer_data/", "/v1/loyalty_programs/")
"""Paths of the Integration API and the Gameball ingest (an integration key); every other one takes a management
(or, to read, an auditor) key."""

ERROR_RESPONSE = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["message", "errors"],
    "properties": {
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["title", "details", "source"],
                "properties": {
                    "title": {"type": "string"},
                    "details": {"type": "string"},
                    "source": {
                        "type": "object",
                        "properties": {"pointer": {"type": "string"}, "parameter": {"type": "string"}},
                    },
                },
            },
        },
        "StatusCode": {"type": "integer"},
    },
}

SECURITY_SCHEMES = {
    "integration_key": {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "`ApiKey-v1 <key>` (or `Bearer <key>`): a key of role `integration`.",
    },
    "management_key": {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "`ManagementKey-v1 <key>` (or `Bearer <key>`): role `management`, or `auditor` to read.",
    },
    "gameball_key": {
        "type": "apiKey", "in": "header", "name": "apikey",
        "description": "Gameball's header: an `integration` key.",
    },
}  # fmt: skip

ERRORS = {
    "400": "Bad input: each error's `source` points at the field or names the parameter",
    "401": "No key, or an unknown or revoked one",
    "403": "A key of a role this operation does not take",
    "404": "Not found",
    "409": "A state conflict, or an `Idempotency-Key` reused with another body",
    "413": "The body is larger than the limit",
    "503": "The database cannot be reached; try again",
}

WRITES = frozenset({"post", "put", "patch", "delete"})


def install(app: FastAPI) -> None:
    """Serve the corrected document at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = corrected(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def corrected(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ErrorResponse"] = ERROR_RESPONSE
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in ("parameters", "summary", "description", "servers"):
                continue
            _document(path, method, operation)
    return schema


def _document(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    codes = ["400", "503"]
    if path not in PUBLIC:
        codes += ["401", "403"]
        operation["security"] = [{_scheme(path): []}]
    if "{" in path or path.startswith("/v1/applications/"):
        codes.append("404")
    if method in WRITES:
        codes += ["409", "413"]
    reference = {"$ref": "#/components/schemas/ErrorResponse"}
    for code in sorted(codes):
        content = {"application/json": {"schema": reference}}
        responses.setdefault(code, {"description": ERRORS[code], "content": content})


def _scheme(path: str) -> str:
    if path.startswith("/api/"):
        return "gameball_key"
    return "integration_key" if path.startswith(INTEGRATION) else "management_key"
