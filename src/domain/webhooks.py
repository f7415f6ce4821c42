"""Webhooks: receivers of effects that no HTTP response carries, registered as event-sourced aggregates.

A webhook has an integer id (from one registry, like rules), a URL, an optional list of effect types it wants
(none: every effect) and an optional name that ``triggerWebhook`` effects may use instead of the id, and the
secret its deliveries are signed with (HMAC-SHA256). Removing one, and asking for a delivery to be retried, are
events too, so the audit history shows who did it. Delivering is ``projections.deliveries``'s job.

The secret is not in the log: whoever may read the log (auditors) must not be able to sign as us. The event
names it by ``secret_id``; a ``SecretStore`` keeps the secret itself, and removing the webhook destroys it.
Events recorded before (version 1, secret in clear) are upcast on read to the id their secret was moved under.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import event

from domain.application import Rulestream
from domain.base import Stream, natural_id
from domain.errors import InvalidInput, NotFound, Problem
from domain.rules.effects import EFFECT_TYPES
from domain.settlement import ROLLBACK_TYPES

REGISTRY_ID = natural_id("webhook-registry", "webhooks")


def webhook_aggregate_id(webhook_id: int) -> uuid.UUID:
    return natural_id("webhook", str(webhook_id))


def legacy_secret_id(webhook_id: int) -> str:
    """The id under which the secret of a webhook registered with its secret in the log is kept."""
    return f"legacy:{webhook_id}"


class SecretStore(Protocol):
    """Where webhook secrets live, outside the log."""

    def keep(self, secret_id: str, secret: str) -> None: ...

    def destroy(self, secret_id: str) -> None: ...


class Webhook(Stream):
    """One receiver of effects."""

    class WebhookRegistered(Stream.Created):
        class_version = 2

        webhook_id: int
        url: str
        effect_types: list[str] | None
        secret_id: str
        """The key of the secret in the ``SecretStore`` (the secret itself is never in the log)."""
        name: str | None
        author: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 held the secret in clear; ``projections.webhook_secrets`` moved it to this id.
            state["secret_id"] = legacy_secret_id(state["webhook_id"])
            state.pop("secret", None)

    class WebhookRemoved(Stream.Event):
        author: str

        def apply(self, aggregate: Webhook) -> None:
            aggregate.removed = True

    class DeliveryRetryRequested(Stream.Event):
        delivery_id: int
        author: str

    def __init__(
        self,
        webhook_id: int,
        url: str,
        effect_types: list[str] | None,
        secret_id: str,
        name: str | None,
        author: str,
    ) -> None:
        self.webhook_id = webhook_id
        self.url = url
        self.effect_types = effect_types
        self.secret_id = secret_id
        self.name = name
        self.author = author
        self.removed = False

    @classmethod
    def register(
        cls,
        webhook_id: int,
        url: str,
        effect_types: Sequence[str] | None,
        secret_id: str,
        name: str | None,
        author: str,
    ) -> Webhook:
        webhook: Webhook = cls._create(
            cls.WebhookRegistered,
            id=webhook_aggregate_id(webhook_id),
            webhook_id=webhook_id,
            url=url,
            effect_types=sorted(set(effect_types)) if effect_types else None,
            secret_id=secret_id,
            name=name,
            author=author,
        )
        return webhook

    def remove(self, author: str) -> None:
        self._still_registered()
        self.trigger_event(self.WebhookRemoved, author=author)

    def retry(self, delivery_id: int, author: str) -> None:
        """Ask for a delivery to be tried again now (a dead letter too)."""
        self._still_registered()
        self.trigger_event(self.DeliveryRetryRequested, delivery_id=delivery_id, author=author)

    def _still_registered(self) -> None:
        if self.removed:
            raise NotFound(f"no webhook {self.webhook_id}")


class WebhookRegistry(Stream):
    """The one registry of webhook ids: increasing integers, listed without a read model."""

    @staticmethod
    def create_id() -> uuid.UUID:
        return REGISTRY_ID

    @event("WebhookRegistryStarted")
    def __init__(self) -> None:
        self.webhook_ids: list[int] = []

    def allocate(self) -> int:
        webhook_id = (self.webhook_ids[-1] if self.webhook_ids else 0) + 1
        self._allocated(webhook_id)
        return webhook_id

    @event("WebhookIdAllocated")
    def _allocated(self, webhook_id: int) -> None:
        self.webhook_ids.append(webhook_id)


RECEIVABLE = frozenset({*(cls.key for cls in EFFECT_TYPES), *ROLLBACK_TYPES})
"""The effect types a webhook may ask for: what rules emit, and the rollbacks the policy emits for them."""


class WebhookBook:
    """The webhook commands and queries of the application; ``secrets`` is needed to register and remove."""

    def __init__(self, app: Rulestream, secrets: SecretStore | None = None) -> None:
        self.app = app
        self.secrets = secrets

    def register(
        self, url: str, effect_types: Sequence[str] | None, secret: str, name: str | None, author: str
    ) -> Webhook:
        """Keep the secret, then record the webhook naming it; a registration that fails destroys it again
        (what a crash in between leaves is a secret no event names: never used, never shown)."""
        if name is not None and name.isdigit():
            raise InvalidInput.at("/name", "a webhook's name may not be a number: triggerWebhook effects name a "
                                  "webhook by its name or its id")  # fmt: skip
        unknown = [(i, t) for i, t in enumerate(effect_types or []) if t not in RECEIVABLE]
        if unknown:
            known = ", ".join(sorted(RECEIVABLE))
            raise InvalidInput("Unknown effect types", [
                Problem("Unknown effect type", f"'{t}' is not an effect type; one of {known}", f"/effectTypes/{i}")
                for i, t in unknown
            ])  # fmt: skip
        if name is not None and name in {w.name for w in self.all()}:
            raise InvalidInput.at("/name", f"a webhook named '{name}' exists already")
        secrets = self._secrets()
        secret_id = str(uuid.uuid4())
        secrets.keep(secret_id, secret)

        def attempt() -> Webhook:
            registry = self._registry() or WebhookRegistry()
            webhook = Webhook.register(registry.allocate(), url, effect_types, secret_id, name, author)
            self.app.save(registry, webhook)
            return webhook

        try:
            return self.app._retrying(attempt)  # noqa: SLF001 - the application's own retry policy
        except BaseException:
            secrets.destroy(secret_id)
            raise

    def remove(self, webhook_id: int, author: str) -> None:
        """Record the removal and destroy the secret (the deliverer does too, should this stop in between)."""
        secrets = self._secrets()

        def attempt() -> Webhook:
            webhook = self.get(webhook_id)
            webhook.remove(author)
            self.app.save(webhook)
            return webhook

        removed = self.app._retrying(attempt)  # noqa: SLF001
        secrets.destroy(removed.secret_id)

    def _secrets(self) -> SecretStore:
        if self.secrets is None:
            raise TypeError("registering or removing a webhook needs a SecretStore")
        return self.secrets

    def retry(self, webhook_id: int, delivery_id: int, author: str) -> None:
        def attempt() -> None:
            webhook = self.get(webhook_id)
            webhook.retry(delivery_id, author)
            self.app.save(webhook)

        self.app._retrying(attempt)  # noqa: SLF001

    def get(self, webhook_id: int) -> Webhook:
        try:
            webhook: Webhook = self.app.repository.get(webhook_aggregate_id(webhook_id))
        except AggregateNotFoundError:
            raise NotFound(f"no webhook {webhook_id}") from None
        if webhook.removed:
            raise NotFound(f"no webhook {webhook_id}")
        return webhook

    def all(self) -> list[Webhook]:
        registry = self._registry()
        found: list[Webhook] = [
            self.app.repository.get(webhook_aggregate_id(i))
            for i in (registry.webhook_ids if registry else [])
        ]
        return [w for w in found if not w.removed]

    def _registry(self) -> WebhookRegistry | None:
        try:
            registry: WebhookRegistry = self.app.repository.get(REGISTRY_ID)
        except AggregateNotFoundError:
            return None
        return registry
