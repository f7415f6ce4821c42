"""Crypto-shredding: personal data in the append-only log, erasable without rewriting it.

The log cannot forget (a trigger refuses UPDATE and DELETE, and the hash chains would break). So the personal
fields of an event — a profile's attributes, the attributes of its custom events (on its own stream or on a
session) — are stored sealed with AES-GCM under a data key of that profile, kept in a separate, ordinary table
(``<app>_profile_keys``). Erasing a customer destroys their key: the stored bytes (and so the hash chains)
stay as they were, the events stay countable, and the sealed fields decode as ``ERASED``. A profile's snapshots
(``Rulestream.snapshotting_intervals``) hold its attributes too: sealed alike, under the same key.

This is infrastructure, wired through the library's own seams: ``ShreddingFactory`` is the
``PERSISTENCE_MODULE`` (the Postgres factory whose mappers seal and unseal), so every mapper the application
or a follower builds does the same. ``src/domain`` never sees a key.

Keys are cached per process for ``KEY_TTL`` seconds, so other processes may still decrypt for that long after
an erasure; a process that decodes the erasure event (the policy and every read model do) drops the key at once.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Collection, Sequence
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import DomainEventProtocol, Snapshot
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from eventsourcing.utils import get_topic
from psycopg import sql

from domain.application import Rulestream, profile_id
from domain.profile import ERASED, CustomerProfile
from domain.session import CustomerSession

SEALED = "_sealed"
KEY_TTL = 5.0

PROFILE_TOPIC = get_topic(CustomerProfile)
SNAPSHOT_FIELD = "state.attributes"
"""Where a profile snapshot's personal data is: the attributes inside its ``state``."""

PROFILE_PERSONAL = (CustomerProfile.Registered, CustomerProfile.AttributesStored, CustomerProfile.CustomEventTracked)


def personal_data(event: Any) -> tuple[UUID, str] | None:
    """Whose personal data this event holds, and in which field; ``None`` for events without any."""
    if isinstance(event, PROFILE_PERSONAL):
        owner = event.originator_id
    elif isinstance(event, CustomerSession.CustomEventTracked) and event.profile_id:
        owner = profile_id(event.profile_id)
    else:
        return None
    return (owner, "attributes") if event.attributes else None


