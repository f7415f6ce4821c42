"""Stream histories, with the effects each event caused, and the state of a session as of a version or
moment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.application import Rulestream, profile_id, session_id
from domain.base import recording
from domain.clock import FakeClock
from domain.effects import Cause, Evaluation
from domain.rulebook import RuleBook
from projections.audit.asof import INTERVAL, history_of
from projections.audit.log import AuditLog
from projections.follower import FollowerRunner
from projections.policy import RulePolicy
from projections.timers import Timers
from tests.builders import cart_item, session_changes


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_a_session_history_lists_every_event_in_order_with_its_request_and_effects(app: Rulestream) -> None:
    sid, pid = new_id("s"), new_id("p")
    with recording(correlationId="req-1", keyName="shop"):
        created = app.update_session(sid, session_changes(cart_item("a", "5", 2), profile=pid), None)
    with recording(correlationId="req-2", keyName="shop"):
        app.update_session(sid, {}, "closed")
    first = next(e for e in created.events if e.originator_id == session_id(sid))
    cause = Cause(created.position_of(first) or 0, str(session_id(sid)), 1, "talon_session_created", pid, sid)
    effect = {
        "campaignId": 7,
        "rulesetId": 3,
        "ruleIndex": 0,
        "ruleName": "double",
        "effectType": "addLoyaltyPoints",
        "props": {"value": "10"},
    }
    with recording(causationId=str(created.position_of(first))):
        app.save(Evaluation.record(cause, [effect], [], []))

    page = AuditLog(app).history(session_id(sid))

    assert [e["version"] for e in page.entries] == [1, 2]
    assert [e["type"] for e in page.entries] == ["talon_session_created", "talon_session_closed"]
    assert page.entries[0]["position"] < page.entries[1]["position"]
    assert [e["correlationId"] for e in page.entries] == ["req-1", "req-2"]
    assert page.entries[0]["keyName"] == "shop"
    assert page.entries[0]["data"]["integration_id"] == sid
    assert page.entries[0]["recordedAt"] <= page.entries[1]["recordedAt"]
    assert page.entries[0]["evaluated"] and not page.entries[1]["evaluated"]
    (caused,) = page.entries[0]["effects"]
    assert (caused["ruleId"], caused["ruleVersion"], caused["effectType"]) == (7, 3, "addLoyaltyPoints")
    assert not page.has_more


def test_a_profile_history_names_bookkeeping_and_custom_events(app: Rulestream) -> None:
    pid = new_id("p")
    app.update_session(new_id("s"), session_changes(profile=pid), "closed")
    app.create_attribute("Event", "url", "string", event_type="viewed")
    app.track_event("viewed", {"url": "/"}, pid, None)
    types = [e["type"] for e in AuditLog(app).history(profile_id(pid)).entries]
    assert types == [
        "CustomerProfile.Registered",
        "CustomerProfile.SessionStarted",
        "CustomerProfile.SaleCounted",
        "viewed",
    ]


def test_a_long_history_comes_in_pages(app: Rulestream) -> None:
    sid = new_id("s")
    app.update_session(sid, session_changes(profile=None), None)
    for n in range(6):
        app.update_session(sid, {"cartItems": [cart_item("a", 1, n + 1)]}, None)
    log = AuditLog(app)
    seen, after, pages = [], 0, 0
    while True:
        page = log.history(session_id(sid), after, 3)
        seen += [e["version"] for e in page.entries]
        pages += 1
        if not page.has_more:
            break
        after = page.next_after or 0
    assert seen == list(range(1, 8)) and pages == 3


def test_the_state_as_of_a_version_is_the_session_as_it_was(app: Rulestream) -> None:
    sid = new_id("s")
    app.update_session(sid, session_changes(cart_item("a", "2.50", 1), profile=None), None)
    app.update_session(sid, {"cartItems": [cart_item("a", "2.50", 4)]}, None)
    app.update_session(sid, {}, "closed")
    history = history_of(app)
    then = history.at_version(session_id(sid), 2).aggregate
    assert then.state == "open" and then.total == Decimal("10.00")  # type: ignore[attr-defined]
    moment = then.modified_on
    assert history.version_at(session_id(sid), moment) == 2
    assert history.at_version(session_id(sid), 3).aggregate.state == "closed"  # type: ignore[attr-defined]


def test_a_long_stream_is_rebuilt_from_a_snapshot_with_few_events(app: Rulestream) -> None:
    sid = new_id("s")
    app.update_session(sid, session_changes(profile=None), None)
    for n in range(2 * INTERVAL + 10):
        app.update_session(sid, {"cartItems": [cart_item("a", 1, n + 1)]}, None)
    history = history_of(app)
    stream = session_id(sid)
    wanted = 2 * INTERVAL + 5

    first = history.at_version(stream, wanted)
    again = history.at_version(stream, wanted)

    assert first.replayed == wanted  # nothing to start from: every event once, leaving snapshots behind
    assert again.snapshot_version == 2 * INTERVAL and again.replayed == 5
    full = app.repository.get(stream, version=wanted)
    assert vars(again.aggregate) == vars(full) == vars(first.aggregate)


def test_a_profile_history_shows_the_delays_its_sessions_scheduled_with_their_causes_and_effects(
    app: Rulestream,
) -> None:
    name = f"add_to_cart_{uuid.uuid4().hex[:6]}"
    app.create_attribute("Event", "sku", "string", event_type=name)
    RuleBook(app).create(
        {"name": "reminder", "trigger": [name], "delay": {"after": "PT2H"},
         "effects": [{"effectType": "showNotification",
                      "props": {"notificationType": "Offer", "title": "Your cart", "body": "Come back"}}]},
        "test",
    )  # fmt: skip
    clock = FakeClock(datetime.now(UTC))
    sid, pid = new_id("s"), new_id("p")
    app.update_session(sid, session_changes(cart_item("a", 20, 1), profile=pid), "open")
    trigger = app.track_event(name, {"sku": "a"}, pid, sid).positions[-1]
    FollowerRunner(app, RulePolicy(app)).run_until_caught_up()
    timer = Timers(app, clock, alarm=False)
    FollowerRunner(app, timer).run_until_caught_up()
    clock.advance(timedelta(hours=2, seconds=1))
    timer.fire_due()
    FollowerRunner(app, RulePolicy(app)).run_until_caught_up()
    app.update_profile(pid, {}, run_rule_engine=False)

    entries = AuditLog(app).profile_history(pid).entries
    kinds = [e["type"] for e in entries]
    assert kinds[-3:-1] == ["rulestream_delay_scheduled", "rulestream_delay_came_due"]
    assert entries[-1]["streamId"] == str(profile_id(pid))
    assert [e["position"] for e in entries] == sorted(e["position"] for e in entries)
    scheduled, fired = entries[-3:-1]
    assert scheduled["causationId"] == str(trigger) and scheduled["data"]["cause"]["sessionId"] == sid
    assert fired["causationId"] == str(scheduled["position"]) and fired["streamId"] == scheduled["streamId"]
    assert fired["evaluated"] and [e["effectType"] for e in fired["effects"]] == ["showNotification"]

    paged: list[str] = []
    after = 0
    while True:
        page = AuditLog(app).profile_history(pid, after, 1)
        paged += [e["type"] for e in page.entries]
        if not page.has_more:
            break
        after = page.next_after or 0
    assert paged == kinds
