"""The follower runner on the real PostgreSQL: exactly once through crashes, one leader, polling after a lost NOTIFY."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.utils import get_topic
from psycopg.rows import DictRow

from api.settings import Settings
from domain.application import Rulestream
from domain.profile import CustomerProfile
from domain.session import CustomerSession
from projections import status
from projections.connections import LISTEN_TICK
from projections.follower import (
    FOLLOWER_LOCK,
    DecodedEvents,
    Follower,
    FollowerRunner,
    Recorded,
    lock_key,
    wait_for,
)
from tests.builders import session_changes

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


class Recording(Follower):
    """Writes one row per event it applies, keyed by position: a duplicate would violate the key."""

    batch_size = 7

    def __init__(self, name: str, runner_label: str = "", fail_once_at: int | None = None) -> None:
        self.name = name
        self.table = f"applied_{name}"
        self.label = runner_label
        self.fail_once_at = fail_once_at
        self.batches: list[list[int]] = []
        self.events: list[Any] = []

    def setup(self, cursor: psycopg.Cursor[DictRow]) -> None:
        cursor.execute(
            f'CREATE TABLE IF NOT EXISTS "{self.table}" (position bigint PRIMARY KEY, runner text)'
        )

    def apply(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        for recorded in batch:
            cursor.execute(f'INSERT INTO "{self.table}" VALUES (%s, %s)', (recorded.position, self.label))
            if recorded.position == self.fail_once_at:
                self.fail_once_at = None
                raise RuntimeError("crash in the middle of a batch")
        self.batches.append([r.position for r in batch])
        self.events.extend(r.event for r in batch)


def positions_applied(app: Rulestream, table: str) -> list[int]:
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        return [r["position"] for r in conn.execute(f'SELECT position FROM "{table}" ORDER BY position')]


def all_positions(app: Rulestream) -> list[int]:
    table = app.recorder.events_table_name  # type: ignore[attr-defined]
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        return [
            r["notification_id"] for r in conn.execute(f'SELECT notification_id FROM "{table}" ORDER BY 1')
        ]


def write_events(app: Rulestream, n: int) -> None:
    for _ in range(n):
        app.update_profile(f"p-{uuid.uuid4().hex[:10]}", {}, run_rule_engine=False)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_a_batch_that_fails_midway_writes_nothing_and_the_retry_applies_each_event_once(
    rulestream: Rulestream,
) -> None:
    write_events(rulestream, 20)
    positions = all_positions(rulestream)
    follower = Recording(unique("crash"), fail_once_at=positions[10])
    runner = FollowerRunner(rulestream, follower)
    with pytest.raises(RuntimeError, match="crash"):
        runner.run_until_caught_up()
    done = positions_applied(rulestream, follower.table)
    assert done == positions[: len(done)] and positions[10] not in done
    assert runner.checkpoint == (done[-1] if done else 0)

    FollowerRunner(rulestream, follower).run_until_caught_up()
    assert positions_applied(rulestream, follower.table) == all_positions(rulestream)


def test_a_runner_process_killed_mid_batch_loses_and_duplicates_nothing(
    rulestream: Rulestream, settings: Settings, tmp_path: Path
) -> None:
    write_events(rulestream, 30)
    name = unique("killed")
    marker = tmp_path / "in-batch"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from api.db import eventsourcing_env
        from api.settings import Settings
        from domain.application import Rulestream
        from projections.follower import FollowerRunner
        from tests.integration.projections.test_runner import Recording

        class Slow(Recording):
            def apply(self, cursor, batch):
                super().apply(cursor, batch)
                if len(self.batches) == 2:  # rows of the second batch written, not committed
                    Path({str(marker)!r}).touch()
                    time.sleep(60)

        app = Rulestream(env=eventsourcing_env(Settings(database_url={settings.database_url!r})))
        FollowerRunner(app, Slow({name!r})).run_until_caught_up()
    """)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, timeout=60)
        assert process.poll() is None, "the runner process ended before the second batch"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    first_batch = positions_applied(rulestream, f"applied_{name}")
    assert len(first_batch) == Recording.batch_size  # the second batch died with its transaction

    FollowerRunner(rulestream, Recording(name)).run_until_caught_up()
    assert positions_applied(rulestream, f"applied_{name}") == all_positions(rulestream)


def test_of_two_runners_of_one_follower_one_applies_and_the_other_takes_over_when_it_stops(
    rulestream: Rulestream,
) -> None:
    name = unique("pair")
    followers = [Recording(name, "a"), Recording(name, "b")]
    runners = [FollowerRunner(rulestream, f, poll_seconds=0.05) for f in followers]
    threads = [r.thread() for r in runners]
    try:
        wait_for(lambda: any(r.elected.is_set() for r in runners))
        write_events(rulestream, 25)
        wait_for(lambda: max(r.checkpoint for r in runners) == all_positions(rulestream)[-1], timeout=30)
        leader = next(i for i, r in enumerate(runners) if r.elected.is_set())
        other = 1 - leader
        assert not runners[other].elected.is_set() and followers[other].batches == []

        runners[leader].stop()
        threads[leader].join(timeout=10)
        wait_for(lambda: runners[other].elected.is_set(), timeout=30)
        write_events(rulestream, 5)
        wait_for(lambda: runners[other].checkpoint == all_positions(rulestream)[-1], timeout=30)
        assert followers[other].batches
    finally:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(timeout=10)
    assert positions_applied(rulestream, f"applied_{name}") == all_positions(rulestream)


