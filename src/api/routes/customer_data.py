"""The right to be forgotten: Talon.One's ``DELETE /v1/customer_data/{integrationId}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import ApplicationDep, CorrelationId, IntegrationKey
from api.limits import SLASHES
from api.shredding import erase_keys
from domain.base import recording

router = APIRouter(tags=["Integration API"])

ProfileId = Annotated[str, Path(alias="integrationId", min_length=1, max_length=1000), SLASHES]


@router.delete("/v1/customer_data/{integrationId}", status_code=204, response_class=Response)
def delete_customer_data(
    integration_id: ProfileId, app: ApplicationDep, key: IntegrationKey, correlation: CorrelationId
) -> Response:
    """Forget a customer's personal data (crypto-shredding): their data keys are destroyed, so the profile's
    attributes and the attributes of their custom events read as `{"erased": true}` everywhere, and read
    models drop them. The history itself stays, countable and verifiable: sessions, sales and effects remain.

    Idempotent: erasing again answers 204. An unknown profile answers 404.
    """
    with recording(correlationId=correlation, keyName=key.name):
        app.erase_profile(integration_id)
    # After the event: every key that sealed anything recorded before the erasure is destroyed, even one a
    # concurrent write created meanwhile. A crash in between is repaired by erasing again.
    erase_keys(app, integration_id)
    return Response(status_code=204)
