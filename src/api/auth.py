"""API keys on the wire: ``Authorization: ApiKey-v1 <key>`` (Integration API) or ``ManagementKey-v1 <key>``.

Keys are looked up by their hash in a copy of the key ring that is refreshed every second, and at once (at most
ten times a second) when an unknown key is presented, so a new key works immediately and a revoked one stops
working within a second.
"""

from __future__ import annotations

import threading
import time

from domain.application import Rulestream
from domain.errors import Forbidden, Unauthorized
from domain.keys import ApiKey, hash_key

SCHEMES = ("apikey-v1", "managementkey-v1", "bearer")
REFRESH_SECONDS = 1.0
MISS_REFRESH_SECONDS = 0.1


class KeyCache:
    def __init__(self, app: Rulestream) -> None:
        self._app = app
        self._by_hash: dict[str, ApiKey] = {}
        self._loaded = 0.0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        loaded = self._loaded
        with self._lock:
            if self._loaded != loaded:
                return  # another thread refreshed while this one waited: one query serves them all
            self._by_hash = {k.key_hash: k for k in self._app.keys() if k.active}
            self._loaded = time.monotonic()

    def _stale(self, digest: str) -> bool:
        age = time.monotonic() - self._loaded
        return age > REFRESH_SECONDS or (digest not in self._by_hash and age > MISS_REFRESH_SECONDS)

    def stale(self, authorization: str | None) -> bool:
        """Whether the copy must be refreshed before ``authenticate`` can answer for this header."""
        secret = _secret(authorization)
        return secret is not None and self._stale(hash_key(secret))

    def find(self, key: str, *, refresh: bool = True) -> ApiKey | None:
        digest = hash_key(key)
        if refresh and self._stale(digest):
            self.refresh()
        return self._by_hash.get(digest)

    def authenticate(self, authorization: str | None, *roles: str) -> ApiKey:
        """The key presented in an ``Authorization`` header, if it is known and has one of ``roles``."""
        if not authorization:
            raise Unauthorized("Missing Authorization header: use 'ApiKey-v1 <key>' or 'ManagementKey-v1 <key>'")
        secret = _secret(authorization)
        if secret is None:
            raise Unauthorized("Malformed Authorization header: use 'ApiKey-v1 <key>' or 'ManagementKey-v1 <key>'")
        key = self.find(secret)
        if key is None:
            raise Unauthorized("Unknown or revoked API key")
        if key.role not in roles:
            raise Forbidden(f"A key of role '{key.role}' may not do this (needs {' or '.join(roles)})")
        return key


def _secret(authorization: str | None) -> str | None:
    """The key in an ``Authorization`` header of a known scheme, or None."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    return secret.strip() if scheme.lower() in SCHEMES and secret.strip() else None
