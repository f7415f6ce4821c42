"""The rule language of RULES.md: the ``RuleDefinition`` model and ``parse_rule`` which refuses with pointers.

Parsing needs no catalog; ``typecheck.check_rule`` then checks a parsed rule against the attribute catalog.
The node models live in ``nodes`` (conditions, arithmetic) and ``effects``; they are re-exported here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StrictBool, StrictInt, ValidationError, model_validator

from ..errors import Problem, RuleInvalid, pointer
from .effects import EFFECT_TYPES, Effect, EffectNode
from .nodes import (
    TAG_MARK,
    Add,
    All,
    Any_,
    AttrRef,
    CartItems,
    Compare,
    Condition,
    Div,
    Duration,
    History,
    HistoryQuery,
    Max,
    Measure,
    Min,
    Mul,
    Node,
    Not,
    Num,
    NumExpr,
    Op,
    PercentOf,
    Round,
    Sub,
    SumOf,
)

__all__ = [
    "EFFECT_TYPES", "Add", "All", "Any_", "AttrRef", "Budget", "CartItems", "Compare", "Condition", "Delay",
    "Div", "Effect", "EffectNode", "History", "HistoryQuery", "Limits", "Max", "Measure", "Min", "Mul", "Not",
    "Num", "NumExpr", "Op", "PerPeriod", "PercentOf", "Round", "RuleDefinition", "Schedule", "Sub", "SumOf",
    "parse_rule",
]  # fmt: skip

Count = Annotated[StrictInt, Field(ge=1)]


class PerPeriod(Node):
    """At most ``count`` firings per profile in any window of length ``period``."""

    count: Count
    period: Duration


class Budget(Node):
    """Stop firing once the points given or the discount granted would pass these totals."""

    points: Num | None = None
    discount: Num | None = None


class Limits(Node):
    """How often a rule may fire: per profile, per profile per period, every Nth match, within a budget."""

    per_profile: Count | None = None
    per_profile_per_period: PerPeriod | None = None
    every_nth: Count | None = None
    budget: Budget | None = None


class Schedule(Node):
    """When the rule is live: ``startTime <= event time < endTime`` (either end open when null)."""

    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ValueError("endTime must be after startTime")
        return self


class Delay(Node):
    """Evaluate ``after`` the triggering event, unless one of ``cancelIf`` happened in between."""

    after: Duration
    cancel_if: list[str] = Field(default_factory=list)


class RuleDefinition(Node):
    """One version of a rule as its author wrote it (RULES.md "Shape")."""

    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    trigger: Annotated[list[str], Field(min_length=1)]
    condition: Condition | None = None
    effects: list[Effect] = Field(default_factory=list)
    limits: Limits | None = None
    schedule: Schedule | None = None
    priority: StrictInt = 0
    exclusive: StrictBool = False
    enabled: StrictBool = True
    delay: Delay | None = None

    def to_json(self) -> dict[str, Any]:
        """The definition as a plain JSON-compatible dict (what events store); ``parse_rule`` reads it."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_rule(data: Any) -> RuleDefinition:
    """Parse a rule's JSON; ``RuleInvalid`` with a problem per error, each pointing into the rule."""
    try:
        return RuleDefinition.model_validate(data)
    except ValidationError as error:
        problems = [_problem(e) for e in error.errors(include_url=False)]
        raise RuleInvalid("The rule is invalid", problems) from None


def _problem(error: Any) -> Problem:
    # Union tags ("#all", "#setDiscount") are pydantic's bookkeeping, not places in the rule's JSON.
    tokens: list[str | int] = [t for t in error["loc"] if not (isinstance(t, str) and t.startswith(TAG_MARK))]
    if error["type"] == "unknown_effect":
        tokens.append("effectType")
    return Problem(title="Invalid rule", details=error["msg"], pointer=pointer(*tokens))
