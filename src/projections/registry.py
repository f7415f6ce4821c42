"""Every follower of the log that ``rulestream serve`` (and ``rulestream worker``) runs, by name."""

from __future__ import annotations

from collections.abc import Callable

from domain.application import Rulestream
from projections.follower import Follower

FollowerFactory = Callable[[Rulestream], Follower]

POLICY: dict[str, FollowerFactory] = {}
"""The rule policy (and its timers): ``rulestream worker policy``."""

PROJECTIONS: dict[str, FollowerFactory] = {}
"""The read models: ``rulestream worker projections``."""


def followers(app: Rulestream, *groups: dict[str, FollowerFactory]) -> list[Follower]:
    return [factory(app) for group in groups for factory in group.values()]
