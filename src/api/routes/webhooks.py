"""Webhooks and the pull feed of effects: how effects that no HTTP response carries reach other systems.

Receivers are registered here (management keys); ``projections.deliveries`` POSTs them the effects, signed, at
least once and in order per profile. ``GET /v1/effects/feed`` lets a consumer pull every effect instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from starlette.responses import Response

from api.deps import ApplicationDep, AuditorKey, CorrelationId, ManagementKey
from api.limits import MAX_INT
from api.wire.json import FastJSONResponse
from domain.base import recording
from domain.errors import NotFound
from domain.webhooks import Webhook, WebhookBook
from projections.deliveries import deliveries_count, deliveries_of
from projections.feed import effects_after
from projections.webhook_secrets import WebhookSecrets

router = APIRouter(tags=["Webhooks"], default_response_class=FastJSONResponse)

WebhookId = Annotated[int, Path(alias="id", ge=1, le=2**31 - 1)]
DeliveryId = Annotated[int, Path(alias="deliveryId", ge=1, le=2**62)]


class WebhookRequest(BaseModel):
    """A receiver of effects."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: AnyHttpUrl
    effect_types: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, alias="effectTypes")
    """Effect types to receive; absent or empty: every effect (``triggerWebhook`` effects go to the one named)."""
    secret: str = Field(min_length=16, max_length=500)
    """The key of the HMAC-SHA256 signature of every delivery."""
    name: str | None = Field(default=None, min_length=1, max_length=200)
    """What ``triggerWebhook`` effects may call the webhook by (its id works too)."""


def webhook_json(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.webhook_id,
        "url": webhook.url,
        "effectTypes": webhook.effect_types,
        "name": webhook.name,
        "created": webhook.created_on,
        "author": webhook.author,
    }


@router.post("/v1/webhooks", status_code=201, summary="Register a webhook")
def register_webhook(
    body: WebhookRequest, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId
) -> Any:
    """Register a receiver of effects recorded from now on. The secret is never shown again."""
    with recording(correlationId=correlation_id, keyName=key.name):
        webhook = WebhookBook(app, WebhookSecrets(app)).register(
            str(body.url), body.effect_types, body.secret, body.name, key.name
        )
    return FastJSONResponse(webhook_json(webhook), status_code=201)


@router.get("/v1/webhooks", summary="List webhooks")
def list_webhooks(app: ApplicationDep, _: ManagementKey) -> Any:
    webhooks = WebhookBook(app).all()
    return FastJSONResponse({"totalResultSize": len(webhooks), "data": [webhook_json(w) for w in webhooks]})


@router.delete("/v1/webhooks/{id}", status_code=204, response_class=Response, summary="Remove a webhook")
def remove_webhook(
    webhook_id: WebhookId, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId
) -> Response:
    """Stop delivering to the webhook; its pending deliveries are cancelled and its secret is destroyed."""
    with recording(correlationId=correlation_id, keyName=key.name):
        WebhookBook(app, WebhookSecrets(app)).remove(webhook_id, key.name)
    return Response(status_code=204)


@router.get("/v1/webhooks/{id}/deliveries", summary="Deliveries to a webhook")
def list_deliveries(
    webhook_id: WebhookId, app: ApplicationDep, _: ManagementKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=MAX_INT, description="Only deliveries older than this id: "
                                        "the last id of a page, for the next page")] = None,
) -> Any:  # fmt: skip
    """Each delivery, newest first: the effect and its cause, status (``pending``, ``delivered``, ``dead``,
    ``cancelled``), attempts, last HTTP status or error, next try, and every attempt. ``totalResultSize`` counts
    every delivery of the webhook; while ``hasMore``, pass the page's last ``id`` as ``before``."""
    WebhookBook(app).get(webhook_id)
    data = deliveries_of(app, webhook_id, limit + 1, before=before)
    page = data[:limit]
    return FastJSONResponse(
        {"totalResultSize": deliveries_count(app, webhook_id), "hasMore": len(data) > limit, "data": page}
    )


@router.post("/v1/webhooks/{id}/deliveries/{deliveryId}/retry", status_code=202, summary="Retry a delivery")
def retry_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, app: ApplicationDep, key: ManagementKey,
    correlation_id: CorrelationId,
) -> Any:  # fmt: skip
    """Try the delivery again now, whatever its state (a dead letter too); at least once, so it may arrive twice."""
    book = WebhookBook(app)
    book.get(webhook_id)
    if not deliveries_of(app, webhook_id, 1, delivery_id):
        raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id}")
    with recording(correlationId=correlation_id, keyName=key.name):
        book.retry(webhook_id, delivery_id, key.name)
    return FastJSONResponse(
        {"id": delivery_id, "webhookId": webhook_id, "status": "retrying"}, status_code=202
    )


@router.get("/v1/effects/feed", summary="Every recorded effect, in log order")
def effects_feed(
    app: ApplicationDep, _: AuditorKey,
    after: Annotated[int, Query(ge=0, le=MAX_INT, description="a log position: the page's `after`")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:  # fmt: skip
    """Effects recorded after log position ``after``, oldest first, each with the event that caused it. Continue
    with ``after`` from the answer while ``hasMore``; a page may be empty and still have more."""
    page = effects_after(app, after, limit)
    return FastJSONResponse({"data": page.effects, "after": page.after, "hasMore": page.has_more})
