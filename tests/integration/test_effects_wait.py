"""The wait of a command's response for the policy, and the read of what it recorded."""

from __future__ import annotations

import threading
import uuid

from api.effects import EffectsReader, PolicyProgress
from domain.application import Rulestream
from domain.rulebook import RuleBook
from projections.follower import FollowerRunner
from projections.policy import RulePolicy


def test_a_waiter_wakes_when_the_checkpoint_passes_its_position_and_leaves_nothing_behind_on_timeout(
    rulestream: Rulestream,
) -> None:
    progress = PolicyProgress(rulestream)
    try:
        progress.checkpoint = 10**12  # far beyond any position this database's policy stored
        assert progress.wait(5, 0.01)
        woken: list[bool] = []
        waiting = threading.Thread(target=lambda: woken.append(progress.wait(10**12 + 5, 10.0)))
        waiting.start()
        while not progress._waiters:
            threading.Event().wait(0.01)
        progress._advance(10**12 + 4)
        assert not woken and progress._waiters  # not yet passed: still waiting
        progress._advance(10**12 + 5)
        waiting.join(5)
        assert woken == [True]
        assert not progress.wait(10**12 + 100, 0.01)
        assert progress._waiters == []
    finally:
        progress.stop()


def test_the_effects_of_a_command_are_read_for_each_of_its_events(rulestream: Rulestream) -> None:
    name = f"buy_{uuid.uuid4().hex[:6]}"
    rulestream.create_attribute("Event", "amount", "number", event_type=name)
    RuleBook(rulestream).create(
        {"name": "points", "trigger": [name],
         "effects": [{"effectType": "addLoyaltyPoints",
                      "props": {"name": "p", "value": {"attr": "event.attributes.amount"}}}]},
        "test",
    )  # fmt: skip
    outcome = rulestream.track_event(name, {"amount": 7}, f"p-{uuid.uuid4().hex[:8]}", None)
    FollowerRunner(rulestream, RulePolicy(rulestream)).run_until_caught_up()
    reader = EffectsReader(rulestream, wait_seconds=5)
    try:
        found = reader.of(outcome)
        assert not found.pending
        assert [(e["effectType"], e["props"]["value"]) for e in found.effects] == [("addLoyaltyPoints", 7)]
        unrelated = reader.recorded([(uuid.uuid4(), 1)])
        assert unrelated.effects == [] and unrelated.failures == []
    finally:
        reader.stop()


def test_a_response_takes_its_effects_from_the_policys_notification_and_reads_nothing_from_the_log(
    rulestream: Rulestream,
) -> None:
    name = f"buy_{uuid.uuid4().hex[:6]}"
    rulestream.create_attribute("Event", "amount", "number", event_type=name)
    RuleBook(rulestream).create(
        {"name": "points", "trigger": [name], "condition": {"attr": "event.attributes.amount", "op": "gt", "value": 5},
         "effects": [{"effectType": "addLoyaltyPoints",
                      "props": {"name": "p", "value": {"attr": "event.attributes.amount"}}}]},
        "test",
    )  # fmt: skip
    FollowerRunner(rulestream, RulePolicy(rulestream)).run_until_caught_up()
    reader = EffectsReader(rulestream, wait_seconds=5)
    try:
        assert reader.progress.listening.wait(10)
        rewarded = rulestream.track_event(name, {"amount": 7}, f"p-{uuid.uuid4().hex[:8]}", None)
        ignored = rulestream.track_event(name, {"amount": 1}, f"p-{uuid.uuid4().hex[:8]}", None)  # no evaluation
        FollowerRunner(rulestream, RulePolicy(rulestream)).run_until_caught_up()
        from_log = [reader.recorded([(e.originator_id, e.originator_version) for e in o.events])
                    for o in (rewarded, ignored)]  # fmt: skip

        def no_log_read(causes: object) -> object:
            raise AssertionError("read from the log")

        reader.recorded = no_log_read  # type: ignore[assignment, method-assign]
        heard = [reader.of(rewarded), reader.of(ignored)]
        assert [h.effects for h in heard] == [f.effects for f in from_log]
        assert [(e["effectType"], e["props"]["value"]) for e in heard[0].effects] == [("addLoyaltyPoints", 7)]
        assert heard[1].effects == [] and not heard[0].pending and not heard[1].pending
        assert reader.progress._heard == {}  # taken, not kept
    finally:
        reader.stop()


def test_evaluations_not_all_heard_or_too_big_to_send_are_read_from_the_log(rulestream: Rulestream) -> None:
    from eventsourcing.persistence import StoredEvent

    from domain.effects import evaluation_id
    from projections.policy import NOTIFY_LIMIT, effects_payloads

    causes = [uuid.uuid4() for _ in range(41)]  # the events evaluated; an evaluation's id derives from its cause
    topic = "domain.effects:Evaluation.Evaluated"
    small = [StoredEvent(evaluation_id(c, 1), 1, topic, b"{}" * 100) for c in causes[:40]]
    big = StoredEvent(evaluation_id(causes[40], 1), 1, topic, b"x" * NOTIFY_LIMIT)
    payloads = effects_payloads([*small[:20], big, *small[20:]])
    assert len(payloads) > 1 and all(len(p.encode()) < 8000 for p in payloads)
    assert f"{big.originator_id} -" in "\n".join(payloads).split("\n")

    progress = PolicyProgress(rulestream)
    try:
        assert progress.listening.wait(10)
        base = progress.checkpoint + 10**12  # beyond any real position: only what this test sends
        for payload in payloads:
            progress._hear(payload)
        progress._advance(base + 10)
        by_cause = {evaluation_id(cause, 1): cause for cause in causes}

        def of(*evaluations: StoredEvent) -> list[tuple[uuid.UUID, int]]:
            return [(by_cause[e.originator_id], 1) for e in evaluations]

        assert progress.take(base + 1, [*of(small[0]), (uuid.uuid4(), 1)]) == [small[0]]
        assert progress.take(base + 1, of(small[1], big)) is None  # too big: the log
        progress._advance(base + 20, heard=False)  # a checkpoint read, not heard: its batch may not be heard yet
        assert progress.take(base + 15, of(small[2])) is None
        assert progress.take(base + 21, of(small[3])) == [small[3]]
    finally:
        progress.stop()
