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

A new customer's key is made in the process and written in the transaction of the first events sealed with it
(``ShreddingEventStore``): a customer's first command costs no round trip of its own for the key.

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
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    Mapper,
    Notification,
    Recording,
    StoredEvent,
    Transcoder,
)
from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from eventsourcing.utils import get_topic
from psycopg import sql

from api.store import GroupCommitRecorder, KeyRow
from domain.application import Rulestream, profile_id
from domain.profile import ERASED, CustomerProfile
from domain.session import CustomerSession
from projections import jsonb

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
        """A new customer's key, or the one a concurrent command made; rendered once. Run when a key is needed
        outside a write that registers the profile (e.g. a session's custom event for a customer not yet
        registered, or the retry after a refused made key): ``ShreddingEventStore`` makes the others itself.
        One statement, its own transaction (the pool's connections autocommit), with no flush
        of its own (``set_config`` local to that transaction, in force at its commit): the event sealed with
        this key commits after it, and that commit flushes the log up to and including this key (one fsync per
        command, not two). One round trip instead of four (begin, set, insert, commit)."""
        self._lock = threading.Lock()
        self._by_profile: dict[UUID, tuple[float, UUID, bytes]] = {}
        self._by_id: dict[UUID, tuple[float, bytes | None]] = {}
        self._refused: set[UUID] = set()
        """Profiles whose key made with a command did not commit: the next one is asked of the database (a key
        may have been made for them meanwhile, e.g. by a session's event)."""

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key_id uuid PRIMARY KEY, "
                    "profile_id uuid NOT NULL UNIQUE, "
                    "data_key bytea NOT NULL, created timestamptz NOT NULL DEFAULT now())"
                ).format(self.table)
            )

    def cached_key_for(self, profile: UUID) -> tuple[UUID, bytes] | None:
        cached = self._by_profile.get(profile)
        return (cached[1], cached[2]) if cached and cached[0] > time.monotonic() else None

    def make(self, profile: UUID) -> tuple[UUID, bytes] | None:
        """A new key for a profile new to the log, to be written with its first events (``ShreddingEventStore``),
        or ``None`` if the database must be asked (the profile's last made key did not commit)."""
        if profile in self._refused:
            return None
        return uuid4(), AESGCM.generate_key(bit_length=256)

    def made(self, rows: Sequence[KeyRow], *, committed: bool) -> None:
        """Keys made with a command: cache them if its write committed, else ask the database next time."""
        with self._lock:
            if not committed and len(self._refused) >= self.cache_size:
                self._refused.clear()
            for _, profile, _ in rows:
                (self._refused.add if not committed else self._refused.discard)(profile)
        if committed:
            for key_id, profile, key in rows:
                self._remember(profile, key_id, key)

    def key_for(self, profile: UUID) -> tuple[UUID, bytes]:
        """The profile's live key (``key_id``, key), created if it has none."""
        cached = self.cached_key_for(profile)
        if cached:
            return cached
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
        with self._lock:
            self._refused.discard(profile)
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
        return self.sealed(domain_event, None)

    def sealed(self, domain_event: DomainEventProtocol[UUID], making: Making | None) -> StoredEvent:
        """The stored event, its personal field sealed; with ``making``, under a key made for a profile new to the
        log if it has none cached (recorded in ``making.made``)."""
        if _is_profile_snapshot(domain_event):
            return super().to_stored_event(self._seal_snapshot(domain_event))
        personal = personal_data(domain_event)
        if personal is None:
            return super().to_stored_event(domain_event)
        owner, field = personal
        state = dict(vars(domain_event))
        state[field] = self._seal(owner, domain_event, field, state[field], making)
        clone = object.__new__(type(domain_event))
        object.__setattr__(clone, "__dict__", state)
        return super().to_stored_event(clone)

    def _key_for(self, owner: UUID, making: Making | None) -> tuple[UUID, bytes]:
        if making is None or owner not in making.new:
            return self.keys.key_for(owner)
        made = making.made.get(owner) or self.keys.cached_key_for(owner)
        if made is None:
            made = self.keys.make(owner)
            if made is None:
                return self.keys.key_for(owner)
            making.made[owner] = made
        return made

    def _seal(self, owner: UUID, event: Any, field: str, value: Any, making: Making | None = None) -> dict[str, Any]:
        key_id, key = self._key_for(owner, making)
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


class Making:
    """The keys a write makes: for the profiles its events register (``new``), those made so far (``made``)."""

    def __init__(self, new: set[UUID]) -> None:
        self.new = new
        self.made: dict[UUID, tuple[UUID, bytes]] = {}

    def rows(self) -> list[KeyRow]:
        return [(key_id, profile, key) for profile, (key_id, key) in self.made.items()]


class ShreddingEventStore(EventStore[UUID]):
    """The library's event store; a profile's first write also writes its new data key, in the same transaction.

    A profile is new to the log when the write registers it (its version 1). Its key is then made here, not
    asked of the database (a round trip of its own, before the write's): unless a key was made for it meanwhile
    (by another process, or by a session's event before the profile registered), whose unique profile fails
    the write as a version conflict does. The retry asks the database for that key (``ProfileKeys.made``)."""

    def put(self, domain_events: Sequence[DomainEventProtocol[UUID]], **kwargs: Any) -> list[Recording[UUID]]:
        mapper = self.mapper
        new = {
            e.originator_id
            for e in domain_events
            if isinstance(e, CustomerProfile.Registered) and e.originator_version == 1
        }
        recorder = self.recorder
        if not new or not isinstance(mapper, ShreddingMapper) or not isinstance(recorder, GroupCommitRecorder):
            return super().put(domain_events, **kwargs)
        making = Making(new)
        stored = [mapper.sealed(e, making) for e in domain_events]
        rows = making.rows()
        try:
            ids = recorder.insert_events(stored, keys=rows, **kwargs)
        except IntegrityError:
            mapper.keys.made(rows, committed=False)
            raise
        mapper.keys.made(rows, committed=True)
        return [
            Recording(
                d,
                Notification(
                    originator_id=s.originator_id,
                    originator_version=s.originator_version,
                    topic=s.topic,
                    state=s.state,
                    id=n,
                ),
            )
            for d, s, n in zip(domain_events, stored, ids or (), strict=True)
        ]


class ShreddingFactory(PostgresFactory):
    """The Postgres infrastructure, with mappers that seal personal data (``PERSISTENCE_MODULE`` topic)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        jsonb.install()  # every process's connections come from here
        self.keys_table = f"{self.env.name.lower() or 'stored'}_profile_keys"
        cache_size = int(self.env.get("PROFILE_KEY_CACHE_MAXSIZE") or ProfileKeys.CACHE_SIZE)
        self.profile_keys = ProfileKeys(self.datastore, self.keys_table, cache_size)
        if self.env_create_table():
            self.profile_keys.create_table()

    def process_recorder(self) -> Any:
        recorder = super().process_recorder()
        if isinstance(recorder, GroupCommitRecorder):
            recorder.use_keys_table(self.keys_table)
        return recorder

    def event_store(self, mapper: Any = None, recorder: Any = None) -> Any:
        return ShreddingEventStore(mapper=mapper or self.mapper(), recorder=recorder or self.application_recorder())

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
