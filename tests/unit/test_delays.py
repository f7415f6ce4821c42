"""Delay semantics, in memory with a fake clock: a delayed rule fires once its delay has passed, against the state
at that moment, and not at all when a ``cancelIf`` event of its session (or profile) happens in between."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from domain.clock import FakeClock
from domain.delays import DelayBook, PendingDelay, delay_id
from domain.rules.compiler import CompiledRule
from domain.rules.decide import decide
from tests.unit.rules.builders import NOW, compiled, context, session

REMINDER = {"after": "PT2H", "cancelIf": ["talon_session_closed"]}
NOTIFY = [
    {"effectType": "showNotification", "props": {"notificationType": "Offer", "title": "Cart", "body": "..."}}
]


def reminder(**fields: object) -> CompiledRule:
    return compiled(7, 1, trigger=["add_to_cart"], delay=REMINDER, effects=NOTIFY, **fields)


def schedule(
    book: DelayBook, rule: CompiledRule, *, session_id: str | None = "s1", profile_id: str = "p1"
) -> None:
    """Trigger ``rule`` at ``NOW`` and keep its delay, as the policy does."""
    (delayed,) = decide([rule], context("add_to_cart", at=NOW, session_view=session(total="20"))).delayed
    book.schedule(
        PendingDelay(
            delay_id(uuid.uuid4(), 1, delayed.rule_id), delayed.rule_id, delayed.rule_version, delayed.due_at,
            delayed.cancel_if, "add_to_cart", {}, profile_id, session_id, None,
        )
    )  # fmt: skip


def test_a_delayed_rule_comes_due_only_once_its_delay_has_passed() -> None:
    clock, book = FakeClock(NOW), DelayBook()
    schedule(book, reminder())
    clock.advance(timedelta(hours=1, minutes=59))
    assert book.due(clock.now()) == []
    clock.advance(timedelta(minutes=1))
    (due,) = book.due(clock.now())
    assert due.due_at == NOW + timedelta(hours=2) and due.cancelled_by is None
    assert book.due(clock.now() + timedelta(days=1)) == []  # taken: it comes due once


def test_a_due_rule_is_evaluated_against_the_state_at_that_moment() -> None:
    rule = reminder(condition={"attr": "session.total", "op": "gte", "value": 100})
    clock, book = FakeClock(NOW), DelayBook()
    schedule(book, rule)  # the cart was worth 20 then
    clock.advance(timedelta(hours=2))
    (due,) = book.due(clock.now())
    then = context("add_to_cart", at=due.due_at, session_view=session(total="150"))
    decision = decide([rule], then, due=True)
    assert [e.effect_type for e in decision.effects] == ["showNotification"]
    assert decide([rule], context("add_to_cart", session_view=session(total="20")), due=True).effects == []


def test_a_cancel_if_event_of_the_same_session_cancels_it() -> None:
    clock, book = FakeClock(NOW), DelayBook()
    schedule(book, reminder())
    book.observe("talon_session_closed", "p1", "s1", position=42)
    clock.advance(timedelta(hours=3))
    (due,) = book.due(clock.now())
    assert due.cancelled_by == "talon_session_closed@42"


def test_events_of_other_sessions_or_types_do_not_cancel_it() -> None:
    book = DelayBook()
    schedule(book, reminder())
    book.observe("talon_session_closed", "p1", "s2", position=1)  # the profile's other session
    book.observe("talon_session_updated", "p1", "s1", position=2)  # not a cancelIf type
    (due,) = book.due(NOW + timedelta(hours=2))
    assert due.cancelled_by is None


def test_without_a_session_a_cancel_if_event_of_the_profile_cancels_it() -> None:
    book = DelayBook()
    schedule(book, reminder(), session_id=None)
    book.observe("talon_session_closed", "p2", "s9", position=1)
    book.observe("talon_session_closed", "p1", "s9", position=2)
    (due,) = book.due(NOW + timedelta(hours=2))
    assert due.cancelled_by == "talon_session_closed@2"


def test_the_clock_only_moves_when_told() -> None:
    clock = FakeClock(NOW)
    assert clock.now() == NOW and clock.seconds_until(NOW) == 0
    assert clock.advance(timedelta(seconds=5)) == NOW + timedelta(seconds=5)
    assert Decimal(clock.seconds_until(NOW + timedelta(hours=1))) > 0