def test_two_runners_without_election_still_never_apply_a_position_twice(rulestream: Rulestream) -> None:
    name = unique("unelected")
    write_events(rulestream, 40)
    runners = [FollowerRunner(rulestream, Recording(name, label)) for label in "ab"]
    errors: list[BaseException] = []

    def run(runner: FollowerRunner) -> None:
        try:
            runner.run_until_caught_up()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert positions_applied(rulestream, f"applied_{name}") == all_positions(rulestream)


def test_a_lost_notification_is_made_up_for_by_polling(rulestream: Rulestream) -> None:
    follower = Recording(unique("deaf"))
    runner = FollowerRunner(rulestream, follower, poll_seconds=0.05)
    runner.channel = "nobody_notifies_this_channel"  # every NOTIFY of the event store is lost
    thread = runner.thread()
    try:
        wait_for(lambda: runner.elected.is_set())
        write_events(rulestream, 5)
        wait_for(lambda: runner.checkpoint == all_positions(rulestream)[-1], timeout=30)
    finally:
        runner.stop()
        thread.join(timeout=10)
    assert positions_applied(rulestream, follower.table) == all_positions(rulestream)


def test_a_follower_that_gathers_applies_at_once_after_a_quiet_spell_and_in_one_batch_under_load(
    rulestream: Rulestream,
) -> None:
    follower = Recording(unique("gathering"))
    follower.batch_size = 100
    follower.gather_seconds = 2.0  # the three writes below must fit in the window the first batch opens
    runner = FollowerRunner(rulestream, follower, poll_seconds=0.05)
    thread = runner.thread()
    try:
        wait_for(lambda: runner.elected.is_set())
        earlier = all_positions(rulestream)  # other tests' events: caught up first, then a quiet spell
        wait_for(lambda: runner.checkpoint == (earlier[-1] if earlier else 0), timeout=30)
        time.sleep(follower.gather_seconds)
        write_events(rulestream, 1)
        first = all_positions(rulestream)[-1]
        wait_for(lambda: runner.checkpoint == first, timeout=0.8)  # quiet before it: no pause
        write_events(rulestream, 3)  # within the window the first batch opened: they gather
        head = all_positions(rulestream)[-1]
        wait_for(lambda: runner.checkpoint == head, timeout=30)
    finally:
        runner.stop()
        thread.join(timeout=10)
    positions = all_positions(rulestream)
    assert follower.batches[-2:] == [[first], [p for p in positions if first < p <= head]]


def test_a_waiting_reader_cuts_a_read_models_pause_short(rulestream: Rulestream) -> None:
    follower = Recording(unique("hurried"))
    follower.gather_seconds = 30.0
    follower.hurried = True
    follower.batch_size = 1_000_000  # the shared log so far, in the first batch: it opens the window
    write_events(rulestream, 1)
    first = all_positions(rulestream)[-1]
    runner = FollowerRunner(rulestream, follower, poll_seconds=0.05)
    thread = runner.thread()
    try:
        wait_for(lambda: runner.checkpoint == first, timeout=30)
        time.sleep(3 * LISTEN_TICK)  # the listener adds the readers' channel, and wakes its subscribers once
        write_events(rulestream, 1)
        head = all_positions(rulestream)[-1]
        time.sleep(0.3)
        assert runner.checkpoint == first  # pausing
        # What a read that finds its model behind does (``projections.status``).
        def hurried() -> bool:
            status.hurry(rulestream)
            return runner.checkpoint == head

        wait_for(hurried, timeout=10)
    finally:
        runner.stop()
        thread.join(timeout=10)


