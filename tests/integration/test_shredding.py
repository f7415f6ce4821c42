"""Crypto-shredding on the real PostgreSQL: a page of the log decoded with one key query, erased keys honoured."""

from __future__ import annotations

import uuid

from api.db import eventsourcing_env
from api.settings import Settings
from api.shredding import ShreddingMapper, erase_keys
from domain.application import Rulestream, profile_id
from domain.profile import ERASED, CustomerProfile


def test_a_page_decodes_with_the_keys_fetched_at_once_and_an_erased_customer_reads_as_erased(
    settings: Settings, rulestream: Rulestream
) -> None:
    kept, forgotten = f"p-{uuid.uuid4().hex[:8]}", f"p-{uuid.uuid4().hex[:8]}"
    attribute = f"nick_{uuid.uuid4().hex[:6]}"
    rulestream.create_attribute("CustomerProfile", attribute, "string")
    positions = []
    for who in (kept, forgotten):
        positions += rulestream.update_profile(who, {attribute: who}, run_rule_engine=True).positions
    erase_keys(rulestream, forgotten)

    fresh = Rulestream(env=eventsourcing_env(settings))  # another process: nothing cached
    try:
        mapper = fresh.mapper
        assert isinstance(mapper, ShreddingMapper)
        page = [
            n for n in fresh.recorder.select_notifications(start=min(positions), limit=len(positions) + 50)
            if n.id in positions
        ]
        datastore, opened = mapper.keys.datastore, []
        connect = datastore.get_connection
        datastore.get_connection = lambda *a, **k: opened.append(1) or connect(*a, **k)  # type: ignore[method-assign]
        try:
            events = mapper.to_domain_events(page)
        finally:
            del datastore.get_connection
        assert len(opened) == 1  # one query for the whole page's keys
        by_owner = {e.originator_id: e for e in events if isinstance(e, CustomerProfile.Created)}
        assert by_owner[profile_id(kept)].attributes == {attribute: kept}
        assert by_owner[profile_id(forgotten)].attributes == ERASED
        # Both keys were settled by the page's one query: the live one cached, the destroyed one known gone.
        assert sorted(v[1] is None for v in mapper.keys._by_id.values()) == [False, True]
    finally:
        fresh.close()


def test_processes_creating_a_profile_key_at_the_same_time_all_get_the_one_key(rulestream: Rulestream) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from api.shredding import ProfileKeys

    shared: ProfileKeys = rulestream.factory.profile_keys  # type: ignore[attr-defined]
    table = "rulestream_profile_keys"
    for _ in range(5):
        profile = profile_id(f"p-{uuid.uuid4().hex[:8]}")
        barrier = threading.Barrier(8)

        def first_use(profile: uuid.UUID, barrier: threading.Barrier) -> tuple[uuid.UUID, bytes]:
            keys = ProfileKeys(shared.datastore, table)  # one per process: no cache in common
            barrier.wait()
            return keys.key_for(profile)

        with ThreadPoolExecutor(8) as pool:
            got = set(pool.map(first_use, [profile] * 8, [barrier] * 8))
        assert len(got) == 1  # all eight agree, none failed (the loser of the insert reads the winner's key)


def _key_rows(rulestream: Rulestream, profile: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """The profile's data keys: id, and the transaction that wrote each (``xmin``)."""
    with rulestream.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            "SELECT key_id, xmin::text AS tx FROM rulestream_profile_keys WHERE profile_id = %s", (profile,)
        ).fetchall()
    return [(row["key_id"], row["tx"]) for row in rows]


def _written_by(rulestream: Rulestream, aggregate: uuid.UUID) -> set[str]:
    with rulestream.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            "SELECT DISTINCT xmin::text AS tx FROM rulestream_events WHERE originator_id = %s", (aggregate,)
        ).fetchall()
    return {row["tx"] for row in rows}


