"""The edge's checks of a request, before anything reads it: its size (413 over the limit), NUL characters (400),
and in a JSON body numbers more precise than a number holds and strings that are not Unicode (400 at their
pointers)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from pydantic import AfterValidator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.wire.json import dumps
from domain.errors import pointer

MAX_INT = 2**63 - 1
"""The largest integer a query or path parameter may be: PostgreSQL's ``bigint`` (larger ones are a 400)."""

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Talon.One's largest legal request (1,000 cart items with attributes) fits with room to spare."""


NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A JSON ``\\u0000`` escape (not an escaped backslash followed by ``u0000``)."""


EXACT_DIGITS = 15
"""Every decimal of at most this many significant digits is the shortest text of a 64-bit float (Talon.One's
numbers, its clients'): such numbers are never checked further."""

SUSPECT = re.compile(rb"[0-9.]{%d,}|\\u[dD][89a-fA-F]" % (EXACT_DIGITS + 1))
"""What an inexact number or an escaped UTF-16 surrogate (perhaps a lone one) needs in the raw body: bodies
without it (nearly all) are not parsed here."""


class _Inexact(str):
    """A number token of a body that no 64-bit float stands for."""


def _number(token: str) -> Any:
    """``token`` unless a 64-bit float reads it as a number of another text: what a client computed in floating
    point (``30.000000000000004``) is exact, ``0.1000000000000000055511`` or ``2**64 + 1`` written out is not."""
    try:
        exact = Decimal(token) == Decimal(repr(float(token)))
    except (ArithmeticError, ValueError):
        exact = False
    return 0 if exact else _Inexact(token)


def body_problems(body: bytes) -> list[dict[str, Any]]:
    """The numbers of a JSON body that no 64-bit float stands for exactly (they would be rounded on their way), and
    its strings (keys included) with a lone UTF-16 surrogate, each as an ``ErrorResponse`` error at its pointer.
    A body that is not JSON has none: the endpoint refuses it with its own message."""
    if not SUSPECT.search(body):
        return []
    try:
        value = json.loads(body, parse_int=_number, parse_float=_number)
    except (ValueError, RecursionError):
        return []
    problems: list[dict[str, Any]] = []
    _inspect(value, "", problems)
    return problems


def _inspect(value: Any, where: str, problems: list[dict[str, Any]]) -> None:
    if isinstance(value, _Inexact):
        details = (f"{value} is not a number a 64-bit float holds exactly (at most 15 to 17 significant digits); "
                   "send it rounded, or as a string")  # fmt: skip
        problems.append({"title": "Number too precise", "details": details, "source": {"pointer": where or "/"}})
    elif isinstance(value, str):
        if not _unicode(value):
            details = "a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape) is not a character"
            problems.append({"title": "Invalid string", "details": details, "source": {"pointer": where or "/"}})
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _inspect(item, f"{where}/{i}", problems)
    elif isinstance(value, dict):
        for key, item in value.items():
            named = _unicode(key)
            at = where + pointer(key if named else key.encode(errors="backslashreplace").decode())
            if not named:
                details = "a lone UTF-16 surrogate in a name is not a character"
                problems.append({"title": "Invalid name", "details": details, "source": {"pointer": at}})
            _inspect(item, at, problems)


def is_text(text: str) -> bool:
    """Whether ``text`` is Unicode every store of ours can hold: no lone UTF-16 surrogate, no NUL."""
    return "\x00" not in text and _unicode(text)


def _unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


ENCODED_SLASH = "\ue000"
"""What a "/" sent as ``%2F`` inside a path segment is while the request is routed (a private-use character):
the server decodes ``%2F`` before routing, and an id such as ``order-1/reopen`` would otherwise be read as the
reopen endpoint of ``order-1``. ``SLASHES`` turns it back in the id parameters."""


def _restore_slashes(value: str) -> str:
    return value.replace(ENCODED_SLASH, "/")


SLASHES = AfterValidator(_restore_slashes)
"""For the path parameters that are integration ids (Talon.One's ids may hold "/")."""


def _routed_path(scope: Scope) -> Scope:
    """The scope to route: its path with each encoded slash kept apart from the path's own slashes."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None or b"%2f" not in raw.lower():
        return scope
    text = raw.decode("latin-1").replace("%2F", "%EE%80%80").replace("%2f", "%EE%80%80")  # U+E000 in UTF-8
    return {**scope, "path": unquote(text)}


class RequestChecks:
    """The edge's checks of a request, before anything else reads it:

    - **size**: a body over ``max_bytes`` (by its ``Content-Length``, or as it arrives) answers 413;
    - **NUL**: NUL characters anywhere (path, query, JSON strings) answer 400. The log would store them (its
      states are bytes), but PostgreSQL text and jsonb cannot hold them: every read model and the webhook
      follower would fail on that event forever. Refused here, nothing is recorded.
    - **numbers and strings** of a JSON body (``body_problems``): a number with more significant digits than it
      holds exactly, and a lone UTF-16 surrogate (no UTF-8 can store it), answer 400 at their pointers. Parsers
      would round the one silently and fail to store the other deep inside a command.

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
        scope = _routed_path(scope)
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
        problems = body_problems(body)
        if problems:
            await _refuse_body(send, problems)
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
    await _refuse_body(send, [{"title": "Invalid input", "details": message, "source": {}}], message)


async def _refuse_body(send: Send, problems: list[dict[str, Any]], message: str = "Invalid request body") -> None:
    body = dumps({"message": message, "errors": problems, "StatusCode": 400})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
