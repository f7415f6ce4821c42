"""Webhook deliveries: a follower that turns recorded effects into signed POSTs to the registered receivers.

- **what**: for every ``Evaluation`` in the log, each effect goes to every webhook registered at that point of the
  log that wants it: all effects when it listed no ``effectTypes``, else those of its types; a ``triggerWebhook``
  effect goes only to the webhook it names (by name or id).
- **how**: the follower writes one ``webhook_deliveries`` row per (webhook, effect), with its checkpoint, in one
  transaction (nothing is lost or queued twice); a sender thread POSTs them. Each POST carries the JSON body,
  ``Rulestream-Timestamp`` (Unix seconds) and ``Rulestream-Signature: sha256=<hex>``, the HMAC-SHA256 with the
  webhook's secret over ``<timestamp>.<body>``. The secret is read from ``webhook_secrets`` at sending time
  (``projections.webhook_secrets``; the log names it only by id); a removal deletes it.
- **at least once, in order per profile**: a delivery is tried until the receiver answers 2xx; only the oldest
  pending delivery of each (webhook, profile) is sent, so a profile's effects arrive in log order. Failures are
  retried with exponential backoff (``BACKOFF_BASE`` doubling up to ``BACKOFF_CAP``); after ``MAX_ATTEMPTS`` the
  delivery is a dead letter (and the profile's later ones go on). Every attempt is kept in ``webhook_attempts``;
  ``Webhook.DeliveryRetryRequested`` (the API's retry) makes a delivery pending again.
- **isolation**: this is its own follower and thread with short HTTP timeouts, so a slow or failing receiver never
  slows the policy or the API. Sends of one round run in a small thread pool.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from domain.application import Rulestream
from domain.clock import Clock, SystemClock
from domain.effects import Evaluation, numeric
from domain.webhooks import Webhook
from projections.connections import Subscription, shared
from projections.follower import GATHER_SECONDS, Follower, Recorded, topic_of
from projections.jsonb import exact
from projections.webhook_secrets import TABLE as SECRETS
from projections.webhook_secrets import create_table as create_secrets_table

log = logging.getLogger("rulestream.deliveries")

CHANNEL = "rulestream_deliveries"
SIGNATURE_HEADER = "Rulestream-Signature"
TIMESTAMP_HEADER = "Rulestream-Timestamp"

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_targets (
    webhook_id int PRIMARY KEY, stream uuid NOT NULL, url text NOT NULL, name text, effect_types text[],
    secret_id text, removed boolean NOT NULL DEFAULT false);
-- Tables made before secrets left the log held them here in clear: their secrets are in webhook_secrets now.
ALTER TABLE webhook_targets ADD COLUMN IF NOT EXISTS secret_id text;
UPDATE webhook_targets SET secret_id = 'legacy:' || webhook_id WHERE secret_id IS NULL;
ALTER TABLE webhook_targets DROP COLUMN IF EXISTS secret;
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id bigserial PRIMARY KEY, webhook_id int NOT NULL, position bigint NOT NULL, effect_index int NOT NULL,
    order_key text NOT NULL, effect jsonb NOT NULL, cause jsonb NOT NULL, recorded_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'pending', attempts int NOT NULL DEFAULT 0, last_status int, last_error text,
    next_try_at timestamptz NOT NULL, delivered_at timestamptz, UNIQUE (webhook_id, position, effect_index));
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending
    ON webhook_deliveries (webhook_id, order_key, delivery_id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_next ON webhook_deliveries (next_try_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_listed ON webhook_deliveries (webhook_id, delivery_id);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    delivery_id bigint NOT NULL, attempt int NOT NULL, at timestamptz NOT NULL, status int, error text,
    PRIMARY KEY (delivery_id, attempt));
"""

