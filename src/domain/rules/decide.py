"""The policy's decision: which rules fire for one event, and what the caller must persist.

Pure and deterministic: the same rules, event, state and limits give the same decision, which is what makes
replay, simulation and audit meaningful. Limits are read through ``ctx.limits``; ``Decision.firings`` and
``Decision.matches`` are what the caller records so that the reader answers correctly next time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .compiler import CompiledRule, RuleOutcome
from .context import EvaluationContext

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class EffectDecision:
    """One effect to record (Talon.One's ``Effect``: campaignId = rule id, rulesetId = rule version)."""

    rule_id: int
    rule_version: int
    rule_name: str
    effect_type: str
    props: dict[str, Any]
    effect_index: int = 0


@dataclass(frozen=True)
class FailureReason:
    """Why an evaluated rule gave no effects (Talon.One's ``ruleFailureReasons``)."""

    rule_id: int
    rule_version: int
    rule_name: str
    details: str
    condition_index: int | None = None
    effect_index: int | None = None


@dataclass(frozen=True)
class Firing:
    """A rule fired for a profile: counts towards its per-profile limits and its budget."""

    rule_id: int
    profile_id: str | None
    at: datetime
    points: Decimal
    discount: Decimal


@dataclass(frozen=True)
class DelayedEvaluation:
    """A rule to evaluate later, at ``due_at``, unless one of ``cancel_if`` happens before."""

    rule_id: int
    rule_version: int
    due_at: datetime
    cancel_if: frozenset[str] = frozenset()


@dataclass
class Decision:
    """Everything ``decide`` concluded for one event."""

    effects: list[EffectDecision] = field(default_factory=list)
    failures: list[FailureReason] = field(default_factory=list)
    firings: list[Firing] = field(default_factory=list)
    matches: list[tuple[int, str]] = field(default_factory=list)
    """``(rule_id, profile_id)`` of matches to count for ``everyNth``."""
    delayed: list[DelayedEvaluation] = field(default_factory=list)
    lapsed: list[int] = field(default_factory=list)
    """Rules triggered by the event that do not hold for it: their condition or an effect failed, their schedule
    is over, or an exclusive rule fired before them (not those a limit or budget stopped: they fired already).
    What such a rule held for the session (discounts, pending points) is no longer in force."""


class RuleIndex:
    """Compiled rules indexed by trigger type, each list ordered by priority (higher first), then rule id."""

    def __init__(self, rules: Iterable[CompiledRule] = ()) -> None:
        self._rules: dict[int, CompiledRule] = {}
        self._by_trigger: dict[str, tuple[CompiledRule, ...]] = {}
        for rule in rules:
            self._rules[rule.rule_id] = rule
        self._reindex()

    def put(self, rule: CompiledRule) -> None:
        """Add a rule, or replace the version held for its id."""
        self._rules[rule.rule_id] = rule
        self._reindex()

    def remove(self, rule_id: int) -> None:
        self._rules.pop(rule_id, None)
        self._reindex()

    def get(self, rule_id: int) -> CompiledRule | None:
        """The version held for ``rule_id`` (delays that come due evaluate the rule as it is then)."""
        return self._rules.get(rule_id)

    def for_event(self, event_type: str) -> tuple[CompiledRule, ...]:
        """The rules triggered by ``event_type``, in evaluation order."""
        return self._by_trigger.get(event_type, ())

    def __len__(self) -> int:
        return len(self._rules)

    def _reindex(self) -> None:
        # Rebuilt whole on change: rules change rarely, and lookups per event must be a dict access.
        by_trigger: dict[str, list[CompiledRule]] = defaultdict(list)
        for rule in self._rules.values():
            for trigger in set(rule.triggers):
                by_trigger[trigger].append(rule)
        self._by_trigger = {t: tuple(sorted(rs, key=_order)) for t, rs in by_trigger.items()}


def _order(rule: CompiledRule) -> tuple[int, int]:
    return (-rule.priority, rule.rule_id)


def decide(rules: Sequence[CompiledRule], ctx: EvaluationContext, *, due: bool = False) -> Decision:
    """Evaluate ``rules`` (those triggered by the event) against ``ctx``.

    Rules with a ``delay`` are not evaluated but returned in ``Decision.delayed``; when the delay comes due,
    the caller calls ``decide([rule], ctx_then, due=True)``, which evaluates them at once.
    """
    decision = Decision()
    at = ctx.event.at
    excluded_below: int | None = None  # the priority of an exclusive rule that fired
    for rule in sorted(rules, key=_order):
        if not rule.is_live(at) or (excluded_below is not None and rule.priority < excluded_below):
            decision.lapsed.append(rule.rule_id)
            continue
        if rule.delay is not None and not due:
            decision.delayed.append(
                DelayedEvaluation(rule.rule_id, rule.version, at + rule.delay, rule.cancel_if)
            )
            continue
        outcome = rule.evaluate(ctx)
        refusal = _refusal(rule, outcome, ctx, decision)
        if refusal is not None:
            if lapses(outcome.condition_index, outcome.effect_index):
                decision.lapsed.append(rule.rule_id)
            decision.failures.append(
                FailureReason(
                    rule.rule_id,
                    rule.version,
                    rule.name,
                    refusal,
                    outcome.condition_index,
                    outcome.effect_index,
                )
            )
            continue
        decision.effects.extend(
            EffectDecision(rule.rule_id, rule.version, rule.name, e.effect_type, e.props, e.effect_index)
            for e in outcome.effects
        )
        decision.firings.append(
            Firing(rule.rule_id, ctx.event.profile_id, at, outcome.points, outcome.discount)
        )
        if rule.exclusive:
            excluded_below = rule.priority
    return decision


def lapses(condition_index: int | None, effect_index: int | None) -> bool:
    """Whether a rule that gave no effects failed on its own (a condition, an effect), not on a limit."""
    return condition_index is not None or effect_index is not None


def _refusal(
    rule: CompiledRule, outcome: RuleOutcome, ctx: EvaluationContext, decision: Decision
) -> str | None:
    """Why a rule does not fire, or None when it does; records the match ``everyNth`` counts."""
    if not outcome.matched or outcome.effect_index is not None:
        return outcome.details
    limits, profile_id = rule.limits, ctx.event.profile_id
    if limits.per_profile_limits:
        if profile_id is None:
            return "per-profile limits need an event with a profile"
        if limits.every_nth is not None:
            decision.matches.append((rule.rule_id, profile_id))
            if (ctx.limits.matches(rule.rule_id, profile_id) + 1) % limits.every_nth != 0:
                return f"fires on every {limits.every_nth}th match only"
        if (
            limits.per_profile is not None
            and ctx.limits.firings(rule.rule_id, profile_id, None) >= limits.per_profile
        ):
            return f"fired {limits.per_profile} times for this profile already"
        if limits.per_period is not None:
            count, period = limits.per_period
            # The window is (at - period, at]: a firing exactly one period ago has left it.
            since = ctx.event.at - period + _TICK
            if ctx.limits.firings(rule.rule_id, profile_id, since) >= count:
                return f"fired {count} times for this profile within the period already"
    if limits.budget_points is not None or limits.budget_discount is not None:
        used = ctx.limits.budget_used(rule.rule_id)
        if _exceeds(used.get("points", Decimal(0)), outcome.points, limits.budget_points):
            return "the points budget is reached"
        if _exceeds(used.get("discount", Decimal(0)), outcome.discount, limits.budget_discount):
            return "the discount budget is reached"
    return None


def _exceeds(used: Decimal, more: Decimal, budget: Decimal | None) -> bool:
    # A budget that is used up stops the rule, and so does a firing that would go past it.
    return budget is not None and (used >= budget or used + more > budget)
