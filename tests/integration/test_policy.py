"""The rule policy on the real PostgreSQL: exactly-once effects across crashes, and replay reproduces the log."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from api.db import eventsourcing_env
from api.settings import Settings
from domain.application import Rulestream
from domain.effects import Evaluation, evaluation_id, plain
from domain.rulebook import RuleBook
from projections.follower import FollowerRunner
from projections.policy import RulePolicy
from projections.policy_state import PolicyState
from projections.replay import Replay
from tests.builders import cart_item, session_changes


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def purchase_type(rulestream: Rulestream) -> str:
    """A custom event type ``purchase_<tag>`` with a number attribute ``amount``."""
    name = f"purchase_{uuid.uuid4().hex[:6]}"
    rulestream.create_attribute("Event", "amount", "number", event_type=name)
    return name


def rules_for(rulestream: Rulestream, purchase: str) -> None:
    book = RuleBook(rulestream)
    book.create(
        {"name": "points per purchase", "trigger": [purchase],
         "effects": [{"effectType": "addLoyaltyPoints",
                      "props": {"name": "p", "value": {"attr": "event.attributes.amount"}}}]},
        "test",
    )  # fmt: skip
    book.create(
        {"name": "every third purchase", "trigger": [purchase], "limits": {"everyNth": 3},
         "effects": [{"effectType": "showNotification",
                      "props": {"notificationType": "Offer", "title": "3rd!", "body": "thanks"}}]},
        "test",
    )  # fmt: skip
    book.create(
        {"name": "loyal closers", "trigger": ["talon_session_closed"],
         "condition": {"history": {"type": purchase, "measure": "sum:amount"}, "op": "gte", "value": 10},
         "effects": [{"effectType": "setDiscount", "props": {"name": "loyal", "value": 5}}]},
        "test",
    )  # fmt: skip


def workload(rulestream: Rulestream, purchase: str, profiles: int = 5) -> list[str]:
    keys = [new_id("p") for _ in range(profiles)]
    for key in keys:
        for amount in (3, 4, 5, 6):
            rulestream.track_event(purchase, {"amount": amount}, key, None)
        rulestream.update_session(new_id("s"), session_changes(cart_item("a", 20, 1), profile=key), "closed")
    return keys


def evaluations(rulestream: Rulestream) -> list[dict[str, Any]]:
    found = []
    for notification in rulestream.recorder.select_notifications(start=0, limit=100_000):
        event = rulestream.mapper.to_domain_event(notification)
        if isinstance(event, Evaluation.Evaluated):
            found.append({"cause": event.cause, "effects": event.effects, "ledger": event.ledger})
    return found


def test_the_policy_records_effects_once_even_when_killed_mid_batch(
    rulestream: Rulestream, purchase_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules_for(rulestream, purchase_type)
    keys = workload(rulestream, purchase_type)
    before = len(evaluations(rulestream))

    policy = RulePolicy(rulestream)
    policy.batch_size = 7
    runner = FollowerRunner(rulestream, policy)
    calls = {"n": 0}
    real = policy._record

    def crash_on_third_batch(*args: Any) -> None:
        calls["n"] += 1
        real(*args)
        if calls["n"] == 3:
            raise RuntimeError("killed mid-batch")

    monkeypatch.setattr(policy, "_record", crash_on_third_batch)
    with pytest.raises(RuntimeError):
        runner.run_until_caught_up()
    monkeypatch.undo()
    FollowerRunner(rulestream, RulePolicy(rulestream)).run_until_caught_up()

    recorded = evaluations(rulestream)[before:]
    causes = [(e["cause"]["originatorId"], e["cause"]["originatorVersion"]) for e in recorded]
    assert len(causes) == len(set(causes)), "an event was evaluated twice"
    mine = [e for e in recorded if e["cause"]["profileId"] in keys]
    points = [e for e in mine for x in e["effects"] if x["effectType"] == "addLoyaltyPoints"]
    thirds = [e for e in mine for x in e["effects"] if x["effectType"] == "showNotification"]
    discounts = [e for e in mine for x in e["effects"] if x["effectType"] == "setDiscount"]
    assert len(points) == 4 * len(keys)  # every purchase
    assert len(thirds) == 1 * len(keys)  # the 3rd of 4 purchases
    assert len(discounts) == len(keys)  # 3+4+5+6 = 18 >= 10 before each close
    for key in keys:
        balance = sum(Decimal(x["amount"]) for e in mine for x in e["ledger"] if x["profileId"] == key)
        assert balance == 18


def test_the_checkpoint_passes_the_policys_own_evaluations_but_never_an_event_appended_in_between(
    rulestream: Rulestream, purchase_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules_for(rulestream, purchase_type)
    runner = FollowerRunner(rulestream, RulePolicy(rulestream))
    runner.run_until_caught_up()
    rulestream.track_event(purchase_type, {"amount": 2}, new_id("p"), None)
    assert runner.step()
    assert runner.checkpoint == rulestream.recorder.max_notification_id()  # its evaluation, passed at once

    first = rulestream.track_event(purchase_type, {"amount": 3}, new_id("p"), None)
    policy: Any = runner.follower
    real = policy._record
    interleaved: list[Any] = []

    def another_writer_appends_first(*args: Any) -> None:  # after the batch's read, before its insert
        if not interleaved:
            interleaved.append(rulestream.track_event(purchase_type, {"amount": 4}, new_id("p"), None))
        real(*args)

    monkeypatch.setattr(policy, "_record", another_writer_appends_first)
    assert runner.step()
    assert runner.checkpoint == first.last_position
    runner.run_until_caught_up()
    event = interleaved[0].events[-1]
    evaluated: Evaluation = rulestream.repository.get(evaluation_id(event.originator_id, event.originator_version))
    assert [e["props"]["value"] for e in evaluated.effects if e["effectType"] == "addLoyaltyPoints"] == ["4"]


def test_prefetched_balances_and_ledgers_equal_what_one_read_each_answers(
    rulestream: Rulestream, purchase_type: str
) -> None:
    rules_for(rulestream, purchase_type)
    keys = workload(rulestream, purchase_type, profiles=3)
    FollowerRunner(rulestream, RulePolicy(rulestream)).run_until_caught_up()
    datastore: Any = rulestream.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
        sessions = [row["session_id"] for row in cursor.execute(
            "SELECT session_id FROM policy_sessions WHERE profile_id = ANY(%s)", (keys,)).fetchall()]  # fmt: skip
        assert len(sessions) == len(keys)
        profiles, sessions = [*keys, new_id("unknown")], [*sessions, new_id("unknown")]
        prefetched = PolicyState(cursor)
        prefetched.prefetch(profiles, sessions)
        one_by_one = PolicyState(cursor)
        assert {p: prefetched.cache.balances[p] for p in profiles} == {p: one_by_one.balance(p) for p in profiles}
        assert [prefetched.cache.ledgers[s].to_record() for s in sessions] == [
            one_by_one.session_ledger(s).to_record() for s in sessions
        ]
        assert prefetched.cache.balances[keys[0]][0] == 18  # read, not defaulted


def test_replaying_the_log_reproduces_the_recorded_effects(rulestream: Rulestream, purchase_type: str) -> None:
    rules_for(rulestream, purchase_type)
    workload(rulestream, purchase_type, profiles=3)
    FollowerRunner(rulestream, RulePolicy(rulestream)).run_until_caught_up()

    replayed = {
        (str(r.originator_id), r.originator_version): r.result for r in Replay(rulestream).run() if r.result.effects
    }
    assert replayed
    for (originator, version), result in replayed.items():
        recorded: Evaluation = rulestream.repository.get(evaluation_id(uuid.UUID(originator), version))
        assert recorded.effects == plain(result.effects)


def test_caches_bounded_at_two_entries_stay_bounded_and_change_no_effect(settings: Settings) -> None:
    tiny = settings.model_copy(
        update={"aggregate_cache_size": 2, "policy_cache_size": 2, "policy_state_cache_size": 2, "key_cache_size": 2}
    )
    app = Rulestream(env=eventsourcing_env(tiny))
    try:
        purchase = f"purchase_{uuid.uuid4().hex[:6]}"
        app.create_attribute("Event", "amount", "number", event_type=purchase)
        rules_for(app, purchase)
        keys = workload(app, purchase)
        before = len(evaluations(app))
        policy = RulePolicy(app)
        policy.batch_size = 7
        FollowerRunner(app, policy).run_until_caught_up()

        assert len(policy.streams) <= 2
        assert len(policy.cache.balances) <= 2 and len(policy.cache.ledgers) <= 2
        profile_keys: Any = app.factory.profile_keys  # type: ignore[attr-defined]
        assert profile_keys.cache_size == 2 and len(profile_keys._by_id) <= 2
        mine = [e for e in evaluations(app)[before:] if e["cause"]["profileId"] in keys]
        effects = [x["effectType"] for e in mine for x in e["effects"]]
        assert effects.count("addLoyaltyPoints") == 4 * len(keys)
        assert effects.count("showNotification") == len(keys)
        assert effects.count("setDiscount") == len(keys)
        for key in keys:
            assert sum(Decimal(x["amount"]) for e in mine for x in e["ledger"] if x["profileId"] == key) == 18
    finally:
        app.close()
