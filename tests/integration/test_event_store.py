"""The event store on the real PostgreSQL: atomic appends, reloads, and concurrent writers."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from api.db import eventsourcing_env
from api.settings import Settings
from api.store import Done, Queued
from domain.application import Rulestream, profile_id, session_id
from domain.errors import InvalidTransition
from tests.builders import cart_item, session_changes


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_a_session_and_its_profile_are_appended_together_and_reload(settings: Settings, rulestream: Rulestream) -> None:
    sid, pid = new_id("s"), new_id("p")
    out = rulestream.update_session(sid, session_changes(cart_item("a", "19.99", 2), profile=pid), "closed")
    assert len(out.positions) == len(out.events) == 5  # session created, closed; profile registered, session started, sale counted
    assert out.positions == sorted(out.positions)

    fresh = Rulestream(env=eventsourcing_env(settings))
    session = fresh.get_session(sid)
    profile = fresh.get_profile(pid)
    assert session.state == "closed" and session.total == Decimal("39.98")
    assert profile is not None and profile.total_sales == Decimal("39.98")
    fresh.close()


def test_a_refused_command_records_nothing(rulestream: Rulestream) -> None:
    sid = new_id("s")
    rulestream.update_session(sid, session_changes(profile=new_id("p")), "closed")
    head = rulestream.recorder.max_notification_id()
    with pytest.raises(InvalidTransition):
        rulestream.update_session(sid, {}, "closed")
    assert rulestream.recorder.max_notification_id() == head


def test_twenty_parallel_updates_of_one_session_all_succeed_in_order(settings: Settings) -> None:
    sid = new_id("s")
    apps = [Rulestream(env=eventsourcing_env(settings)) for _ in range(4)]
    apps[0].update_session(sid, {"cartItems": []}, None)

    def add(n: int) -> None:
        app = apps[n % len(apps)]
        # Each update reads the cart and appends one line: a lost update would drop a line.
        app._retrying(lambda: app._commit(_add_line(app, sid, n), None, dry=False))

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(add, range(20)))
    session = apps[0].get_session(sid)
    assert session.version == 21
    assert sorted(i.sku for i in session.cart_items) == sorted(f"sku-{n}" for n in range(20))
    for app in apps:
        app.close()


def _add_line(app: Rulestream, sid: str, n: int):  # type: ignore[no-untyped-def]
    session = app.get_session(sid)
    items = [i.to_record() for i in session.cart_items]
    session.update({"cartItems": [*items, cart_item(f"sku-{n}", 1, 1)]})
    return session


def test_parallel_closes_of_sessions_of_one_profile_all_count(settings: Settings) -> None:
    pid = new_id("p")
    app = Rulestream(env=eventsourcing_env(settings))
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda n: app.update_session(f"{pid}-s{n}", session_changes(profile=pid), "closed"), range(10)))
    profile = app.get_profile(pid)
    assert profile is not None and profile.closed_sessions == 10 and profile.total_sales == Decimal(100)
    assert app.repository.get(profile_id(pid)).version == 21  # registered, 10 × (session started, sale counted)
    assert app.repository.get(session_id(f"{pid}-s0")).version == 2
    app.close()


def test_a_command_on_a_cached_session_that_another_process_changed_conflicts_and_retries_on_fresh_state(
    settings: Settings,
) -> None:
    sid, pid = new_id("s"), new_id("p")
    ours, theirs = Rulestream(env=eventsourcing_env(settings)), Rulestream(env=eventsourcing_env(settings))
    try:
        assert ours.sole_writer  # trusts its cache: commands load sessions without asking for newer events
        ours.update_session(sid, session_changes(cart_item("a", 10, 1), profile=pid), "open")
        theirs.update_session(sid, session_changes(cart_item("b", 5, 1), profile=pid), None)  # our cache is stale
        assert [i.sku for i in ours.get_session(sid).cart_items] == ["b"]  # a query reads the newer events
        ours.repository.cache.put(session_id(sid), ours.repository.get(session_id(sid), version=1))  # type: ignore[union-attr]
        closed = ours.update_session(sid, {}, "closed")  # decided on version 1, refused, retried on version 2
        assert closed.session is not None and closed.session.version == 3
        assert [i.sku for i in closed.session.cart_items] == ["b"] and closed.session.state == "closed"
        profile = theirs.get_profile(pid)
        assert profile is not None and profile.closed_sessions == 1 and profile.total_sales == Decimal(5)
    finally:
        ours.close()
        theirs.close()


def test_a_conflict_in_a_group_commit_fails_only_its_command_and_leaves_no_transaction_open(
    own_rulestream: Rulestream,
) -> None:
    # A database of its own: the events written here have no domain class, and other tests read the whole log.
    recorder: Any = own_rulestream.recorder
    taken = uuid.uuid4()
    recorder._write([StoredEvent(taken, 1, "test:Taken", b"{}")])
    before = recorder.max_notification_id()
    ok, clash = Done(), Done()
    fresh = uuid.uuid4()
    recorder._commit([Queued([StoredEvent(fresh, 1, "test:Fresh", b"{}")], (), ok),
                      Queued([StoredEvent(taken, 1, "test:Again", b"{}")], (), clash)])  # fmt: skip
    assert len(ok.result()) == 1 and ok.result()[0] > before
    assert isinstance(clash.exception(), IntegrityError)
    assert [e.topic for e in recorder.select_events(fresh)] == ["test:Fresh"]
    assert [e.topic for e in recorder.select_events(taken)] == ["test:Taken"]
    with recorder.datastore.get_connection() as conn:  # the pool's connections came back idle
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        row = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity "
            "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        ).fetchone()
        assert row is not None and row["n"] == 0


def test_a_group_commit_is_one_call_of_a_function_that_locks_the_log_and_notifies(own_rulestream: Rulestream) -> None:
    recorder: Any = own_rulestream.recorder
    recorder._write([StoredEvent(uuid.uuid4(), 1, "test:First", b"{}")])
    table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
    with recorder.datastore.get_connection() as conn:
        functions = conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'rulestream_append_%'").fetchall()
    assert len(functions) == 1

    listener = psycopg.connect(recorder.datastore.pool.conninfo, autocommit=True, **recorder.datastore.pool.kwargs)
    holder = psycopg.connect(recorder.datastore.pool.conninfo, **recorder.datastore.pool.kwargs)
    try:
        listener.execute(f'LISTEN "{recorder.channel_name}"')
        holder.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")  # what every writer of the log takes first
        with ThreadPoolExecutor(1) as pool:
            written = pool.submit(recorder._write, [StoredEvent(uuid.uuid4(), 1, "test:Second", b"{}")])
            with pytest.raises(TimeoutError):
                written.result(timeout=0.5)  # waits for the lock: positions still commit in order
            holder.rollback()
            assert len(written.result(timeout=10)) == 1
        assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == [recorder.channel_name]
    finally:
        listener.close()
        holder.close()
