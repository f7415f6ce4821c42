"""Delayed rules on the real PostgreSQL: the policy schedules, the timer fires once across restarts, the policy
evaluates against the state at that moment (or not at all after a ``cancelIf`` event), and replay agrees.

Time is a ``FakeClock``: the tests advance it instead of sleeping.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.application import Rulestream
from domain.clock import FakeClock
from domain.delays import Delay, delay_id
from domain.effects import Evaluation, evaluation_id, plain
from domain.rulebook import RuleBook
from projections import queries
from projections.events_log import EventsLog
from projections.follower import FollowerRunner, wait_for
from projections.policy import RulePolicy
from projections.queries import EventFilter
from projections.replay import Replay
from projections.timers import Timers
from tests.builders import cart_item, session_changes

DELAY = timedelta(hours=2)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def add_to_cart(rulestream: Rulestream) -> tuple[str, int]:
    """A custom event type ``add_to_cart_<tag>`` and a reminder rule: 2 hours after it, unless the session
    closed, if the cart is then worth 100 or more, show a notification naming the cart's total."""
    name = f"add_to_cart_{uuid.uuid4().hex[:6]}"
    rulestream.create_attribute("Event", "sku", "string", event_type=name)
    rule = RuleBook(rulestream).create(
        {"name": f"reminder {name}", "trigger": [name],
         "delay": {"after": "PT2H", "cancelIf": ["talon_session_closed"]},
         "condition": {"attr": "session.total", "op": "gte", "value": 100},
         "effects": [{"effectType": "showNotification",
                      "props": {"notificationType": "Offer", "title": "Your cart", "body": "Complete your order"}},
                     {"effectType": "setDiscount", "props": {"name": "come-back", "value": {"attr": "session.total"}}}]},
        "test",
    )  # fmt: skip
    return name, rule.rule_id


def policy(app: Rulestream) -> None:
    FollowerRunner(app, RulePolicy(app)).run_until_caught_up()


def timers(app: Rulestream, clock: FakeClock) -> Timers:
    """A fresh timer follower (as after a restart), caught up with the log; its alarm is driven by the test."""
    follower = Timers(app, clock, alarm=False)
    FollowerRunner(app, follower).run_until_caught_up()
    return follower


def abandon_cart(app: Rulestream, event_type: str, total: int = 20) -> tuple[str, str, uuid.UUID]:
    """A session with a cart, and the custom event that schedules the reminder; answers the delay's id."""
    sid, pid = new_id("s"), new_id("p")
    app.update_session(sid, session_changes(cart_item("a", total, 1), profile=pid), "open")
    outcome = app.track_event(event_type, {"sku": "a"}, pid, sid)
    event = outcome.events[-1]
    return sid, pid, delay_id(event.originator_id, event.originator_version, 0)


def came_due(app: Rulestream, sid: str) -> list[Evaluation]:
    found = []
    for notification in app.recorder.select_notifications(start=0, limit=1_000_000):
        event: Any = app.mapper.to_domain_event(notification)
        if isinstance(event, Evaluation.Evaluated) and event.cause["sessionId"] == sid:
            if event.cause["type"] == Delay.DelayCameDue.talon_type:
                found.append(app.repository.get(event.originator_id))
    return found


def test_a_delayed_rule_fires_after_the_delay_against_the_state_then(
    rulestream: Rulestream, add_to_cart: tuple[str, int]
) -> None:
    event_type, rule_id = add_to_cart
    clock = FakeClock(datetime.now(UTC))
    sid, pid, _ = abandon_cart(rulestream, event_type, total=20)
    policy(rulestream)
    timer = timers(rulestream, clock)
    clock.advance(DELAY - timedelta(minutes=1))
    timer.fire_due()
    policy(rulestream)
    assert came_due(rulestream, sid) == []  # not yet due

    rulestream.update_session(sid, session_changes(cart_item("a", 150, 1), profile=pid), "open")
    clock.advance(timedelta(minutes=2))
    timer.fire_due()
    policy(rulestream)
    (evaluation,) = came_due(rulestream, sid)
    assert [e["effectType"] for e in evaluation.effects] == ["showNotification", "setDiscount"]
    assert evaluation.effects[0]["campaignId"] == rule_id
    assert evaluation.effects[1]["props"]["value"] == "150"  # the cart as it was when the delay came due


def test_a_cancel_if_event_in_between_cancels_the_evaluation(
    rulestream: Rulestream, add_to_cart: tuple[str, int]
) -> None:
    event_type, _ = add_to_cart
    clock = FakeClock(datetime.now(UTC))
    sid, pid, _ = abandon_cart(rulestream, event_type, total=150)
    policy(rulestream)
    rulestream.update_session(sid, session_changes(cart_item("a", 150, 1), profile=pid), "closed")
    policy(rulestream)
    timer = timers(rulestream, clock)
    clock.advance(DELAY + timedelta(seconds=1))
    timer.fire_due()
    policy(rulestream)
    (evaluation,) = came_due(rulestream, sid)
    assert evaluation.effects == []
    assert evaluation.failures[0]["details"].startswith("cancelled by talon_session_closed@")


