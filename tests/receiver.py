"""A webhook receiver for tests: a local HTTP server on 127.0.0.1 that records what it is sent.

Infrastructure, like the server fixture: tests start one with ``Receiver.start(fail_first=n)``, register its
``url``, and read ``received`` (each POST's headers and decoded body), in arrival order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)

    def signed_by(self, secret: str) -> bool:
        """Whether the signature header is the HMAC-SHA256 of ``<timestamp>.<body>`` with ``secret``."""
        timestamp = self.headers["rulestream-timestamp"]
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + self.raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers["rulestream-signature"], f"sha256={expected}")


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    fail_first: int = 0
    received: list[Delivery] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    @classmethod
    def start(cls, fail_first: int = 0) -> Receiver:
        receiver: Receiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    if receiver.refused < receiver.fail_first:
                        receiver.refused += 1
                        status = 503
                    else:
                        receiver.received.append(
                            Delivery({k.lower(): v for k, v in self.headers.items()}, raw)
                        )
                        status = 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        receiver = cls(ThreadingHTTPServer(("127.0.0.1", 0), Handler), fail_first)
        threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
        return receiver

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(
        self, count: int, where: Callable[[Delivery], bool] = lambda _: True, timeout: float = 30.0
    ) -> list[Delivery]:
        """The deliveries ``where`` says, once at least ``count`` have arrived (else ``TimeoutError``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [d for d in self.received if where(d)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"{len(found)} of {count} deliveries arrived")
