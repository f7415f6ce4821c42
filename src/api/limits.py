"""The edge's checks of a request: its size (413 over the limit) and NUL characters (400), before anything reads it."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.wire.json import dumps

MAX_INT = 2**63 - 1
"""The largest integer a query or path parameter may be: PostgreSQL's ``bigint`` (larger ones are a 400)."""

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Talon.One's largest legal request (1,000 cart items with attributes) fits with room to spare."""


NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A JSON ``\\u0000`` escape (not an escaped backslash followed by ``u0000``)."""


class RequestChecks:
    """The edge's checks of a request, before anything else reads it:

    - **size**: a body over ``max_bytes`` (by its ``Content-Length``, or as it arrives) answers 413;
    - **NUL**: NUL characters anywhere (path, query, JSON strings) answer 400. The log would store them (its
      states are bytes), but PostgreSQL text and jsonb cannot hold them: every read model and the webhook
      follower would fail on that event forever. Refused here, nothing is recorded.

    One middleware: it reads the whole body (bodies are small, the limit caps them) and hands the application a
    replay of it, so nothing wraps the response's messages (two middlewares wrapped every receive and send).
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await self._refuse(send)
                return
        query: bytes = scope.get("query_string", b"")
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            await _refuse_nul(send, "the path or query")
            return
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = messages[0].get("body", b"") if len(messages) == 1 else b"".join(m.get("body", b"") for m in messages)
        if b"\x00" in body or (b"\\u0000" in body and NUL_ESCAPE.search(body)):
            await _refuse_nul(send, "the body")
            return
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send: Send) -> None:
        message = f"The request body is larger than {self.max_bytes} bytes"
        body = dumps({"message": message, "errors": [{"title": "Request too large", "details": message,
                                                      "source": {}}], "StatusCode": 413})  # fmt: skip
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _refuse_nul(send: Send, where: str) -> None:
    message = f"NUL characters are not allowed in {where}"
    problem = {"title": "Invalid input", "details": message, "source": {}}
    body = dumps({"message": message, "errors": [problem], "StatusCode": 400})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
