"""``Idempotency-Key`` on every write: the same key and body answer the stored response and record nothing new.

Keys are scoped to the caller's credentials and kept for 48 hours. A request holding a key takes a PostgreSQL
advisory lock on it for its duration, so concurrent requests with one key run one at a time: the first records,
the others answer what it stored. The same key with a different body (or method or path) answers 409; bodies are
compared as JSON (key order and white space do not matter, as a client that serialises again would expect). Only
successful responses are stored: a refused request (4xx) recorded nothing, so the client may correct it and send
it again under the same key, and a failed one (5xx) may simply be tried again.
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.wire.json import dumps
from domain.application import Rulestream

WRITE_METHODS = {b"POST", b"PUT", b"PATCH", b"DELETE"}
MAX_KEY_LENGTH = 255
KEEP_HOURS = 48
LOCK_CLASS = 7_003

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope text NOT NULL, key text NOT NULL, fingerprint text NOT NULL, status int NOT NULL,
    headers jsonb NOT NULL, body bytea NOT NULL, created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key));
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created);
"""


def _error(status: int, message: str, pointer: str | None = None) -> tuple[int, bytes]:
    source = {"parameter": "Idempotency-Key"} if pointer is None else {"pointer": pointer}
    body = {"message": message, "errors": [{"title": message, "details": message, "source": source}],
            "StatusCode": status}  # fmt: skip
    return status, dumps(body)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, rulestream: Rulestream) -> None:
        self.app = app
        self.datastore: Any = rulestream.recorder.datastore  # type: ignore[attr-defined]
        self._ready = False
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _setup(self) -> None:
        if not self._ready:
            with self.datastore.get_connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
                conn.execute(SCHEMA)
                conn.execute(f"DELETE FROM idempotency_keys WHERE created < now() - interval '{KEEP_HOURS} hours'")
            self._ready = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].encode() not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key_bytes = headers.get(b"idempotency-key")
        if key_bytes is None:
            await self.app(scope, receive, send)
            return
        key = key_bytes.decode("latin-1")
        if not key or len(key) > MAX_KEY_LENGTH:
            await _send(send, *_error(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters"))
            return
        body = await _read_body(receive)
        credentials = headers.get(b"authorization", b"") + b"|" + headers.get(b"apikey", b"")
        request_scope = hashlib.sha256(credentials).hexdigest()
        fingerprint = hashlib.sha256(
            b"\n".join([scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""),
                        _canonical(body)])  # fmt: skip
        ).hexdigest()
        await run_in_threadpool(self._setup)
        # Requests of this process wait here, without holding a database connection; the advisory lock below
        # orders them against other processes.
        local = self._locks.setdefault((request_scope, key), asyncio.Lock())
        try:
            async with local:
                await self._once(scope, send, request_scope, key, fingerprint, body)
        finally:
            if not local.locked():
                self._locks.pop((request_scope, key), None)

    async def _once(
        self, scope: Scope, send: Send, request_scope: str, key: str, fingerprint: str, body: bytes
    ) -> None:
        conn_cm = self.datastore.get_connection()
        conn = await run_in_threadpool(conn_cm.__enter__)
        lock = zlib.crc32(f"{request_scope}:{key}".encode()) - 2**31
        try:
            await run_in_threadpool(conn.execute, "SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, lock))
            try:
                stored = await run_in_threadpool(
                    lambda: conn.execute(
                        "SELECT fingerprint, status, headers, body FROM idempotency_keys WHERE scope = %s AND key = %s",
                        (request_scope, key),
                    ).fetchone()
                )
                if stored is not None:
                    if stored["fingerprint"] != fingerprint:
                        await _send(send, *_error(409, "This Idempotency-Key was used with another request"))
                    else:
                        replay = [(k.encode(), v.encode()) for k, v in stored["headers"]]
                        replay.append((b"idempotent-replayed", b"true"))
                        await _send(send, stored["status"], bytes(stored["body"]), replay)
                    return
                captured = await _capture(self.app, scope, body, send)
                if captured is not None and captured[0] < 400:
                    status, response_headers, response_body = captured
                    await run_in_threadpool(
                        conn.execute,
                        "INSERT INTO idempotency_keys (scope, key, fingerprint, status, headers, body) "
                        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (request_scope, key, fingerprint, status, orjson.dumps(response_headers).decode(),
                         response_body),
                    )  # fmt: skip
            finally:
                await run_in_threadpool(conn.execute, "SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, lock))
        finally:
            await run_in_threadpool(conn_cm.__exit__, None, None, None)


def _canonical(body: bytes) -> bytes:
    """A JSON body as one text for its meaning (keys sorted, no white space, ``10.0`` as ``10``); any other body
    as it is."""
    try:
        return orjson.dumps(_same_numbers(orjson.loads(body)), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, TypeError):
        return body


def _same_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _same_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_numbers(v) for v in value]
    return value


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _capture(app: ASGIApp, scope: Scope, body: bytes, send: Send) -> tuple[int, list[Any], bytes] | None:
    """Run the request with ``body``, passing the response through while keeping a copy."""
    sent = False
    status = 0
    headers: list[tuple[str, str]] = []
    parts: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def tee(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.extend(
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in message.get("headers", [])
                if k.lower() not in (b"content-length", b"date", b"server")
            )
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
        await send(message)

    await app(scope, receive, tee)
    return status, headers, b"".join(parts)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    out = [(k, v) for k, v in (headers or []) if k.lower() != b"content-length"]
    if not any(k.lower() == b"content-type" for k, _ in out):
        out.append((b"content-type", b"application/json"))
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})
