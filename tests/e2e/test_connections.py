"""Connections: a pooled client connection, idle for a while, still carries the next request."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from tests.conftest import Server


def response(conn: socket.socket) -> bytes:
    """One whole HTTP response (headers, then a body of Content-Length bytes); b"" if the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return data


def test_an_idle_keep_alive_connection_is_not_closed_under_the_client_after_five_seconds(server: Server) -> None:
    # uvicorn closes idle connections after 5 s by default: a client reusing its pooled connection just then gets
    # a reset instead of an answer. We keep them for api.cli.KEEP_ALIVE_SECONDS.
    address = urlsplit(server.url)
    request = f"GET /health HTTP/1.1\r\nHost: {address.hostname}\r\n\r\n".encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(request)
        assert response(conn).startswith(b"HTTP/1.1 200")
        time.sleep(6)
        conn.sendall(request)
        assert response(conn).startswith(b"HTTP/1.1 200")  # b"" had the server closed it
