"""API keys, managed over HTTP by a management key (the CLI does the same: ``rulestream keys ...``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ApplicationDep, CorrelationId, ManagementKey
from api.wire.json import FastJSONResponse
from domain.base import recording
from domain.keys import ApiKey

router = APIRouter(tags=["Keys"], default_response_class=FastJSONResponse)


class NewKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    role: Literal["integration", "management", "auditor"]


def key_json(key: ApiKey) -> dict[str, Any]:
    return {"name": key.name, "role": key.role, "created": key.created, "revoked": key.revoked,
            "active": key.active}  # fmt: skip


@router.post("/v1/keys", status_code=201, summary="Create an API key")
def create_key(body: NewKeyRequest, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId) -> Any:
    """Create a key; the answer holds the secret, the only time it is shown (only its hash is stored)."""
    with recording(correlationId=correlation_id, keyName=key.name):
        secret = app.issue_key(body.name, body.role)
    created = next(k for k in app.keys() if k.name == body.name)
    return FastJSONResponse({**key_json(created), "key": secret}, status_code=201)


@router.get("/v1/keys", summary="List API keys")
def list_keys(app: ApplicationDep, _: ManagementKey) -> Any:
    """Every key ever issued, without secrets."""
    keys = app.keys()
    return FastJSONResponse({"totalResultSize": len(keys), "data": [key_json(k) for k in keys]})


@router.delete(
    "/v1/keys/{name}", status_code=204, response_class=Response, response_model=None, summary="Revoke an API key"
)
def revoke_key(
    name: Annotated[str, Path(min_length=1, max_length=100)],
    app: ApplicationDep,
    key: ManagementKey,
    correlation_id: CorrelationId,
) -> Response:
    """The key stops working within a second; its history stays."""
    with recording(correlationId=correlation_id, keyName=key.name):
        app.revoke_key(name)
    return Response(status_code=204)
