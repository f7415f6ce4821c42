"""The global feed in log order, under concurrent writers: a position once handed out is never preceded
later."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from domain.anonymous import AnonymousEvent
from domain.application import Rulestream
from projections.audit.log import AuditLog
from projections.follower import wait_for
from tests.builders import session_changes


def test_the_feed_pages_through_every_event_in_position_order(app: Rulestream) -> None:
    start = app.recorder.max_notification_id() or 0
    for _ in range(3):
        app.update_session(f"s-{uuid.uuid4().hex[:10]}", session_changes(profile=None), "closed")
    log = AuditLog(app)
    first = log.feed(start, 4)
    second = log.feed(first.next_after or 0, 4)
    positions = [e["position"] for e in first.entries + second.entries]
    assert first.has_more and not second.has_more
    assert positions == sorted(positions) and len(positions) == 6


def test_a_writer_holding_the_lock_makes_later_writers_wait_so_positions_commit_in_order(
    app: Rulestream, superuser: psycopg.Connection[Any]
) -> None:
    log = AuditLog(app)
    head = app.recorder.max_notification_id() or 0
    early = AnonymousEvent.track("viewed", {})
    stored = app.mapper.to_stored_event(next(iter(early.collect_events())))
    pool = ThreadPoolExecutor(1)
    try:
        with superuser.transaction():
            # What the library's writers do: take the table lock, then insert (drawing the position now).
            superuser.execute("LOCK TABLE rulestream_events IN EXCLUSIVE MODE")
            row = superuser.execute(
                "INSERT INTO rulestream_events (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s) RETURNING notification_id",
                (stored.originator_id, stored.originator_version, stored.topic, stored.state),
            ).fetchone()
            late = pool.submit(
                app.update_session, f"s-{uuid.uuid4().hex[:10]}", session_changes(profile=None), None
            )
            wait_for(lambda: _waiting_for_the_events_lock(superuser))
            assert not late.done()
            assert (
                log.feed(head).entries == []
            )  # the early position is drawn but not committed: nothing to see
        outcome = late.result()
    finally:
        pool.shutdown()
    position = row[0] if row else 0
    assert min(outcome.positions) > position
    assert [e["position"] for e in log.feed(head).entries] == [position, *outcome.positions]


def test_a_reader_tailing_the_feed_during_concurrent_writes_misses_nothing(app: Rulestream) -> None:
    log = AuditLog(app)
    head = app.recorder.max_notification_id() or 0
    seen: list[int] = []
    writing = threading.Event()
    writing.set()

    def tail() -> None:
        after = head
        while True:
            still_writing = writing.is_set()
            page = log.feed(after, 7)
            seen.extend(e["position"] for e in page.entries)
            after = page.next_after or after
            if not still_writing and not page.has_more:
                return

    def write(n: int) -> None:
        app.update_session(f"s-{n}-{uuid.uuid4().hex[:8]}", session_changes(profile=f"p-{n % 3}"), "closed")

    reader = threading.Thread(target=tail)
    reader.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(40)))
    writing.clear()
    reader.join()

    stored = [e["position"] for e in log.feed(head, 1000).entries]
    assert seen == stored  # every committed event, each once, in order: none was skipped by committing late
    assert seen == sorted(set(seen))


def _waiting_for_the_events_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE relation = 'rulestream_events'::regclass AND NOT granted"
    ).fetchone()
    return bool(row and row[0])
