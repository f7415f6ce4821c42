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
