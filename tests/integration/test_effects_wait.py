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
