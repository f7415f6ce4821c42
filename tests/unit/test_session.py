from decimal import Decimal

import pytest

from domain.application import Rulestream
from domain.errors import InvalidInput, InvalidTransition
from domain.session import ReturnedItem
from tests.builders import cart_item, session_changes


@pytest.fixture
def app() -> Rulestream:
    return Rulestream(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def types(outcome):  # type: ignore[no-untyped-def]
    return [type(e).talon_type for e in outcome.events if type(e).talon_type]


def test_a_new_session_is_created_open_with_exact_totals(app: Rulestream) -> None:
    out = app.update_session(
        "s1",
        session_changes(cart_item("a", "0.1", 3), cart_item("b", "0.2", 1), additionalCosts={"shipping": "4.99"}),
        None,
    )
    assert types(out) == ["talon_session_created"]
    assert out.session is not None
    assert out.session.state == "open"
    assert out.session.cart_item_total == Decimal("0.5")
    assert out.session.total == Decimal("5.49")


def test_a_session_created_closed_records_created_then_closed(app: Rulestream) -> None:
    out = app.update_session("s1", session_changes(), "closed")
    assert types(out) == ["talon_session_created", "talon_session_closed"]
    assert out.profile is not None
    assert (out.profile.closed_sessions, out.profile.total_sales) == (1, Decimal(10))


def test_closing_a_closed_session_is_refused_and_names_both_states(app: Rulestream) -> None:
    app.update_session("s1", session_changes(), "closed")
    with pytest.raises(InvalidTransition, match="'closed' to 'closed'"):
        app.update_session("s1", {}, "closed")


def test_revoking_a_closed_session_takes_it_out_of_the_sales(app: Rulestream) -> None:
    app.update_session("s1", session_changes(), "closed")
    out = app.update_session("s1", {}, "cancelled")
    assert types(out) == ["talon_session_revoked"]
    assert out.profile is not None
    assert (out.profile.closed_sessions, out.profile.total_sales) == (0, Decimal(0))


def test_a_cancelled_session_cannot_be_reopened_or_closed(app: Rulestream) -> None:
    app.update_session("s1", session_changes(), None)
    app.update_session("s1", {}, "cancelled")
    for state in ("open", "closed", "cancelled"):
        with pytest.raises(InvalidTransition):
            app.update_session("s1", {}, state)


def test_partial_returns_reduce_sales_and_keep_quantities(app: Rulestream) -> None:
    app.update_session("s1", session_changes(cart_item("a", 10, 3), cart_item("b", 5, 2)), "closed")
    out = app.return_items("s1", [ReturnedItem(0, 2)])
    assert types(out) == ["talon_session_partially_returned"]
    assert out.session is not None and out.profile is not None
    assert out.session.state == "partially_returned"
    assert (out.session.cart_items[0].returned_quantity, out.session.cart_items[0].remaining_quantity) == (2, 1)
    assert out.profile.total_sales == Decimal(20)
    out = app.return_items("s1", [ReturnedItem(0, 1), ReturnedItem(1, 2)])
    assert out.profile is not None and out.profile.total_sales == Decimal(0)
    with pytest.raises(InvalidInput) as refused:
        app.return_items("s1", [ReturnedItem(0, 1)])
    assert refused.value.problems[0].pointer == "/return/returnedCartItems/0/quantity"


def test_returns_need_a_closed_session(app: Rulestream) -> None:
    app.update_session("s1", session_changes(), None)
    with pytest.raises(InvalidTransition, match="'open' to 'partially_returned'"):
        app.return_items("s1", [ReturnedItem(0, 1)])


def test_reopening_uncounts_the_sale_and_allows_changes(app: Rulestream) -> None:
    app.update_session("s1", session_changes(), "closed")
    out = app.reopen_session("s1")
    assert types(out) == ["talon_session_reopened"]
    assert out.profile is not None and out.profile.closed_sessions == 0
    out = app.update_session("s1", {"cartItems": [cart_item("x", 7, 1)]}, None)
    assert types(out) == ["talon_session_updated"]
    assert out.session is not None and out.session.total == Decimal(7)


def test_a_dry_update_records_nothing(app: Rulestream) -> None:
    out = app.update_session("s1", session_changes(), "closed", dry=True)
    assert types(out) == ["talon_session_created", "talon_session_closed"]
    assert app.get_profile("p-1") is None
    assert app.recorder.max_notification_id() is None


def test_an_unknown_profile_is_created_empty(app: Rulestream) -> None:
    app.update_session("s1", session_changes(profile="new-one"), None)
    profile = app.get_profile("new-one")
    assert profile is not None and profile.attributes == {} and profile.sessions == 1


def test_first_session_is_true_only_for_the_first(app: Rulestream) -> None:
    first = app.update_session("s1", session_changes(), None).session
    second = app.update_session("s2", session_changes(), None).session
    assert first is not None and second is not None
    assert (first.first_session, second.first_session) == (True, False)


def test_custom_events_go_to_the_session_stream_when_named(app: Rulestream) -> None:
    app.create_attribute("Event", "sku", "string", event_type="add_to_cart")
    app.create_attribute("Event", "source", "string", event_type="visit")
    app.update_session("s1", session_changes(), None)
    out = app.track_event("add_to_cart", {"sku": "a"}, None, "s1")
    assert out.session is not None and out.session.custom_events == 1
    out = app.track_event("visit", {}, "p-1", None)
    assert out.session is None and out.profile is not None
    out = app.track_event("visit", {}, None, None)
    assert len(out.positions) == 1


def test_a_profile_with_many_sessions_keeps_exact_sales(app: Rulestream) -> None:
    for n in range(30):
        app.update_session(f"m{n}", session_changes(cart_item("a", "3.33", 3), profile="loyal"), "closed")
    for n in range(0, 30, 3):
        app.update_session(f"m{n}", {}, "cancelled")
    for n in range(1, 30, 3):  # 1, 4, 7, ...: none of them cancelled
        app.return_items(f"m{n}", [ReturnedItem(0, 1)])
    app.reopen_session("m2")
    profile = app.get_profile("loyal")
    assert profile is not None
    counted = [s for s in (app.get_session(f"m{n}") for n in range(30)) if s.counts_as_sale]
    assert profile.closed_sessions == len(counted) == 19
    assert profile.total_sales == sum((s.total for s in counted), Decimal(0))


def test_a_copy_of_a_session_or_profile_shares_nothing_a_command_could_change(app: Rulestream) -> None:
    import copy

    out = app.update_session("s-copy", session_changes(cart_item("a", 10, 2), profile="p-copy"), "closed")
    assert out.session is not None and out.profile is not None
    for original in (out.session, out.profile):
        clone = copy.deepcopy(original)
        assert type(clone) is type(original) and vars(clone) == vars(original)
    session = copy.deepcopy(out.session)
    session.cart_items[0].attributes["changed"] = True
    session.cart_items.clear()
    assert out.session.cart_items and "changed" not in out.session.cart_items[0].attributes
    profile = copy.deepcopy(out.profile)
    profile.legacy_sales["s-old"] = "1"
    profile.attributes["x"] = 1
    assert out.profile.legacy_sales == {} and "x" not in out.profile.attributes
