"""A profile's sales figures from its bookkeeping events: constant in size, and the same from version 1 logs."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from eventsourcing.persistence import StoredEvent

from domain.application import Rulestream, profile_id
from domain.profile import CustomerProfile
from projections import queries
from tests.builders import cart_item, session_changes
from tests.integration.projections.conftest import catch_up

pytestmark = pytest.mark.integration


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def as_version_1(stored: StoredEvent) -> StoredEvent:
    """The event as the first version of these classes recorded it: no class version, no amounts on uncounts."""
    state = json.loads(stored.state)
    state.pop("class_version", None)
    state.pop("legacy", None)
    if stored.topic.endswith("SaleUncounted"):
        state.pop("amount")
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic, json.dumps(state).encode())


def sales(pid: str) -> list[object]:
    """Two sessions counted, one reduced by a return and then revoked: 1 sale of 20 remains."""
    profile = CustomerProfile.register(profile_id(pid), pid, {"name": "Ann"}, run_rule_engine=False)
    profile.count_sale("s1", Decimal(30))
    profile.count_sale("s2", Decimal(20))
    profile.reduce_sale("s1", Decimal(5))
    profile.uncount_sale("s1", Decimal(25), "cancelled")
    return list(profile.collect_events())


@pytest.mark.parametrize("version", [1, 2])
def test_sales_figures_replay_alike_from_either_version_of_the_events(rulestream: Rulestream, version: int) -> None:
    pid = new_id("p")
    stored = [rulestream.mapper.to_stored_event(e) for e in sales(pid)]  # type: ignore[arg-type]
    rulestream.recorder.insert_events([as_version_1(s) for s in stored] if version == 1 else stored)

    profile = rulestream.get_profile(pid)
    assert profile is not None and (profile.closed_sessions, profile.total_sales) == (1, Decimal(20))
    # Only version 1 needs the amounts remembered; the current events carry them, the profile holds two sums.
    assert profile.legacy_sales == ({"s2": "20"} if version == 1 else {})
    catch_up(rulestream)
    row = queries.profile(rulestream, pid)
    assert row is not None and (row["closed_sessions"], row["total_sales"]) == (1, Decimal(20))


def test_a_loyal_customer_profile_does_not_grow_with_the_sessions_they_close(rulestream: Rulestream) -> None:
    pid = new_id("p")
    for n in range(5):
        rulestream.update_session(f"{pid}-s{n}", session_changes(cart_item("a", 10, 1), profile=pid), "closed")
    rulestream.reopen_session(f"{pid}-s0")
    rulestream.update_session(f"{pid}-s1", {}, "cancelled")
    profile = rulestream.get_profile(pid)
    assert profile is not None and (profile.closed_sessions, profile.total_sales) == (3, Decimal(30))
    assert profile.legacy_sales == {}
    uncounted = [e for e in rulestream.events.get(profile_id(pid)) if isinstance(e, CustomerProfile.SaleUncounted)]
    assert [(e.session_id, e.amount, e.reason) for e in uncounted] == [
        (f"{pid}-s0", "10", "reopened"),
        (f"{pid}-s1", "10", "cancelled"),
    ]