HEADS = (
    "(SELECT DISTINCT ON (webhook_id, order_key) * FROM webhook_deliveries WHERE status = 'pending' "
    "ORDER BY webhook_id, order_key, delivery_id)"
)
"""The first pending delivery of each profile (``order_key``) and webhook: the only ones that may be sent (each
profile's effects go in order)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 over ``<timestamp>.<body>``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def wanted(target: Mapping[str, Any], effect: Mapping[str, Any]) -> bool:
    """Whether the webhook ``target`` receives ``effect``."""
    kind = effect.get("effectType")
    if kind == "triggerWebhook":
        named = str((effect.get("props") or {}).get("webhook", ""))
        return named in (target["name"], str(target["webhook_id"]))
    types = target["effect_types"]
    return not types or kind in types


def _json(content: Any) -> bytes:
    # Amounts as JSON numbers, as in API responses (the log keeps them as exact decimal strings).
    return exact(content, _number, orjson.OPT_UTC_Z)


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


WEBHOOKS_ONLY: tuple[type, ...] = (Webhook.Event,)


class Deliveries(Follower):
    """The ``deliveries`` follower (in ``registry.POLICY``), and the sender that POSTs what it queues."""

    name = "deliveries"
    batch_size = 1000
    gather_seconds = GATHER_SECONDS
    reads = (Webhook.Event, Evaluation.Evaluated)
    MAX_ATTEMPTS = 10
    BACKOFF_BASE = timedelta(seconds=1)
    BACKOFF_CAP = timedelta(minutes=10)
    TIMEOUT = httpx.Timeout(5.0, connect=2.0)
    MAX_SLEEP = 10.0
    """The sender re-reads at least this often (a lost ``NOTIFY`` costs at most that)."""
    ROUND = 64
    WORKERS = 8

    def __init__(self, app: Rulestream, clock: Clock | None = None, *, sender: bool = True) -> None:
        self.app = app
        self.clock: Clock = clock or SystemClock()
        self.sender = sender
        self._no_targets = False
        """No target was registered (and not removed) as of the last batch committed: its evaluations could go
        nowhere, and neither can the next batch's, unless that batch registers one."""
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self._wake: Subscription | None = None
        """What the alarm or sender sleeps on between tries (``stop`` wakes it)."""
        self.datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]

    # -- Follower: queue what each receiver gets ------------------------------------------------------

    def setup(self, cursor: psycopg.Cursor[DictRow]) -> None:
        create_secrets_table(cursor, self.app)  # first: old targets' secrets are copied from the log
        cursor.execute(SCHEMA)

    def reads_in(self, topics: frozenset[str]) -> tuple[type, ...] | None:
        # The policy's process decoded every evaluation for this alone (the policy itself does not read them),
        # with nowhere to send them while nobody registered a webhook.
        if self._no_targets and not any(topic_of(topic, WEBHOOKS_ONLY) for topic in topics):
            return WEBHOOKS_ONLY
        return self.reads

    def rolled_back(self) -> None:
        self._no_targets = False  # unknown until a batch commits again

    def start(self, cursor: psycopg.Cursor[DictRow]) -> None:
        cursor.execute("SELECT NOT EXISTS (SELECT 1 FROM webhook_targets WHERE NOT removed) AS none")
        row = cursor.fetchone()
        self._no_targets = bool(row and row["none"])
        if self.sender and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._send_forever, name="webhook-sender", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 0.0) -> None:
        self.stopping.set()
        if self._wake is not None:  # it may be sleeping until the next try: now, not then
            self._wake.event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def apply(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        if not batch:
            return
        cursor.execute("SELECT * FROM webhook_targets WHERE NOT removed")
        targets = {row["webhook_id"]: dict(row) for row in cursor.fetchall()}
        rows: list[tuple[Any, ...]] = []
        now = self.clock.now()
        for recorded in batch:
            event: Any = recorded.event
            if isinstance(event, Webhook.Event):
                self._apply_webhook(cursor, event, targets, now)
            elif isinstance(event, Evaluation.Evaluated) and event.effects:
                cause = event.cause
                order_key = cause.get("profileId") or cause.get("sessionId") or f"@{recorded.position}"
                for index, effect in enumerate(event.effects):
                    for target in targets.values():
                        if wanted(target, effect):
                            rows.append((target["webhook_id"], recorded.position, index, order_key, Jsonb(effect),
                                         Jsonb(cause), event.timestamp, now))  # fmt: skip
        self._no_targets = not targets  # as of this batch (rolled back with it: ``rolled_back``)
        if rows:
            cursor.executemany(
                "INSERT INTO webhook_deliveries (webhook_id, position, effect_index, order_key, effect, cause, "
                "recorded_at, next_try_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                rows,
            )
            cursor.execute("SELECT pg_notify(%s, '')", (CHANNEL,))

    def _apply_webhook(
        self, cursor: psycopg.Cursor[DictRow], event: Any, targets: dict[int, dict[str, Any]], now: datetime
    ) -> None:
        if isinstance(event, Webhook.WebhookRegistered):
            target = {"webhook_id": event.webhook_id, "stream": event.originator_id, "url": event.url,
                      "name": event.name, "effect_types": event.effect_types,
                      "secret_id": event.secret_id}  # fmt: skip
            cursor.execute(
                "INSERT INTO webhook_targets (webhook_id, stream, url, name, effect_types, secret_id) VALUES "
                "(%(webhook_id)s, %(stream)s, %(url)s, %(name)s, %(effect_types)s, %(secret_id)s) "
                "ON CONFLICT DO NOTHING",
                target,
            )
            targets[event.webhook_id] = target
        elif isinstance(event, Webhook.WebhookRemoved):
            cursor.execute(
                "UPDATE webhook_targets SET removed = true WHERE stream = %s RETURNING webhook_id, secret_id",
                (event.originator_id,),
            )
            for row in cursor.fetchall():
                targets.pop(row["webhook_id"], None)
                # The API destroyed it already, unless it stopped right after recording the removal.
                cursor.execute(f"DELETE FROM {SECRETS} WHERE secret_id = %s", (row["secret_id"],))
                cursor.execute(
                    "UPDATE webhook_deliveries SET status = 'cancelled' WHERE webhook_id = %s AND status = 'pending'",
                    (row["webhook_id"],),
                )
        elif isinstance(event, Webhook.DeliveryRetryRequested):
            cursor.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_try_at = %s "
                "WHERE delivery_id = %s AND webhook_id = (SELECT webhook_id FROM webhook_targets WHERE stream = %s)",
                (now, event.delivery_id, event.originator_id),
            )
            cursor.execute("SELECT pg_notify(%s, '')", (CHANNEL,))

    # -- the sender -----------------------------------------------------------------------------------

    def send_due(self) -> int:
        """Send every delivery that is due now and first in line for its (webhook, profile); answer how many
        were attempted. Repeats while deliveries succeed, since each success lets the next one of its line go."""
        attempted = 0
        with (
            ThreadPoolExecutor(self.WORKERS, thread_name_prefix="webhook-post") as pool,
            httpx.Client(timeout=self.TIMEOUT, follow_redirects=False) as client,
        ):
            while not self.stopping.is_set():
                due = self._due(self.clock.now())
                if not due:
                    break
                attempts = list(pool.map(lambda d: self._post(client, d), due))
                self._keep(due, attempts)
                attempted += len(attempts)
                if not any(a.ok for a in attempts):
                    break
        return attempted

    def next_try(self) -> datetime | None:
        """When the next delivery may be tried: the earliest try of the first pending delivery of each profile and
        webhook (``_due``'s choice). A delivery waiting behind an earlier one of its profile is not due at its
        own time, which is past already: counted, it made the sender spin while a receiver was down."""
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT min(next_try_at) AS at FROM {HEADS} heads")
            row = cursor.fetchone()
        return row["at"] if row else None

    def _due(self, now: datetime) -> list[dict[str, Any]]:
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(
                f"SELECT d.*, t.url, s.secret FROM {HEADS} d "
                f"JOIN webhook_targets t USING (webhook_id) "
                f"LEFT JOIN {SECRETS} s ON s.secret_id = t.secret_id "
                "WHERE d.next_try_at <= %s ORDER BY d.delivery_id LIMIT %s",
                (now, self.ROUND),
            )
            return [dict(row) for row in cursor.fetchall()]

    def _post(self, client: httpx.Client, delivery: Mapping[str, Any]) -> Attempt:
        if delivery["secret"] is None:  # destroyed: the webhook is being removed
            return Attempt(delivery["delivery_id"], None, "the webhook's secret no longer exists")
        body = _json({
            "deliveryId": delivery["delivery_id"], "webhookId": delivery["webhook_id"],
            "position": delivery["position"], "effectIndex": delivery["effect_index"],
            "recordedAt": delivery["recorded_at"], "effect": numeric(delivery["effect"]), "cause": delivery["cause"],
        })  # fmt: skip
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(delivery["secret"], timestamp, body),
            "Rulestream-Delivery": str(delivery["delivery_id"]),
            "User-Agent": "Rulestream-Webhooks",
        }
        try:
            response = client.post(delivery["url"], content=body, headers=headers)
        except httpx.HTTPError as error:
            return Attempt(delivery["delivery_id"], None, f"{type(error).__name__}: {error}"[:500])
        failure = None if 200 <= response.status_code < 300 else response.text[:500]
        return Attempt(delivery["delivery_id"], response.status_code, failure)

    def _keep(self, due: Sequence[Mapping[str, Any]], attempts: Sequence[Attempt]) -> None:
        now = self.clock.now()
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            for delivery, attempt in zip(due, attempts, strict=True):
                tries = delivery["attempts"] + 1
                if attempt.ok:
                    status, next_try = "delivered", delivery["next_try_at"]
                elif tries >= self.MAX_ATTEMPTS:
                    status, next_try = "dead", delivery["next_try_at"]
                else:
                    status, next_try = (
                        "pending",
                        now + min(self.BACKOFF_BASE * 2 ** (tries - 1), self.BACKOFF_CAP),
                    )
                cursor.execute(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error) VALUES (%s, "
                    "(SELECT coalesce(max(attempt), 0) + 1 FROM webhook_attempts WHERE delivery_id = %s), %s, %s, %s)",
                    (attempt.delivery_id, attempt.delivery_id, now, attempt.status, attempt.error),
                )
                # Only a delivery still pending moves: a retry or removal meanwhile wins.
                cursor.execute(
                    "UPDATE webhook_deliveries SET status = %s, attempts = %s, last_status = %s, last_error = %s, "
                    "next_try_at = %s, delivered_at = CASE WHEN %s THEN %s ELSE delivered_at END "
                    "WHERE delivery_id = %s AND status = 'pending' AND attempts = %s",
                    (status, tries, attempt.status, attempt.error, next_try, attempt.ok, now,
                     attempt.delivery_id, delivery["attempts"]),
                )  # fmt: skip

    def _send_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                self._send()
            except Exception:  # noqa: BLE001 - the sender must survive outages; it logs and retries
                log.exception("webhook sender failed; restarting in 1 s")
                self.stopping.wait(1.0)

    def _send(self) -> None:
        # Woken by the process's one listening connection (``projections.connections``), not one of its own.
        with shared(self.datastore) as (_, notifier):
            wake = self._wake = notifier.subscribe(CHANNEL)
            try:
                while not self.stopping.is_set():
                    self.send_due()
                    due = self.next_try()
                    sleep = self.MAX_SLEEP if due is None else self.clock.seconds_until(due)
                    if sleep > 0:
                        wake.wait(min(sleep, self.MAX_SLEEP))
            finally:
                wake.close()