class ProfileKeys:
    """The data keys of profiles: one live key per profile, created on first use, deleted on erasure."""

    CACHE_SIZE = 100_000
    """Keys cached by default (``PROFILE_KEY_CACHE_MAXSIZE`` of the application's environment)."""

    def __init__(self, datastore: PostgresDatastore, table: str, cache_size: int = CACHE_SIZE) -> None:
        self.datastore = datastore
        self.cache_size = cache_size
        schema = sql.Identifier(datastore.schema or "public")
        self.table = sql.SQL("{}.{}").format(schema, sql.Identifier(table))
        self._create_statement = (
            sql.SQL(
                "WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true)), "
                "made AS (INSERT INTO {0} (key_id, profile_id, data_key) VALUES (%s, %s, %s) "
                "ON CONFLICT (profile_id) DO NOTHING RETURNING key_id, data_key) "
                "SELECT key_id, data_key FROM made, unflushed "
                "UNION ALL SELECT key_id, data_key FROM {0} WHERE profile_id = %s LIMIT 1"
            )
            .format(self.table)
            .as_bytes(None)
        )
        """A new customer's key, or the one a concurrent command made; rendered once (a command per new
        customer runs it). One statement, its own transaction (the pool's connections autocommit), with no flush
        of its own (``set_config`` local to that transaction, in force at its commit): the event sealed with
        this key commits after it, and that commit flushes the log up to and including this key (one fsync per
        command, not two). One round trip instead of four (begin, set, insert, commit)."""
        self._lock = threading.Lock()
        self._by_profile: dict[UUID, tuple[float, UUID, bytes]] = {}
        self._by_id: dict[UUID, tuple[float, bytes | None]] = {}

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key_id uuid PRIMARY KEY, "
                    "profile_id uuid NOT NULL UNIQUE, "
                    "data_key bytea NOT NULL, created timestamptz NOT NULL DEFAULT now())"
                ).format(self.table)
            )

    def key_for(self, profile: UUID) -> tuple[UUID, bytes]:
        """The profile's live key (``key_id``, key), created if it has none."""
        cached = self._by_profile.get(profile)
        if cached and cached[0] > time.monotonic():
            return cached[1], cached[2]
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                self._create_statement, (uuid4(), profile, AESGCM.generate_key(bit_length=256), profile), prepare=True
            ).fetchone()
            if row is None:
                # Another transaction inserted the profile's key after this statement's snapshot was taken (the
                # insert waited for it, then did nothing): a new statement sees it.
                row = conn.execute(
                    sql.SQL("SELECT key_id, data_key FROM {} WHERE profile_id = %s").format(self.table), (profile,)
                ).fetchone()
        if row is None:
            raise RuntimeError(f"no data key for profile {profile}")
        key_id, key = row["key_id"], bytes(row["data_key"])
        self._remember(profile, key_id, key)
        return key_id, key

    def key(self, key_id: UUID) -> bytes | None:
        """The key with this id, or ``None`` once destroyed (for good: ids are never reused)."""
        cached = self._cached(key_id, time.monotonic())
        if cached is not None:
            return cached[1]
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                sql.SQL("SELECT profile_id, data_key FROM {} WHERE key_id = %s").format(self.table), (key_id,)
            ).fetchone()
        if row is None:
            with self._lock:
                self._make_room()
                self._by_id[key_id] = (0.0, None)
            return None
        key = bytes(row["data_key"])
        self._remember(row["profile_id"], key_id, key)
        return key

    def prefetch(self, key_ids: Collection[UUID]) -> None:
        """Cache these keys (those not cached already) with one query; an id not found was destroyed."""
        now = time.monotonic()
        missing = [k for k in key_ids if self._cached(k, now) is None]
        if not missing:
            return
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                sql.SQL("SELECT key_id, profile_id, data_key FROM {} WHERE key_id = ANY(%s)").format(self.table),
                (missing,),
            ).fetchall()
        for row in rows:
            self._remember(row["profile_id"], row["key_id"], bytes(row["data_key"]))
        with self._lock:
            for gone in set(missing) - {row["key_id"] for row in rows}:
                self._make_room()
                self._by_id[gone] = (0.0, None)

    def erase(self, profile: UUID) -> None:
        """Destroy every key of the profile: what was sealed with them can never be read again."""
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute(sql.SQL("DELETE FROM {} WHERE profile_id = %s").format(self.table), (profile,))
        self.forget(profile)

    def forget(self, profile: UUID) -> None:
        """Drop the profile's keys from this process's cache (another process erased them)."""
        with self._lock:
            cached = self._by_profile.pop(profile, None)
            if cached:
                self._by_id.pop(cached[1], None)

    def _remember(self, profile: UUID, key_id: UUID, key: bytes) -> None:
        until = time.monotonic() + KEY_TTL
        with self._lock:
            self._make_room()
            self._by_profile[profile] = (until, key_id, key)
            self._by_id[key_id] = (until, key)

    def _cached(self, key_id: UUID, now: float) -> tuple[float, bytes | None] | None:
        """The cache's entry for a key if it still holds: a live key within its TTL, or a destroyed one."""
        cached = self._by_id.get(key_id)
        return cached if cached and (cached[1] is None or cached[0] > now) else None

    def _make_room(self) -> None:
        # Bounded: an expired or erased entry is cheap to look up again. Called under the lock.
        if len(self._by_id) >= self.cache_size or len(self._by_profile) >= self.cache_size:
            self._by_id.clear()
            self._by_profile.clear()