def test_a_follower_decodes_only_the_events_it_reads_and_its_checkpoint_passes_the_others(
    rulestream: Rulestream,
) -> None:
    follower = Recording(unique("choosy"))
    follower.batch_size = 10_000
    follower.reads = (CustomerSession.Created,)
    write_events(rulestream, 2)  # profiles registered: not read
    rulestream.update_session(unique("s"), session_changes(profile=unique("p")), "open")
    decoded: list[int] = []
    original = DecodedEvents.decode

    def counting(self: DecodedEvents, rows: Any) -> Any:
        decoded.extend(row["notification_id"] for row in rows)
        return original(self, rows)

    DecodedEvents.decode = counting  # type: ignore[method-assign]
    try:
        runner = FollowerRunner(rulestream, follower)
        runner.run_until_caught_up()
    finally:
        DecodedEvents.decode = original  # type: ignore[method-assign]
    applied = positions_applied(rulestream, follower.table)
    assert applied and decoded == applied  # the sessions' creations only
    assert follower.events and all(isinstance(e, CustomerSession.Created) for e in follower.events)
    positions = all_positions(rulestream)
    assert len(applied) < len(positions) and runner.checkpoint == positions[-1]  # past those it does not read

    # Having seen them, it is no longer even sent their state; what it reads comes whole.
    profile_topic = get_topic(CustomerProfile.Registered)
    assert profile_topic in runner._unread and get_topic(CustomerSession.Created) not in runner._unread
    write_events(rulestream, 1)
    rulestream.update_session(unique("s"), session_changes(profile=unique("p")), "open")
    datastore: Any = rulestream.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
        cursor.execute(runner._lock_and_read_statement, (follower.name, runner._unread, 10_000))
        rows = [r for r in cursor.fetchall() if r["notification_id"] is not None]
    assert profile_topic in {r["topic"] for r in rows}
    assert all((r["state"] is None) == (r["topic"] in runner._unread) for r in rows)
    assert all(r["state"] for r in rows if r["topic"] == get_topic(CustomerSession.Created))
    runner.run_until_caught_up()
    assert len(positions_applied(rulestream, follower.table)) == len(applied) + 1


def election_holders(app: Rulestream, names: Sequence[str]) -> set[int]:
    """The server processes (pids) holding the election locks of these followers."""
    keys = [lock_key(f"rulestream-follower:{name}") & 0xFFFFFFFF for name in names]
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = ANY(%s) "
            "AND objsubid = 2 AND granted",
            (FOLLOWER_LOCK, keys),
        ).fetchall()
    return {r["pid"] for r in rows}


def listeners(app: Rulestream) -> int:
    """Sessions of this database whose last statement was a LISTEN (the listening connections)."""
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND query ~ '^(UN)?LISTEN '"
        ).fetchone()
    return int(row["n"]) if row else 0


def test_the_followers_of_a_process_share_one_election_connection_and_one_listener(
    rulestream: Rulestream,
) -> None:
    followers = [Recording(unique("shared")) for _ in range(4)]
    runners = [FollowerRunner(rulestream, f, poll_seconds=0.05) for f in followers]
    threads = [r.thread() for r in runners]
    try:
        wait_for(lambda: all(r.elected.is_set() for r in runners), timeout=30)
        assert len(election_holders(rulestream, [f.name for f in followers])) == 1
        wait_for(lambda: listeners(rulestream) == 1, timeout=30)
        assert listeners(rulestream) == 1
        write_events(rulestream, 3)
        head = all_positions(rulestream)[-1]
        wait_for(lambda: all(r.checkpoint == head for r in runners), timeout=30)
    finally:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(timeout=10)
    assert election_holders(rulestream, [f.name for f in followers]) == set()  # released when they stop


def test_when_the_election_connection_drops_every_follower_is_elected_again_and_goes_on(
    rulestream: Rulestream,
) -> None:
    followers = [Recording(unique("dropped")) for _ in range(2)]
    runners = [FollowerRunner(rulestream, f, poll_seconds=0.05) for f in followers]
    threads = [r.thread() for r in runners]
    names = [f.name for f in followers]
    try:
        wait_for(lambda: all(r.elected.is_set() for r in runners), timeout=30)
        (holder,) = election_holders(rulestream, names)
        with rulestream.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            conn.execute("SELECT pg_terminate_backend(%s)", (holder,))
        wait_for(lambda: len(election_holders(rulestream, names)) == 1, timeout=30)
        wait_for(lambda: election_holders(rulestream, names) != {holder}, timeout=30)
        write_events(rulestream, 5)
        head = all_positions(rulestream)[-1]
        wait_for(lambda: all(r.checkpoint == head for r in runners), timeout=30)
        wait_for(lambda: len(election_holders(rulestream, names)) == 1, timeout=30)
    finally:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(timeout=10)
    for follower in followers:
        assert positions_applied(rulestream, follower.table) == all_positions(rulestream)


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_checkpoint_that_would_not_move_ahead_fails_its_batch_pipelined_or_not(
    rulestream: Rulestream, pipelined: bool
) -> None:
    write_events(rulestream, 3)
    follower = Recording(unique("ahead"))
    follower.pipelined = pipelined
    runner = FollowerRunner(rulestream, follower)
    runner.run_until_caught_up()
    stored = runner.checkpoint
    datastore: Any = rulestream.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn:
        with pytest.raises((RuntimeError, psycopg.DataError), match="not ahead"):
            with conn.pipeline() if pipelined else contextlib.nullcontext(), conn.transaction(), conn.cursor() as cur:
                cur.execute(f'INSERT INTO "{follower.table}" VALUES (-1, %s)', ("must roll back",))
                runner._write_checkpoint(cur, stored, [("rulestream_test_ahead", "x")])  # not ahead of itself
    with datastore.get_connection() as conn, conn.cursor() as cur:
        cur.execute(f'SELECT count(*) AS n FROM "{follower.table}" WHERE position = -1')
        assert cur.fetchone() == {"n": 0}  # the batch's writes rolled back with it
        assert runner._read_checkpoint(cur) == stored