# -- reading deliveries (the API) -----------------------------------------------------------------------


def deliveries_count(app: Rulestream, webhook_id: int) -> int:
    """How many deliveries a webhook has had (of every status)."""
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.cursor() as cursor:
        try:
            cursor.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE webhook_id = %s", (webhook_id,))
        except psycopg.errors.UndefinedTable:
            return 0
        row = cursor.fetchone()
        return int(row["n"]) if row else 0


def deliveries_of(
    app: Rulestream, webhook_id: int, limit: int, delivery_id: int | None = None, *, before: int | None = None
) -> list[dict[str, Any]]:
    """The latest deliveries to a webhook (or the one ``delivery_id``; or those older than ``before``), newest
    first, each with its attempts."""
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.cursor() as cursor:
        try:
            cursor.execute(
                "SELECT * FROM webhook_deliveries WHERE webhook_id = %s AND delivery_id = coalesce(%s, delivery_id) "
                "AND delivery_id < coalesce(%s, 9223372036854775807) ORDER BY delivery_id DESC LIMIT %s",
                (webhook_id, delivery_id, before, limit),
            )
        except psycopg.errors.UndefinedTable:
            return []  # the deliveries follower has not started yet
        rows = cursor.fetchall()
        cursor.execute(
            "SELECT * FROM webhook_attempts WHERE delivery_id = ANY(%s) ORDER BY delivery_id, attempt",
            ([r["delivery_id"] for r in rows],),
        )
        attempts: dict[int, list[dict[str, Any]]] = {}
        for a in cursor.fetchall():
            attempts.setdefault(a["delivery_id"], []).append(
                {"attempt": a["attempt"], "at": a["at"], "status": a["status"], "error": a["error"]}
            )
    return [
        {
            "id": r["delivery_id"], "webhookId": r["webhook_id"], "position": r["position"],
            "effectIndex": r["effect_index"], "effect": numeric(r["effect"]), "cause": r["cause"],
            "status": r["status"], "attempts": r["attempts"], "lastStatus": r["last_status"],
            "lastError": r["last_error"], "nextTry": r["next_try_at"] if r["status"] == "pending" else None,
            "deliveredAt": r["delivered_at"], "history": attempts.get(r["delivery_id"], []),
        }
        for r in rows
    ]  # fmt: skip