class ShreddingMapper(Mapper[UUID]):
    """The library's mapper, sealing each event's personal field under its owner's key."""

    def __init__(self, transcoder: Transcoder, keys: ProfileKeys, **kwargs: Any) -> None:
        super().__init__(transcoder, **kwargs)
        self.keys = keys

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        if _is_profile_snapshot(domain_event):
            return super().to_stored_event(self._seal_snapshot(domain_event))
        personal = personal_data(domain_event)
        if personal is None:
            return super().to_stored_event(domain_event)
        owner, field = personal
        state = dict(vars(domain_event))
        state[field] = self._seal(owner, domain_event, field, state[field])
        clone = object.__new__(type(domain_event))
        object.__setattr__(clone, "__dict__", state)
        return super().to_stored_event(clone)

    def _seal(self, owner: UUID, event: Any, field: str, value: Any) -> dict[str, Any]:
        key_id, key = self.keys.key_for(owner)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, self.transcoder.encode(value), self._aad(event, field))
        return {SEALED: 1, "kid": str(key_id), "nonce": _b64(nonce), "ct": _b64(sealed)}

    def _seal_snapshot(self, snapshot: Any) -> Any:
        inner = dict(snapshot.state)
        if inner.get("attributes"):
            inner["attributes"] = self._seal(snapshot.originator_id, snapshot, SNAPSHOT_FIELD, inner["attributes"])
        clone = object.__new__(type(snapshot))
        object.__setattr__(clone, "__dict__", {**vars(snapshot), "state": inner})
        return clone

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        return self._open(super().to_domain_event(stored_event))

    def to_domain_events(self, stored_events: Sequence[StoredEvent]) -> list[DomainEventProtocol[UUID]]:
        """Decode a page of the log, fetching the keys its sealed fields need in one query, not one each."""
        events = [super(ShreddingMapper, self).to_domain_event(stored) for stored in stored_events]
        self.keys.prefetch(
            {UUID(value["kid"]) for event in events for value in vars(event).values() if _is_sealed(value)}
        )
        return [self._open(event) for event in events]

    def _open(self, event: DomainEventProtocol[UUID]) -> DomainEventProtocol[UUID]:
        state = vars(event)
        for field, value in state.items():
            if _is_sealed(value):
                state[field] = self._unseal(event, field, value)
        if _is_profile_snapshot(event) and _is_sealed(state["state"].get("attributes")):
            inner = state["state"] = dict(state["state"])
            inner["attributes"] = self._unseal(event, SNAPSHOT_FIELD, inner["attributes"])
        if isinstance(event, CustomerProfile.DataErased):
            self.keys.forget(event.originator_id)
        return event

    def plain_state(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The stored JSON of an event with its sealed fields opened (still JSON: for tests and tools)."""
        state: dict[str, Any] = json.loads(stored_event.state)
        event = SimpleNamespace(
            originator_id=stored_event.originator_id, originator_version=stored_event.originator_version
        )
        for field, value in state.items():
            if isinstance(value, dict) and value.get(SEALED) == 1:
                key = self.keys.key(UUID(value["kid"]))
                if key is None:
                    state[field] = dict(ERASED)
                    continue
                nonce, sealed = _unb64(value["nonce"]), _unb64(value["ct"])
                state[field] = json.loads(AESGCM(key).decrypt(nonce, sealed, self._aad(event, field)))
        return state

    def _unseal(self, event: Any, field: str, envelope: dict[str, Any]) -> Any:
        key = self.keys.key(UUID(envelope["kid"]))
        if key is None:
            return dict(ERASED)
        try:
            nonce, sealed = _unb64(envelope["nonce"]), _unb64(envelope["ct"])
            plain = AESGCM(key).decrypt(nonce, sealed, self._aad(event, field))
        except InvalidTag:
            return dict(ERASED)
        return self.transcoder.decode(plain)

    @staticmethod
    def _aad(event: Any, field: str) -> bytes:
        # Binds the ciphertext to its place: a sealed field copied into another event does not open.
        return f"{event.originator_id}\n{event.originator_version}\n{field}".encode()


class ShreddingFactory(PostgresFactory):
    """The Postgres infrastructure, with mappers that seal personal data (``PERSISTENCE_MODULE`` topic)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = f"{self.env.name.lower() or 'stored'}_profile_keys"
        cache_size = int(self.env.get("PROFILE_KEY_CACHE_MAXSIZE") or ProfileKeys.CACHE_SIZE)
        self.profile_keys = ProfileKeys(self.datastore, table, cache_size)
        if self.env_create_table():
            self.profile_keys.create_table()

    def mapper(self, transcoder: Transcoder | None = None, mapper_class: Any = None) -> Any:
        return ShreddingMapper(
            transcoder or self.transcoder(),
            self.profile_keys,
            cipher=self.cipher(),
            compressor=self.compressor(),
        )


def _is_profile_snapshot(event: Any) -> bool:
    return isinstance(event, Snapshot) and event.topic == PROFILE_TOPIC


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SEALED) == 1


def erase_keys(app: Rulestream, integration_id: str) -> None:
    """Destroy the data keys of a profile (no-op on infrastructure without them, e.g. in-memory tests)."""
    keys = getattr(app.factory, "profile_keys", None)
    if isinstance(keys, ProfileKeys):
        keys.erase(profile_id(integration_id))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)
