"""The hash chains of the streams: recomputed here, in Python, exactly as the insert trigger computes them.

    hash(v) = SHA-256( hash(v-1) | 32 zero bytes for v = 1
                       || "<stream uuid>\\n<version>\\n<topic>\\n" (UTF-8)
                       || the stored bytes of the event )

The identity and the topic are hashed with the bytes, so an event moved to another stream or version, or
relabelled as another class, breaks its link too. Each link is checked against the stored hash of the row
before it, so the first broken link names the row that was altered (or, when its hash was forged too, the row
after it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg import sql

from domain.application import Rulestream
from projections.audit.log import Row
from projections.audit.schema import GENESIS, names

MAX_BREAKS = 100


def event_hash(previous: bytes | None, stream_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    head = f"{stream_id}\n{version}\n{topic}\n".encode()
    return hashlib.sha256((previous or GENESIS) + head + state).digest()


@dataclass(frozen=True)
class Break:
    """The first broken link of a stream."""

    stream_id: UUID
    version: int
    position: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "streamId": str(self.stream_id),
            "version": self.version,
            "position": self.position,
            "reason": self.reason,
        }


@dataclass
class Verification:
    events: int = 0
    streams: int = 0
    broken: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "streams": self.streams,
            "broken": [b.to_json() for b in self.broken],
        }


def verify(app: Rulestream, progress: Callable[[int], None] = lambda _: None) -> Verification:
    """Recompute every chain; report the first broken link of each broken stream (at most ``MAX_BREAKS``)."""
    result = Verification()
    stream: UUID | None = None
    previous: Row | None = None
    broken_stream = False
    for row in _rows_by_stream(app):
        if row.stream_id != stream:
            stream, previous, broken_stream = row.stream_id, None, False
            result.streams += 1
        result.events += 1
        progress(1)
        if not broken_stream:
            reason = _link_fault(previous, row)
            if reason:
                broken_stream = True
                if len(result.broken) < MAX_BREAKS:
                    result.broken.append(Break(row.stream_id, row.version, row.position, reason))
        previous = row
    return result


def count(app: Rulestream) -> int:
    """How many events the log holds (for progress bars)."""
    recorder: Any = app.recorder
    with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT count(*) AS n FROM {events}").format(events=names(app)["events"]))
        row = cursor.fetchone()
        return int(row["n"]) if row else 0


def _link_fault(previous: Row | None, row: Row) -> str | None:
    expected_version = previous.version + 1 if previous else 1
    if row.version != expected_version:
        return f"version {row.version} follows {expected_version - 1}: events are missing"
    if row.hash is None:
        return "no hash stored"
    if (
        event_hash(previous.hash if previous else None, row.stream_id, row.version, row.topic, row.state)
        != row.hash
    ):
        return "hash mismatch: the event or its predecessor was altered"
    return None


def _rows_by_stream(app: Rulestream, batch: int = 2000) -> Iterator[Row]:
    """Every row in primary-key order (stream, version), through a server-side cursor."""
    recorder: Any = app.recorder
    statement = sql.SQL("SELECT * FROM {events} ORDER BY originator_id, originator_version").format(
        events=names(app)["events"]
    )
    with recorder.datastore.get_connection() as conn, conn.transaction():
        with conn.cursor(name="rulestream_verify") as cursor:
            cursor.itersize = batch
            cursor.execute(statement)
            for record in cursor:
                yield Row.of(record)
