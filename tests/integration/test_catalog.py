"""The attribute catalog on the real PostgreSQL: declarations, validated writes, discovery, and history."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from api.db import eventsourcing_env
from api.settings import Settings
from domain.application import Rulestream, profile_id, session_id
from domain.catalog.aggregate import CATALOG_ID
from domain.errors import AttributeInvalid, Conflict, InvalidInput, UnknownEventType
from tests.builders import cart_item, session_changes


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def pointers(error: pytest.ExceptionInfo[InvalidInput]) -> list[str | None]:
    return [p.pointer for p in error.value.problems]


def stored_states(app: Rulestream, aggregate_id: uuid.UUID) -> list[dict[str, object]]:
    """The JSON the log holds (personal fields are sealed: opened here, as the mapper does)."""
    plain = getattr(app.mapper, "plain_state", lambda r: json.loads(r.state))
    return [plain(r) for r in app.recorder.select_events(aggregate_id)]


def test_an_event_of_a_declared_type_is_recorded_with_normalised_plain_json_values(
    rulestream: Rulestream,
) -> None:
    kind, pid = new_id("order"), new_id("p")
    rulestream.create_attribute("Event", "amount", "number", event_type=kind)
    rulestream.create_attribute("Event", "at", "time", event_type=kind)
    rulestream.create_attribute("Event", "tags", "(list number)", event_type=kind)

    attributes = {"amount": 19.99, "at": "2026-11-22T11:00:00+01:00", "tags": [1, 2.5]}
    out = rulestream.track_event(kind, attributes, pid, None)

    tracked = out.events[-1]
    assert tracked.attributes == {"amount": 19.99, "at": "2026-11-22T10:00:00Z", "tags": [1, 2.5]}  # type: ignore[attr-defined]
    raw = stored_states(rulestream, profile_id(pid))[-1]
    assert raw["attributes"] == {"amount": 19.99, "at": "2026-11-22T10:00:00Z", "tags": [1, 2.5]}
    assert '"_type_"' not in json.dumps(raw["attributes"]), "the log holds plain JSON numbers"


def test_a_refused_event_records_nothing_and_points_at_every_bad_attribute(rulestream: Rulestream) -> None:
    kind = new_id("view")
    rulestream.create_attribute("Event", "url", "string", event_type=kind)
    rulestream.create_attribute("Event", "seconds", "number", event_type=kind)
    head = rulestream.recorder.max_notification_id()

    with pytest.raises(AttributeInvalid) as refused:
        rulestream.track_event(kind, {"url": 5, "seconds": "long", "ref": "x"}, new_id("p"), None)
    assert pointers(refused) == ["/attributes/url", "/attributes/seconds", "/attributes/ref"]
    with pytest.raises(UnknownEventType) as unknown:
        rulestream.track_event(new_id("never_declared"), {}, new_id("p"), None)
    assert pointers(unknown) == ["/type"]
    assert rulestream.recorder.max_notification_id() == head


def test_a_number_more_precise_than_the_log_holds_is_refused_not_rounded(rulestream: Rulestream) -> None:
    kind = new_id("pay")
    rulestream.create_attribute("Event", "amount", "number", event_type=kind)
    with pytest.raises(AttributeInvalid) as refused:
        rulestream.track_event(kind, {"amount": Decimal("0.12345678901234567891")}, new_id("p"), None)
    assert pointers(refused) == ["/attributes/amount"]
    big = rulestream.track_event(kind, {"amount": 10**30}, new_id("p"), None)
    assert big.events[-1].attributes == {"amount": 10**30}  # type: ignore[attr-defined]


def test_session_and_cart_item_attributes_are_checked_against_their_entities(rulestream: Rulestream) -> None:
    channel, gift = new_id("channel"), new_id("gift")
    rulestream.create_attribute("CustomerSession", channel, "string")
    rulestream.create_attribute("CartItem", gift, "boolean")
    sid = new_id("s")
    good = session_changes(
        cart_item("a", attributes={gift: True}), profile=new_id("p"), attributes={channel: "web"}
    )
    out = rulestream.update_session(sid, good, None)
    assert out.session is not None and out.session.attributes == {channel: "web"}
    assert out.session.cart_items[0].attributes == {gift: True}

    head = rulestream.recorder.max_notification_id()
    bad = session_changes(
        cart_item("a"), cart_item("b", attributes={gift: "yes"}), attributes={channel: 1, "undeclared": "x"}
    )
    with pytest.raises(AttributeInvalid) as refused:
        rulestream.update_session(sid, bad, None)
    assert pointers(refused) == [
        f"/customerSession/attributes/{channel}",
        "/customerSession/attributes/undeclared",
        f"/customerSession/cartItems/1/attributes/{gift}",
    ]
    assert rulestream.recorder.max_notification_id() == head


def test_profile_attributes_must_be_declared(rulestream: Rulestream) -> None:
    born = new_id("born")
    rulestream.create_attribute("CustomerProfile", born, "time")
    pid = new_id("p")
    out = rulestream.update_profile(pid, {born: "1990-01-01T00:00:00-05:00"}, run_rule_engine=False)
    assert out.profile is not None and out.profile.attributes == {born: "1990-01-01T05:00:00Z"}
    with pytest.raises(AttributeInvalid) as refused:
        rulestream.update_profile(pid, {"Nickname": "x"}, run_rule_engine=False)
    assert pointers(refused) == ["/attributes/Nickname"]


def test_discover_mode_registers_an_attribute_in_the_same_append_as_the_event(rulestream: Rulestream) -> None:
    kind, pid = new_id("review"), new_id("p")
    rulestream.create_attribute("Event", "stars", "number", event_type=kind, schema_mode="discover")

    out = rulestream.track_event(kind, {"stars": 5, "product": "shoe"}, pid, None)
    discovered = rulestream.catalog().attributes("Event", kind)[-1]
    assert (discovered.name, discovered.type, discovered.discovered) == ("product", "string", True)
    catalog_positions = [
        n.id
        for n in rulestream.recorder.select_notifications(min(out.positions), 20)
        if n.originator_id == rulestream.catalog().id
    ]
    assert catalog_positions, "the discovery is recorded beside the event"
    assert max(catalog_positions) == max(out.positions) + 1, "in the same append, right after the event"

    with pytest.raises(AttributeInvalid) as refused:
        rulestream.track_event(kind, {"product": 7}, pid, None)
    assert pointers(refused) == ["/attributes/product"], "a discovered attribute is enforced from then on"


def test_a_dry_run_discovers_nothing(rulestream: Rulestream) -> None:
    kind = new_id("review")
    rulestream.create_attribute("Event", "stars", "number", event_type=kind, schema_mode="discover")
    rulestream.track_event(kind, {"stars": 5, "product": "shoe"}, new_id("p"), None, dry=True)
    assert [a.name for a in rulestream.catalog().attributes("Event", kind)] == ["stars"]


def test_several_events_are_recorded_all_or_none(rulestream: Rulestream) -> None:
    first, second, pid = new_id("view"), new_id("buy"), new_id("p")
    rulestream.create_attribute("Event", "url", "string", event_type=first)
    rulestream.create_attribute("Event", "amount", "number", event_type=second)
    head = rulestream.recorder.max_notification_id()

    with pytest.raises(InvalidInput) as refused:
        rulestream.track_events(pid, {first: {"url": "/a"}, second: {"amount": "lots"}, "nope": {}})
    assert pointers(refused) == [f"/events/{second}/amount", "/events/nope"]
    assert rulestream.recorder.max_notification_id() == head

    out = rulestream.track_events(pid, {first: {"url": "/a"}, second: {"amount": 3}})
    tracked = [(e.event_type, e.attributes) for e in out.events if hasattr(e, "event_type")]  # type: ignore[attr-defined]
    assert tracked == [(first, {"url": "/a"}), (second, {"amount": 3})]


def test_a_catalog_change_never_invalidates_recorded_history(
    settings: Settings, rulestream: Rulestream
) -> None:
    kind, pid, sid = new_id("visit"), new_id("p"), new_id("s")
    rulestream.create_attribute("Event", "source", "string", event_type=kind, suggestions=["ad", "mail"])
    rulestream.update_session(sid, session_changes(profile=pid), None)
    rulestream.track_event(kind, {"source": "ad"}, pid, sid)
    source = rulestream.catalog().attributes("Event", kind)[0]

    rulestream.update_attribute(source.id, suggestions=["mail"], restricted_by_suggestions=True)
    rulestream.deprecate_attribute(source.id)
    rulestream.set_schema_mode(kind, "discover")

    fresh = Rulestream(env=eventsourcing_env(settings))
    try:
        assert fresh.get_session(sid).custom_events == 1
        recorded = [s for s in stored_states(fresh, session_id(sid)) if "event_type" in s]
        assert recorded[0]["attributes"] == {"source": "ad"}, (
            "recorded under the old catalog, readable as it was"
        )
        with pytest.raises(AttributeInvalid):
            fresh.track_event(kind, {"source": "ad"}, pid, sid)  # the narrower restriction binds new writes
        fresh.track_event(kind, {"source": "mail"}, pid, sid)  # a deprecated attribute is still accepted
    finally:
        fresh.close()


def test_a_taken_name_is_a_conflict_and_concurrent_declarations_all_land(settings: Settings) -> None:
    kind = new_id("load")
    apps = [Rulestream(env=eventsourcing_env(settings)) for _ in range(4)]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            names = [f"a{i}" for i in range(12)]
            list(
                pool.map(
                    lambda n: apps[hash(n) % 4].create_attribute("Event", n, "string", event_type=kind), names
                )
            )
        declared = apps[0].catalog().attributes("Event", kind)
        assert sorted(a.name for a in declared) == sorted(names)
        assert len({a.id for a in declared}) == 12
        with pytest.raises(Conflict):
            apps[1].create_attribute("Event", "A0", "number", event_type=kind)
    finally:
        for app in apps:
            app.close()


def test_a_sole_writer_trusts_its_cached_catalog_briefly_and_sees_its_own_changes_at_once(settings: Settings) -> None:
    ours, theirs = Rulestream(env=eventsourcing_env(settings)), Rulestream(env=eventsourcing_env(settings))
    try:
        ours.TRUST_SECONDS = 60.0
        ours.catalog()  # brought up to date: trusted from now on
        elsewhere, here = f"else_{uuid.uuid4().hex[:6]}", f"here_{uuid.uuid4().hex[:6]}"
        theirs.create_attribute("CustomerProfile", elsewhere, "string")  # another process: not seen while trusted
        assert elsewhere not in {a.name for a in ours.catalog().attributes("CustomerProfile")}
        ours.create_attribute("CustomerProfile", here, "string")  # its own change: seen at once, with the other
        assert {elsewhere, here} <= {a.name for a in ours.catalog().attributes("CustomerProfile")}
        ours.TRUST_SECONDS = 0.0  # a catalog read no longer counts as recent: every read asks the database
        another = f"more_{uuid.uuid4().hex[:6]}"
        theirs.create_attribute("CustomerProfile", another, "string")
        assert another in {a.name for a in ours.catalog().attributes("CustomerProfile")}
    finally:
        ours.close()
        theirs.close()


def test_a_sole_writer_trusts_that_there_is_no_catalog_as_briefly_and_sees_its_first_attribute() -> None:
    from tests.conftest import drop_database, fresh_database

    url = fresh_database("rulestream_no_catalog")  # nothing declared here yet
    ours = Rulestream(env={**eventsourcing_env(Settings(database_url=url)), "SOLE_WRITER": "y"})
    try:
        ours.TRUST_SECONDS = 60.0
        asked: list[object] = []
        real = ours.repository.get

        def counted(aggregate_id: object, *args: object, **kwargs: object) -> object:
            asked.append(aggregate_id)
            return real(aggregate_id, *args, **kwargs)  # type: ignore[arg-type]

        ours.repository.get = counted  # type: ignore[method-assign]
        assert ours.catalog().attributes("CustomerProfile") == ours.catalog().attributes("CustomerProfile")
        assert asked.count(CATALOG_ID) == 1  # the absence is trusted as a cached catalog would be
        name = f"first_{uuid.uuid4().hex[:6]}"
        ours.create_attribute("CustomerProfile", name, "string")  # its own change: seen at once
        assert name in {a.name for a in ours.catalog().attributes("CustomerProfile")}
    finally:
        ours.close()
        drop_database(url)
