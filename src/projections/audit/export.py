"""Exports for external auditors: one stored event per line (NDJSON), with its hash and its stored bytes, so
that the chains can be checked without access to the database (see ``chain`` for the formula).

A stream, a profile with every session it started, or a time range; read a batch at a time, never all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.application import profile_id, session_id
from projections.audit.log import MAX_LIMIT, AuditLog, recorded_at

Progress = Callable[[int], None]


def streams(
    log: AuditLog, stream_ids: list[UUID], progress: Progress = lambda _: None
) -> Iterator[dict[str, Any]]:
    """Every event of each stream in turn, in version order, with its effects."""
    for stream_id in stream_ids:
        after = 0
        while rows := log.stream_rows(stream_id, after, MAX_LIMIT):
            yield from log.describe(rows, with_effects=True, stored=True)
            progress(len(rows))
            after = rows[-1].version


def profile_and_sessions(log: AuditLog, integration_id: str) -> list[UUID]:
    """The profile's stream and the stream of every session that named it, in the order they started."""
    ids = [profile_id(integration_id)]
    for row in log.whole_stream(ids[0]):
        entry = log.entry(row)
        started = (
            entry["data"].get("session_id") if entry["type"] == "CustomerProfile.SessionStarted" else None
        )
        if started and session_id(started) not in ids:
            ids.append(session_id(started))
    return ids


def time_range(
    log: AuditLog, since: datetime | None, until: datetime | None, progress: Progress = lambda _: None
) -> Iterator[dict[str, Any]]:
    """Every event recorded in [since, until), in log order (a scan of the log: time is not indexed)."""
    since, until = _utc(since), _utc(until)
    after = 0
    while rows := log.feed_rows(after, MAX_LIMIT):
        for entry in log.describe(rows, with_effects=True, stored=True):
            moment = recorded_at(entry)
            if (
                moment is not None
                and (since is None or moment >= since)
                and (until is None or moment < until)
            ):
                yield entry
        progress(len(rows))
        after = rows[-1].position


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
