"""Webhook secrets, outside the log: the table ``webhook_secrets`` (secret id → secret).

The log names a webhook's secret only by id (``domain.webhooks``), so auditors, who may read the whole log,
cannot sign deliveries. The deliverer joins this table to sign; removing a webhook deletes its row, and with it the
only copy. An ordinary table, not part of the hash-chained log: the server may delete from it.

Upgrading a database whose log holds secrets in clear (``WebhookRegistered`` version 1): when the table is
created, those secrets are copied here under ``legacy_secret_id`` (what the upcaster names them), except for
webhooks removed since. The stored bytes of those old events still hold them: the log cannot be rewritten (its
triggers and hash chains forbid it), only no longer shown.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from eventsourcing.utils import get_topic
from psycopg.rows import DictRow

from domain.application import Rulestream
from domain.webhooks import Webhook, legacy_secret_id

TABLE = "webhook_secrets"
DDL_LOCK = (7_003, 1)
"""Advisory lock that serialises creating the table (and the one-time copy of old secrets)."""


class WebhookSecrets:
    """The ``domain.webhooks.SecretStore`` on PostgreSQL."""

    def __init__(self, app: Rulestream) -> None:
        # Made where needed (webhooks are registered rarely): the API may register before a deliverer starts.
        self.datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            create_table(cursor, app)

    def keep(self, secret_id: str, secret: str) -> None:
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute(f"INSERT INTO {TABLE} (secret_id, secret) VALUES (%s, %s)", (secret_id, secret))

    def destroy(self, secret_id: str) -> None:
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute(f"DELETE FROM {TABLE} WHERE secret_id = %s", (secret_id,))

    def secret(self, secret_id: str) -> str | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"SELECT secret FROM {TABLE} WHERE secret_id = %s", (secret_id,)).fetchone()
        return row["secret"] if row else None


def create_table(cursor: psycopg.Cursor[DictRow], app: Rulestream) -> None:
    """Create the table if missing, copying the secrets of the log's version 1 registrations into it."""
    cursor.execute("SELECT to_regclass(%s) AS found", (TABLE,))
    row = cursor.fetchone()
    if row and row["found"]:
        return
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", DDL_LOCK)
    cursor.execute("SELECT to_regclass(%s) AS found", (TABLE,))
    row = cursor.fetchone()
    if row and row["found"]:
        return  # another process made it meanwhile
    cursor.execute(f"CREATE TABLE {TABLE} (secret_id text PRIMARY KEY, secret text NOT NULL)")
    copy_legacy_secrets(cursor, app)


def copy_legacy_secrets(cursor: psycopg.Cursor[DictRow], app: Rulestream) -> int:
    """Copy the secrets still in the log (of webhooks not removed) here; answer how many. Reads the stored
    bytes, not the upcast events (which no longer show them): one scan of the log, when the table is made."""
    events = app.recorder.events_table_name  # type: ignore[attr-defined]
    cursor.execute(
        f'SELECT originator_id, topic, state FROM "{events}" WHERE topic = ANY(%s)',
        ([get_topic(Webhook.WebhookRegistered), get_topic(Webhook.WebhookRemoved)],),
    )
    found: dict[Any, tuple[str, str]] = {}
    removed: set[Any] = set()
    for stored in cursor.fetchall():
        if stored["topic"] == get_topic(Webhook.WebhookRemoved):
            removed.add(stored["originator_id"])
            continue
        state = orjson.loads(bytes(stored["state"]))
        if isinstance(state.get("secret"), str):
            found[stored["originator_id"]] = (legacy_secret_id(state["webhook_id"]), state["secret"])
    rows = [kept for stream, kept in found.items() if stream not in removed]
    if rows:
        cursor.executemany(
            f"INSERT INTO {TABLE} (secret_id, secret) VALUES (%s, %s) ON CONFLICT DO NOTHING", rows
        )
    return len(rows)
