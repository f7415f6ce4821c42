"""The read models on the real PostgreSQL: what they hold, rebuilds equal to the live models, the events log's
filters and paging, and an index under every filter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from api.db import eventsourcing_env
from api.settings import Settings
from domain.application import Rulestream
from projections import queries, status
from projections.follower import FollowerRunner, wait_for
from projections.queries import EventFilter, SessionFilter
from projections.rebuild import Rebuild
from projections.registry import READ_MODELS
from tests.conftest import drop_database, fresh_database
from tests.integration.projections import workload
from tests.integration.projections.conftest import catch_up, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rulestream() -> Iterator[Rulestream]:
    """A database of this module's own: the workload records evaluations as the policy would, without running
    it, and a policy that another test runs on the shared log would evaluate their causes again (and fail on
    the evaluations' ids, which exist)."""
    url = fresh_database("rulestream_read_models")
    app = Rulestream(env=eventsourcing_env(Settings(database_url=url)))
    yield app
    app.close()
    drop_database(url)


@pytest.fixture
def ids(rulestream: Rulestream) -> dict[str, list[str]]:
    written = workload.run(rulestream)
    catch_up(rulestream)
    return written


def all_events(app: Rulestream, **filters: Any) -> list[dict[str, Any]]:
    rows, more = queries.events(app, EventFilter(**filters), 1000, 0)
    assert not more
    return rows


def test_the_events_log_shows_built_in_and_custom_events_with_their_effects(
    rulestream: Rulestream, ids: dict[str, list[str]]
) -> None:
    pid, sid = ids["profiles"][0], ids["sessions"][0]
    rows = all_events(rulestream, profile=pid)
    assert [r["type"] for r in rows] == [
        "talon_profile_created", "talon_session_created", "talon_session_closed",
        "talon_session_partially_returned", "review_posted", "cart_viewed", "rulestream_delay_scheduled",
        "rulestream_delay_came_due", "talon_profile_updated",
    ]  # fmt: skip
    created, closed = rows[1], rows[2]
    assert created["session"] == sid and created["attributes"] == {"channel": "web"}
    assert created["effect_types"] == ["addLoyaltyPoints", "setDiscount"]
    assert [e["props"]["value"] for e in closed["effects"]] == ["2.50", "12"]
    assert rows[4]["attributes"] == {"stars": 1, "product": "a"} and rows[4]["session"] is None
    assert rows[5]["session"] == sid and rows[5]["effects"]
    assert rows[8]["attributes"] == {"name": "Customer 0", "tier": "platinum"}
    assert [r["type"] for r in all_events(rulestream, types=["newsletter_opened"])][-1:] == [
        "newsletter_opened"
    ]


def test_the_events_log_shows_a_delayed_evaluation_under_its_trigger_with_the_effects_it_caused(
    rulestream: Rulestream, ids: dict[str, list[str]]
) -> None:
    pid, sid = ids["profiles"][0], ids["sessions"][0]
    rows = all_events(rulestream, session=sid)
    trigger, scheduled, came_due = rows[-3:]
    assert [r["type"] for r in (trigger, scheduled, came_due)] == [
        "cart_viewed", "rulestream_delay_scheduled", "rulestream_delay_came_due",
    ]  # fmt: skip
    assert {(r["profile"], r["session"]) for r in (scheduled, came_due)} == {(pid, sid)}
    assert scheduled["attributes"]["causePosition"] == trigger["position"]
    assert scheduled["attributes"]["ruleId"] == came_due["attributes"]["ruleId"] == 9
    assert "firedAt" in came_due["attributes"] and scheduled["effects"] == []
    assert [e["effectType"] for e in came_due["effects"]] == ["showNotification"]
    assert all_events(rulestream, types=["rulestream_delay_came_due"], effect_type="showNotification")


def test_sessions_profiles_and_loyalty_hold_the_current_state(
    rulestream: Rulestream, ids: dict[str, list[str]]
) -> None:
    returned, cancelled = (
        queries.session(rulestream, ids["sessions"][0]),
        queries.session(rulestream, ids["sessions"][1]),
    )
    assert returned is not None and cancelled is not None
    assert returned["state"] == "partially_returned" and returned["cart_item_total"] == Decimal("24.99")
    assert returned["total"] == Decimal("29.89") and returned["coupon_codes"] == ["C0"]
    assert cancelled["state"] == "cancelled" and cancelled["referral"] == "FRIEND"
    assert queries.session(rulestream, str(returned["id"])) == returned

    profile = queries.profile(rulestream, ids["profiles"][0])
    assert profile is not None
    assert (profile["closed_sessions"], profile["total_sales"]) == (1, Decimal("29.89"))
    assert profile["attributes"] == {"name": "Customer 0", "tier": "platinum"}
    assert profile["balance"] == Decimal(5 + 12 - 1)
    gone = queries.profile(rulestream, ids["profiles"][1])
    assert gone is not None and (gone["closed_sessions"], gone["total_sales"]) == (0, Decimal(0))
    ledger, more = queries.ledger(rulestream, ids["profiles"][0], 10, None)
    assert [e["amount"] for e in ledger] == [Decimal(5), Decimal(12), Decimal(-1)] and not more


def test_every_read_model_rebuilt_from_the_log_equals_the_live_one_row_for_row(
    rulestream: Rulestream, ids: dict[str, list[str]]
) -> None:
    for name in READ_MODELS:
        live = snapshot(rulestream, name)
        generation = Rebuild(rulestream, name).run().generation
        assert snapshot(rulestream, name) == live, name
        assert next(p for p in status.status(rulestream) if p["name"] == name)["generation"] == generation
    from prometheus_client import generate_latest

    assert b":rebuild" not in generate_latest()  # the copies' gauges left with them


def test_a_rebuild_switches_over_while_the_live_runner_keeps_following_and_writers_keep_writing(
    rulestream: Rulestream, ids: dict[str, list[str]]
) -> None:
    live = FollowerRunner(rulestream, READ_MODELS["events_log"](rulestream), poll_seconds=0.05)
    thread = live.thread()
    written: list[int] = []

    def write_meanwhile(position: int, head: int) -> None:
        if len(written) < 3:
            written.append(
                rulestream.update_profile(workload.new_id("p"), {}, run_rule_engine=True).positions[-1]
            )

    try:
        Rebuild(rulestream, "events_log").run(write_meanwhile)
        more = rulestream.update_profile(workload.new_id("p"), {}, run_rule_engine=True).positions[-1]
        wait_for(lambda: live.checkpoint >= more, timeout=30)
    finally:
        live.stop()
        thread.join(timeout=10)
    served = snapshot(rulestream, "events_log")
    assert {*written, more} <= {r["position"] for r in served["events_log"]}
    Rebuild(rulestream, "events_log").run()
    assert snapshot(rulestream, "events_log") == served


def test_the_events_log_filters(rulestream: Rulestream, ids: dict[str, list[str]]) -> None:
    pid, sid = ids["profiles"][2], ids["sessions"][2]
    mine = all_events(rulestream, profile=pid)
    assert {r["profile"] for r in mine} == {pid}
    assert {r["session"] for r in all_events(rulestream, session=sid)} == {sid}
    closed = all_events(rulestream, types=["talon_session_closed", "cart_viewed"], profile=pid)
    assert [r["type"] for r in closed] == ["talon_session_closed", "cart_viewed"]
    assert all("setDiscount" in r["effect_types"] for r in all_events(rulestream, effect_type="setDiscount"))
    assert len(all_events(rulestream, profile=pid, effect_type="addLoyaltyPoints")) == 3
    stars = all_events(rulestream, attributes={"stars": 3, "product": "a"})
    assert stars and all(r["attributes"]["stars"] == 3 for r in stars)
    middle = mine[3]["created"]
    assert all(r["created"] < middle for r in all_events(rulestream, profile=pid, created_before=middle))
    after = all_events(rulestream, profile=pid, created_after=middle - timedelta(microseconds=1))
    assert [r["position"] for r in after] == [r["position"] for r in mine[3:]]
    assert (
        queries.sessions(rulestream, SessionFilter(profile=pid, state="closed"), 10, 0)[0][0][
            "integration_id"
        ]
        == sid
    )


def test_the_effect_type_filter_equals_filtering_every_event_in_every_order_and_combination(
    rulestream: Rulestream, ids: dict[str, list[str]]
) -> None:
    everything = all_events(rulestream)
    pid = ids["profiles"][1]
    middle = everything[len(everything) // 2]
    for effect in ("addLoyaltyPoints", "setDiscount", "showNotification", "noSuchEffect"):
        having = [r for r in everything if effect in r["effect_types"]]
        assert all_events(rulestream, effect_type=effect) == having
        assert all_events(rulestream, effect_type=effect, descending=True) == having[::-1]
        assert all_events(rulestream, effect_type=effect, profile=pid) == [r for r in having if r["profile"] == pid]
        assert all_events(rulestream, effect_type=effect, created_after=middle["created"]) == [
            r for r in having if r["created"] > middle["created"]
        ]
        assert all_events(rulestream, effect_type=effect, after=middle["position"]) == sorted(
            (r for r in having if r["position"] > middle["position"]), key=lambda r: r["position"]
        )
        page, _ = queries.events(rulestream, EventFilter(effect_type=effect), 2, 1)
        assert page == having[1:3]


def test_the_type_filter_with_several_types_equals_filtering_every_event_in_every_order_and_combination(
    rulestream: Rulestream, ids: dict[str, list[str]]
) -> None:
    everything = all_events(rulestream)
    pid = ids["profiles"][1]
    middle = everything[len(everything) // 2]
    for types in (["talon_session_closed", "cart_viewed"], ["cart_viewed", "review_posted", "talon_session_closed"],
                  ["review_posted", "review_posted"], ["cart_viewed", "no_such_type"]):  # fmt: skip
        having = [r for r in everything if r["type"] in types]
        assert having or types[-1] == "no_such_type"
        assert all_events(rulestream, types=types) == having
        assert all_events(rulestream, types=types, descending=True) == having[::-1]
        assert all_events(rulestream, types=types, profile=pid) == [r for r in having if r["profile"] == pid]
        assert all_events(rulestream, types=types, created_after=middle["created"]) == [
            r for r in having if r["created"] > middle["created"]
        ]
        assert all_events(rulestream, types=types, after=middle["position"]) == sorted(
            (r for r in having if r["position"] > middle["position"]), key=lambda r: r["position"]
        )
        for skip in (0, 1, 3):
            page, more = queries.events(rulestream, EventFilter(types=types), 2, skip)
            assert page == having[skip : skip + 2] and more == (len(having) > skip + 2)
            page, _ = queries.events(rulestream, EventFilter(types=types, descending=True), 2, skip)
            assert page == having[::-1][skip : skip + 2]


def test_the_events_log_pages_by_offset_and_by_cursor_without_gaps_or_repeats(
    rulestream: Rulestream, ids: dict[str, list[str]]
) -> None:
    everything = all_events(rulestream)
    by_offset: list[int] = []
    skip, more = 0, True
    while more:
        page, more = queries.events(rulestream, EventFilter(), 7, skip)
        by_offset += [r["position"] for r in page]
        skip += 7
    assert by_offset == [r["position"] for r in everything]

    by_cursor: list[int] = []
    after, more = 0, True
    while more:
        page, more = queries.events(rulestream, EventFilter(after=after), 7, 0)
        by_cursor += [r["position"] for r in page]
        after = page[-1]["position"] if page else after
    assert by_cursor == sorted(by_offset)
    backwards, _ = queries.events(rulestream, EventFilter(after=by_cursor[-1], descending=True), 5, 0)
    assert [r["position"] for r in backwards] == by_cursor[-6:-1][::-1]
    newest, _ = queries.events(rulestream, EventFilter(descending=True), 3, 0)
    assert [r["position"] for r in newest] == [r["position"] for r in everything[::-1][:3]]


FILTERS = {
    "type": EventFilter(types=["talon_session_closed", "cart_viewed"]),
    "type, -created": EventFilter(types=["talon_session_closed", "cart_viewed"], descending=True),
    "type + profile": EventFilter(types=["talon_session_closed", "cart_viewed"], profile="p-x"),
    "one type": EventFilter(types=["talon_session_closed"]),
    "createdBefore": EventFilter(created_before=datetime(2000, 1, 1, tzinfo=UTC)),
    "createdAfter": EventFilter(created_after=datetime(2100, 1, 1, tzinfo=UTC)),
    "session": EventFilter(session="s-x"),
    "profile": EventFilter(profile="p-x"),
    "effectType": EventFilter(effect_type="setDiscount"),
    "attributesQuery": EventFilter(attributes={"stars": 3}),
    "after": EventFilter(after=10),
}


@pytest.mark.parametrize("name", FILTERS)
def test_every_events_log_filter_is_served_by_an_index(rulestream: Rulestream, ids: Any, name: str) -> None:
    text, params = queries.events_sql(FILTERS[name], 51, 0)
    with rulestream.recorder.datastore.get_connection() as conn, conn.transaction():  # type: ignore[attr-defined]
        # A small table makes a scan cheapest; forbid it to see whether an index can serve the filter at all.
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute("EXPLAIN " + text, params))
    assert "Seq Scan" not in plan and "Index" in plan, plan


def test_status_says_stopped_while_no_process_runs_a_read_model(own_rulestream: Rulestream) -> None:
    from projections import registry
    from projections.follower import FollowerRunner

    status.ensure(own_rulestream)
    assert {p["state"] for p in status.status(own_rulestream)} == {"stopped"}
    follower = next(f for f in registry.followers(own_rulestream, registry.PROJECTIONS) if f.name == "events_log")
    runner = FollowerRunner(own_rulestream, follower)
    runner.thread()
    try:
        assert runner.elected.wait(30)
        states = {p["name"]: p["state"] for p in status.status(own_rulestream)}
        assert states["events_log"] == "live" and states["sessions"] == "stopped"
    finally:
        runner.shut_down()
