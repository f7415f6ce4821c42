"""Every follower of the log that ``rulestream serve`` (and ``rulestream worker``) runs, by name."""

from __future__ import annotations

from collections.abc import Callable

from domain.application import Rulestream
from projections.deliveries import Deliveries
from projections.effects import Effects
from projections.events_log import EventsLog
from projections.follower import Follower
from projections.loyalty import Loyalty
from projections.policy import RulePolicy
from projections.profiles import Profiles
from projections.readmodel import ReadModel
from projections.sessions import Sessions
from projections.timers import Timers

FollowerFactory = Callable[[Rulestream], Follower]

POLICY: dict[str, FollowerFactory] = {
    RulePolicy.name: RulePolicy,
    Timers.name: Timers,
    Deliveries.name: Deliveries,
}
"""The rule policy, its timers and webhook deliveries: ``rulestream worker policy``."""

READ_MODELS: dict[str, type[ReadModel]] = {
    model.model: model for model in (EventsLog, Sessions, Profiles, Loyalty, Effects)
}
"""The read models by name; ``READ_MODELS[name](app, generation=n)`` is the copy a rebuild fills."""

PROJECTIONS: dict[str, FollowerFactory] = dict(READ_MODELS)
"""The read models: ``rulestream worker projections``."""


def followers(app: Rulestream, *groups: dict[str, FollowerFactory]) -> list[Follower]:
    return [factory(app) for group in groups for factory in group.values()]
