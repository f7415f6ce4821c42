"""``api.limits.RequestChecks``: too large a body answers 413, NUL anywhere 400, the rest reaches the app whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.limits import RequestChecks


def _run(chunks: list[bytes], headers: list[tuple[bytes, bytes]], query: bytes) -> tuple[int, bytes]:
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"".join(received)})

    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/v2/events", "query_string": query, "headers": list(headers)}
    asyncio.run(RequestChecks(app, max_bytes=100)(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


@pytest.mark.parametrize(
    ("chunks", "headers", "query", "status"),
    [
        ([b'{"a": 1}'], [], b"", 200),
        ([b'{"a": ', b"1}"], [], b"", 200),  # in pieces, replayed whole
        ([b"x" * 60, b"x" * 60], [], b"", 413),  # no Content-Length: counted as it arrives
        ([b"{}"], [(b"content-length", b"101")], b"", 413),
        ([b"{}"], [(b"content-length", b"ten")], b"", 413),
        ([b'{"a": "\x00"}'], [], b"", 400),
        ([b'{"a": "\\u0000"}'], [], b"", 400),
        ([b'{"a": "\\\\u0000"}'], [], b"", 200),  # an escaped backslash, then "u0000"
        ([b"{}"], [], b"a=%00", 400),
    ],
)
def test_request_checks(chunks: list[bytes], headers: list[tuple[bytes, bytes]], query: bytes, status: int) -> None:
    answered, body = _run(chunks, headers, query)
    assert answered == status
    if status == 200:
        assert body == b"".join(chunks)
