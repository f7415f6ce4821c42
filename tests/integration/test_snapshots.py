"""Profile snapshots: a long history loads from its latest snapshot, whose personal data is sealed and shredded."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from api.db import eventsourcing_env
from api.settings import Settings
from api.shredding import erase_keys
from domain.application import PROFILE_SNAPSHOT_EVERY, Rulestream, profile_id
from tests.builders import cart_item, session_changes


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


NAME = f"name_{uuid.uuid4().hex[:6]}"
declared: list[str] = []


def loyal_customer(app: Rulestream, sessions: int) -> str:
    pid = new_id("p")
    if not declared:  # once for the test database
        declared.append(NAME)
        app.create_attribute("CustomerProfile", NAME, "string")
    app.update_profile(pid, {NAME: "Ann Example"}, run_rule_engine=False)
    for n in range(sessions):
        app.update_session(f"{pid}-s{n}", session_changes(cart_item("a", 10, 1), profile=pid), "closed")
    return pid


def test_a_long_profile_history_is_snapshotted_and_loads_from_the_snapshot(settings: Settings) -> None:
    app = Rulestream(env=eventsourcing_env(settings))
    pid = loyal_customer(app, 60)  # 2 events a session: the profile passes version 100
    (snapshot,) = app.snapshots.get(profile_id(pid)) if app.snapshots else []
    assert PROFILE_SNAPSHOT_EVERY <= snapshot.originator_version < PROFILE_SNAPSHOT_EVERY + 2
    stored = app.snapshots.recorder.select_events(profile_id(pid)) if app.snapshots else []
    assert b"Ann Example" not in stored[0].state  # the attributes are sealed, as in the profile's events

    fresh = Rulestream(env=eventsourcing_env(settings))
    read: list[tuple[bool, int]] = []
    recorder: Any = fresh.recorder
    original = recorder.select_with_snapshot

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        found, events = original(*args, **kwargs)
        read.append((found is not None, len(events)))
        return found, events

    recorder.select_with_snapshot = counting
    profile = fresh.get_profile(pid)
    assert profile is not None and profile.version == 121
    assert (profile.closed_sessions, profile.total_sales, profile.sessions) == (60, Decimal(600), 60)
    assert profile.attributes == {NAME: "Ann Example"}
    assert read == [(True, 121 - snapshot.originator_version)]  # one query: the snapshot, the events after it
    fresh.close()
    app.close()


def test_an_erased_profile_loads_from_its_snapshot_without_its_personal_data(settings: Settings) -> None:
    app = Rulestream(env=eventsourcing_env(settings))
    pid = loyal_customer(app, 55)
    app.erase_profile(pid)
    erase_keys(app, pid)
    fresh = Rulestream(env=eventsourcing_env(settings))
    profile = fresh.get_profile(pid)
    assert profile is not None and profile.attributes == {}
    assert (profile.closed_sessions, profile.total_sales) == (55, Decimal(550))
    as_of_snapshot = fresh.repository.get(profile_id(pid), version=PROFILE_SNAPSHOT_EVERY + 1)
    assert as_of_snapshot.attributes == {"erased": True}  # the snapshot's sealed attributes no longer open
    fresh.close()
    app.close()


def test_a_conflict_brings_the_cached_profile_up_to_the_log_instead_of_dropping_it(settings: Settings) -> None:
    ours, theirs = Rulestream(env=eventsourcing_env(settings)), Rulestream(env=eventsourcing_env(settings))
    try:
        pid = loyal_customer(ours, 3)
        theirs.update_session(f"{pid}-other", session_changes(cart_item("b", 5, 1), profile=pid), "closed")
        reads: list[int | None] = []
        original = ours.repository.event_store.get

        def recording(originator_id, *args, **kwargs):  # type: ignore[no-untyped-def]
            if originator_id == profile_id(pid):
                reads.append(kwargs.get("gt"))
            return original(originator_id, *args, **kwargs)

        ours.repository.event_store.get = recording  # type: ignore[method-assign]
        ours.update_session(f"{pid}-s9", session_changes(cart_item("a", 10, 1), profile=pid), "closed")
        cached = ours.repository.cache.get(profile_id(pid))  # type: ignore[union-attr]
        assert cached.version == 11 and cached.total_sales == Decimal(45)
        assert reads == [7]  # the two events it lacked, read once; not the whole history again
    finally:
        ours.close()
        theirs.close()


def _counting_loads(app: Rulestream) -> list[str]:
    calls: list[str] = []
    recorder: Any = app.recorder
    one, every = recorder.select_with_snapshot, recorder.select_all_with_snapshots
    recorder.select_with_snapshot = lambda *a: calls.append("one") or one(*a)
    recorder.select_all_with_snapshots = lambda *a: calls.append("all") or every(*a)
    return calls


def test_a_session_command_naming_its_profile_loads_the_two_in_one_query_snapshot_included(
    settings: Settings,
) -> None:
    app = Rulestream(env=eventsourcing_env(settings))
    try:
        pid = loyal_customer(app, 55)  # past its first snapshot
        app.update_session(f"{pid}-open", session_changes(cart_item("c", 1, 1), profile=pid), "open")
        calls = _counting_loads(app)
        sid = new_id("s")
        app.update_session(sid, session_changes(cart_item("a", 10, 1), profile=new_id("p")), "open")
        assert calls == ["all"]  # a new session of a new customer: one query answering nothing for both
    finally:
        app.close()

    fresh = Rulestream(env=eventsourcing_env(settings))  # nothing cached: both exist, the profile snapshotted
    try:
        calls = _counting_loads(fresh)
        closed = fresh.update_session(f"{pid}-open", session_changes(cart_item("b", 5, 2), profile=pid), "closed")
        assert calls == ["all"]
        expected = fresh.repository.get(profile_id(pid))
        assert closed.profile is not None and closed.profile.version == expected.version
        assert closed.profile.attributes == {NAME: "Ann Example"} and closed.profile.closed_sessions == 56
        assert closed.session is not None and [i.sku for i in closed.session.cart_items] == ["b"]
        assert closed.session.version == 2  # its start read back, then one event: changed and closed
    finally:
        fresh.close()