def test_a_close_of_another_session_does_not_cancel(
    rulestream: Rulestream, add_to_cart: tuple[str, int]
) -> None:
    event_type, _ = add_to_cart
    clock = FakeClock(datetime.now(UTC))
    sid, pid, _ = abandon_cart(rulestream, event_type, total=150)
    rulestream.update_session(new_id("s"), session_changes(cart_item("b", 5, 1), profile=pid), "closed")
    policy(rulestream)
    timer = timers(rulestream, clock)
    clock.advance(DELAY + timedelta(seconds=1))
    timer.fire_due()
    policy(rulestream)
    (evaluation,) = came_due(rulestream, sid)
    assert [e["effectType"] for e in evaluation.effects] == ["showNotification", "setDiscount"]


def test_timers_survive_a_restart_and_fire_once(rulestream: Rulestream, add_to_cart: tuple[str, int]) -> None:
    event_type, _ = add_to_cart
    clock = FakeClock(datetime.now(UTC))
    sid, _, _ = abandon_cart(rulestream, event_type, total=150)
    policy(rulestream)
    timers(rulestream, clock)  # the timer is kept ...
    clock.advance(DELAY + timedelta(seconds=1))
    restarted = timers(rulestream, clock)  # ... by a process that stopped; another one fires it
    restarted.fire_due()
    timers(rulestream, clock).fire_due()  # and a third one finds nothing left to fire
    restarted.fire_due()
    policy(rulestream)
    (evaluation,) = came_due(rulestream, sid)
    assert len(evaluation.effects) == 2


def test_replay_reproduces_delayed_effects(rulestream: Rulestream, add_to_cart: tuple[str, int]) -> None:
    event_type, _ = add_to_cart
    clock = FakeClock(datetime.now(UTC))
    fired, _, _ = abandon_cart(rulestream, event_type, total=150)
    cancelled, pid, _ = abandon_cart(rulestream, event_type, total=150)
    rulestream.update_session(cancelled, session_changes(cart_item("a", 150, 1), profile=pid), "closed")
    policy(rulestream)
    timer = timers(rulestream, clock)
    clock.advance(DELAY + timedelta(seconds=1))
    timer.fire_due()
    policy(rulestream)

    replayed = {
        (str(r.originator_id), r.originator_version): r.result
        for r in Replay(rulestream).run()
        if r.session_id in (fired, cancelled) and r.result.effects
    }
    (evaluation,) = came_due(rulestream, fired)
    (key,) = replayed
    assert key == (evaluation.cause["originatorId"], 2)
    recorded: Evaluation = rulestream.repository.get(evaluation_id(uuid.UUID(key[0]), key[1]))
    assert recorded.effects == plain(replayed[key].effects)


def test_the_events_log_shows_the_scheduled_and_fired_evaluation_under_its_trigger(
    rulestream: Rulestream, add_to_cart: tuple[str, int]
) -> None:
    event_type, rule_id = add_to_cart
    clock = FakeClock(datetime.now(UTC))
    sid, pid, _ = abandon_cart(rulestream, event_type, total=150)
    policy(rulestream)
    timer = timers(rulestream, clock)
    clock.advance(DELAY + timedelta(seconds=1))
    timer.fire_due()
    policy(rulestream)
    FollowerRunner(rulestream, EventsLog(rulestream)).run_until_caught_up()

    rows, _ = queries.events(rulestream, EventFilter(session=sid), 100, 0)
    assert [r["type"] for r in rows] == [
        "talon_session_created", event_type, "rulestream_delay_scheduled", "rulestream_delay_came_due",
    ]  # fmt: skip
    scheduled, fired = rows[2:]
    assert {(r["profile"], r["session"]) for r in (scheduled, fired)} == {(pid, sid)}
    assert scheduled["attributes"]["ruleId"] == rule_id
    assert scheduled["attributes"]["causePosition"] == rows[1]["position"]
    assert [e["effectType"] for e in fired["effects"]] == ["showNotification", "setDiscount"]


def test_the_alarm_started_before_its_table_is_committed_waits_for_it_without_an_error(
    own_rulestream: Rulestream, caplog: pytest.LogCaptureFixture
) -> None:
    # A follower's start runs in the transaction that creates its tables: the alarm's first look comes earlier.
    timers = Timers(own_rulestream)
    try:
        datastore: Any = own_rulestream.recorder.datastore  # type: ignore[attr-defined]
        with caplog.at_level(logging.DEBUG, logger="rulestream.timers"):
            with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
                timers.start(cursor)
                wait_for(lambda: "no timers table yet" in caplog.text)
                timers.setup(cursor)
            time.sleep(0.3)
        assert timers._alarm is not None and timers._alarm.is_alive()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    finally:
        timers.stop()
