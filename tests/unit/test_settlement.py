"""Session effect semantics of RULES.md, as the pure settlement function."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.settlement import SessionLedger, answered, settle


def effect(kind: str, value: str | int, name: str = "n", rule: int = 1) -> dict[str, Any]:
    return {"campaignId": rule, "rulesetId": 1, "ruleIndex": 0, "ruleName": "r", "effectType": kind,
            "props": {"name": name, "value": Decimal(value)}}  # fmt: skip


def kinds(effects: list[dict[str, Any]]) -> list[tuple[str, Decimal]]:
    return sorted((e["effectType"], e["props"]["value"]) for e in effects)


def test_points_are_pending_while_open_and_credited_on_close() -> None:
    opened = settle("talon_session_updated", [effect("addLoyaltyPoints", 10)], SessionLedger(), "p")
    assert opened.entries == [] and opened.ledger is not None and opened.ledger.pending_points == 10
    closed = settle("talon_session_closed", [], opened.ledger, "p", session_value=Decimal(100))
    assert [(e.amount, e.reason) for e in closed.entries] == [(Decimal(10), "addLoyaltyPoints")]


def test_the_same_rule_and_name_overwrite_pending_points_instead_of_adding() -> None:
    first = settle("talon_session_updated", [effect("addLoyaltyPoints", 10)], SessionLedger(), "p")
    second = settle("talon_session_closed", [effect("addLoyaltyPoints", 12)], first.ledger, "p")
    assert [e.amount for e in second.entries] == [Decimal(12)]


def test_a_later_discount_of_the_same_name_overwrites() -> None:
    first = settle("talon_session_created", [effect("setDiscount", 5, "d")], SessionLedger(), "p")
    second = settle("talon_session_updated", [effect("setDiscount", 7, "d")], first.ledger, "p")
    assert second.ledger is not None and second.ledger.discounts["d"]["props"]["value"] == 7


def test_cancelling_an_open_session_rolls_back_its_discounts_but_books_nothing() -> None:
    opened = settle("talon_session_updated", [effect("setDiscount", 5, "d"), effect("addLoyaltyPoints", 9)],
                    SessionLedger(), "p")  # fmt: skip
    cancelled = settle("talon_session_cancelled", [], opened.ledger, "p")
    assert kinds(cancelled.effects) == [("rollbackDiscount", Decimal(5))]
    assert cancelled.entries == []


def test_revoking_rolls_back_what_the_close_credited() -> None:
    closed = settle("talon_session_closed", [effect("setDiscount", 5, "d"), effect("addLoyaltyPoints", 40),
                                             effect("deductLoyaltyPoints", 3, "x", rule=2)],
                    SessionLedger(), "p", session_value=Decimal(80))  # fmt: skip
    assert sum(e.amount for e in closed.entries) == 37
    revoked = settle("talon_session_revoked", [], closed.ledger, "p")
    assert kinds(revoked.effects) == [
        ("rollbackAddedLoyaltyPoints", Decimal(40)), ("rollbackDeductedLoyaltyPoints", Decimal(3)),
        ("rollbackDiscount", Decimal(5)),
    ]  # fmt: skip
    assert sum(e.amount for e in revoked.entries) == -37


def test_returns_roll_back_pro_rata_and_the_last_rollback_takes_exactly_the_rest() -> None:
    closed = settle("talon_session_closed", [effect("addLoyaltyPoints", 10)], SessionLedger(), "p",
                    session_value=Decimal(30))  # fmt: skip
    third = settle("talon_session_partially_returned", [], closed.ledger, "p", session_value=Decimal(20))
    assert [e.amount for e in third.entries] == [Decimal("-3.33")]
    again = settle("talon_session_partially_returned", [], third.ledger, "p", session_value=Decimal(10))
    assert [e.amount for e in again.entries] == [Decimal("-3.34")]
    revoked = settle("talon_session_revoked", [], again.ledger, "p")
    assert [e.amount for e in revoked.entries] == [Decimal("-3.33")]


def test_custom_event_points_are_booked_at_once() -> None:
    tracked = settle("purchase", [effect("addLoyaltyPoints", 4)], None, "p")
    assert [e.amount for e in tracked.entries] == [Decimal(4)]


def test_a_ledger_survives_its_json_record() -> None:
    closed = settle("talon_session_closed", [effect("setDiscount", "2.5", "d")], SessionLedger(), "p",
                    session_value=Decimal("9.99"))  # fmt: skip
    assert closed.ledger is not None
    assert SessionLedger.from_record(closed.ledger.to_record()) == closed.ledger


def test_settling_leaves_the_given_ledger_as_it_was() -> None:
    before = settle("talon_session_updated", [effect("addLoyaltyPoints", 10)], SessionLedger(), "p").ledger
    assert before is not None
    after = settle("talon_session_updated", [effect("addLoyaltyPoints", 25, rule=2)], before, "p").ledger
    assert after is not None
    assert (before.pending_points, after.pending_points) == (10, 35)


def test_a_rule_that_no_longer_holds_drops_what_it_held_for_the_session() -> None:
    held = [effect("setDiscount", 20, "big"), effect("addLoyaltyPoints", 100, "pts")]
    opened = settle("talon_session_created", held + [effect("setDiscount", 3, "small", rule=2)], SessionLedger(), "p")
    cheaper = settle("talon_session_updated", [], opened.ledger, "p", lapsed=[1])
    assert cheaper.ledger is not None and list(cheaper.ledger.discounts) == ["small"]
    assert cheaper.ledger.pending_points == 0
    closed = settle("talon_session_closed", [], cheaper.ledger, "p", session_value=Decimal(50))
    assert closed.entries == []
    revoked = settle("talon_session_revoked", [], closed.ledger, "p")
    assert kinds(revoked.effects) == [("rollbackDiscount", Decimal(3))]


def test_a_rule_that_fires_again_replaces_what_it_held_even_under_another_name() -> None:
    first = settle("talon_session_created", [effect("setDiscount", 5, "old")], SessionLedger(), "p")
    second = settle("talon_session_updated", [effect("setDiscount", 7, "new")], first.ledger, "p")
    assert second.ledger is not None and list(second.ledger.discounts) == ["new"]


def test_a_rule_not_triggered_by_the_event_keeps_what_it_held() -> None:
    first = settle("talon_session_created", [effect("setDiscount", 5, "welcome")], SessionLedger(), "p")
    second = settle("talon_session_updated", [effect("setDiscount", 7, "d", rule=2)], first.ledger, "p", lapsed=[3])
    assert second.ledger is not None and sorted(second.ledger.discounts) == ["d", "welcome"]


def failure(rule: int, condition_index: int | None = 0) -> dict[str, Any]:
    return {"campaignID": rule, "conditionIndex": condition_index, "effectIndex": None, "details": "x"}


def test_a_request_answers_each_rule_once_by_its_last_evaluation() -> None:
    created = ([effect("setDiscount", 8, "d10"), effect("addLoyaltyPoints", 80, "pts", rule=2)], [failure(3)])
    closed = ([effect("setDiscount", 8, "d10"), effect("addLoyaltyPoints", 80, "pts", rule=2)], [])
    effects, failures = answered([created, closed])
    assert kinds(effects) == [("addLoyaltyPoints", Decimal(80)), ("setDiscount", Decimal(8))]
    assert [f["campaignID"] for f in failures] == [3]


def test_a_rule_that_lapses_later_in_the_request_is_answered_by_its_failure() -> None:
    effects, failures = answered([([effect("setDiscount", 8, "d")], []), ([], [failure(1)])])
    assert effects == [] and [f["campaignID"] for f in failures] == [1]


def test_a_limit_after_a_firing_does_not_hide_the_firing() -> None:
    limit = failure(1, condition_index=None)
    effects, failures = answered([([effect("addLoyaltyPoints", 5)], []), ([], [limit])])
    assert kinds(effects) == [("addLoyaltyPoints", Decimal(5))] and failures == []


def test_rollbacks_are_all_answered() -> None:
    rollbacks = [effect("rollbackDiscount", 5, "a"), effect("rollbackDiscount", 6, "b")]
    assert answered([(rollbacks, [])])[0] == rollbacks