def _sealed_with(rulestream: Rulestream, aggregate: uuid.UUID) -> set[str]:
    import json

    events = rulestream.recorder.select_events(aggregate)
    states = [json.loads(e.state) for e in events]
    return {s["attributes"]["kid"] for s in states if isinstance(s.get("attributes"), dict) and "kid" in s["attributes"]}


def _new_customer(rulestream: Rulestream) -> tuple[str, str]:
    """A customer not in the log yet, and a profile attribute of its own to seal."""
    attribute = f"nick_{uuid.uuid4().hex[:6]}"
    rulestream.create_attribute("CustomerProfile", attribute, "string")
    return f"p-{uuid.uuid4().hex[:8]}", attribute


def _read_elsewhere(settings: Settings, who: str, attribute: str) -> object:
    """The attribute as another process (nothing cached) reads it back."""
    fresh = Rulestream(env=eventsourcing_env(settings))
    try:
        profile = fresh.get_profile(who)
        assert profile is not None
        return profile.attributes[attribute]
    finally:
        fresh.close()


def test_a_new_customers_key_is_written_in_the_transaction_of_its_first_events(
    settings: Settings, rulestream: Rulestream
) -> None:
    who, attribute = _new_customer(rulestream)
    rulestream.update_profile(who, {attribute: who}, run_rule_engine=False)
    keys = _key_rows(rulestream, profile_id(who))
    assert len(keys) == 1
    assert _written_by(rulestream, profile_id(who)) == {keys[0][1]}  # one transaction: the key made in-process
    assert _sealed_with(rulestream, profile_id(who)) == {str(keys[0][0])}
    rulestream.update_profile(who, {attribute: "again"}, run_rule_engine=False)  # the cached key, no new one
    assert _key_rows(rulestream, profile_id(who)) == keys
    assert _read_elsewhere(settings, who, attribute) == "again"  # with the stored key


def test_a_key_made_meanwhile_elsewhere_fails_the_first_attempt_and_the_retry_seals_with_that_key(
    settings: Settings, rulestream: Rulestream
) -> None:
    from api.shredding import ProfileKeys

    who, attribute = _new_customer(rulestream)
    shared: ProfileKeys = rulestream.factory.profile_keys  # type: ignore[attr-defined]
    elsewhere = ProfileKeys(shared.datastore, "rulestream_profile_keys")  # another process, e.g. a session's event
    theirs, _ = elsewhere.key_for(profile_id(who))

    rulestream.update_profile(who, {attribute: who}, run_rule_engine=False)
    assert [key_id for key_id, _ in _key_rows(rulestream, profile_id(who))] == [theirs]
    assert _sealed_with(rulestream, profile_id(who)) == {str(theirs)}
    assert not shared._refused  # asked once, then known
    assert _read_elsewhere(settings, who, attribute) == who


def test_a_group_commit_writes_each_commands_keys_and_a_taken_profile_fails_only_its_command(
    own_rulestream: Rulestream,
) -> None:
    from typing import Any

    from eventsourcing.persistence import IntegrityError, StoredEvent

    from api.store import Done, Queued

    recorder: Any = own_rulestream.recorder
    taken = uuid.uuid4()
    recorder._write([StoredEvent(uuid.uuid4(), 1, "test:Other", b"{}")], [(uuid.uuid4(), taken, b"k" * 32)])
    fresh, clashing = uuid.uuid4(), uuid.uuid4()
    ok, clash = Done(), Done()
    made = (uuid.uuid4(), fresh, b"f" * 32)
    recorder._commit([Queued([StoredEvent(fresh, 1, "test:Fresh", b"{}")], [made], ok),
                      Queued([StoredEvent(clashing, 1, "test:Clash", b"{}")], [(uuid.uuid4(), taken, b"c" * 32)],
                             clash)])  # fmt: skip
    assert len(ok.result()) == 1
    assert isinstance(clash.exception(), IntegrityError)
    assert [key_id for key_id, _ in _key_rows(own_rulestream, fresh)] == [made[0]]
    assert len(_key_rows(own_rulestream, taken)) == 1
    assert recorder.select_events(clashing) == []
