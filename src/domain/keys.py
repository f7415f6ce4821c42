"""API keys: who may call which API. Keys are stored hashed; the plain key is shown once, when created.

Roles: ``integration`` (the Integration API and Gameball ingest), ``management`` (rules, attributes, keys, read
models), ``auditor`` (read-only history, events log, projections status). Every key ever issued stays in the key
ring's history; revoking one records that it may no longer be used.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.base import Stream, natural_id
from domain.errors import Conflict, InvalidInput, NotFound

ROLES = ("integration", "management", "auditor")
KEY_RING_ID = natural_id("key-ring", "default")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(role: str) -> str:
    """A fresh secret key; the prefix tells people which role it has, the rest is 256 random bits."""
    return f"rs_{role[:3]}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    key_hash: str
    created: datetime
    revoked: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


class KeyRing(Stream):
    """Every API key of the installation."""

    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}

    class Started(Stream.Created):
        pass

    class KeyIssued(Stream.Event):
        name: str
        role: str
        key_hash: str

        def apply(self, aggregate: Any) -> None:
            aggregate.keys[self.name] = ApiKey(self.name, self.role, self.key_hash, self.timestamp)

    class KeyRevoked(Stream.Event):
        name: str

        def apply(self, aggregate: Any) -> None:
            key = aggregate.keys[self.name]
            aggregate.keys[self.name] = ApiKey(key.name, key.role, key.key_hash, key.created, self.timestamp)

    @classmethod
    def start(cls) -> KeyRing:
        ring: KeyRing = cls._create(cls.Started, id=KEY_RING_ID)
        return ring

    def issue(self, name: str, role: str, key: str) -> None:
        """Record a new key by its hash. Names are unique, even after revocation (history refers to them)."""
        if role not in ROLES:
            raise InvalidInput.at("/role", f"unknown role '{role}': one of {', '.join(ROLES)}")
        if not NAME_PATTERN.match(name):
            raise InvalidInput.at("/name", "a key name is 1-100 letters, digits, and _ . @ -")
        if name in self.keys:
            raise Conflict(f"a key named '{name}' exists already")
        self.trigger_event(self.KeyIssued, name=name, role=role, key_hash=hash_key(key))

    def revoke(self, name: str) -> None:
        key = self.keys.get(name)
        if key is None:
            raise NotFound(f"no key named '{name}'")
        if key.active:
            self.trigger_event(self.KeyRevoked, name=name)

    def find(self, key: str) -> ApiKey | None:
        """The active key with this secret, if any."""
        digest = hash_key(key)
        for candidate in self.keys.values():
            if candidate.active and secrets.compare_digest(candidate.key_hash, digest):
                return candidate
        return None
