"""Compiling a rule definition once into closures, so evaluating it per event does minimal work.

No ``eval`` and no expression library: each node becomes a small Python closure, and everything that can be
decided from the definition alone (paths, operators, constants, durations) is decided here, not per event.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .arithmetic import EvaluationFailed, compile_number
from .context import CartItemView, EvaluationContext, HistoryItem
from .durations import parse_duration
from .effects import AddLoyaltyPoints, DeductLoyaltyPoints, NamedValue, PerItemValue, SetDiscount, SetDiscountPerItem
from .getters import history_getter, item_getter, live_quantity, rule_getter
from .language import All, Any_, CartItems, Compare, Condition, Effect, History, Not, RuleDefinition
from .operators import as_number, compile_op
from .paths import Scope, resolve

Predicate = Callable[[Any], bool]


@dataclass(frozen=True)
class EffectResult:
    """One effect a matching rule emits: its index in the rule, type and JSON-ready props."""

    effect_index: int
    effect_type: str
    props: dict[str, Any]
    points: Decimal = Decimal(0)
    discount: Decimal = Decimal(0)


@dataclass(frozen=True)
class RuleOutcome:
    """What one evaluation gave: the effects of a match, or why the rule did not yield any."""

    matched: bool
    effects: tuple[EffectResult, ...] = ()
    condition_index: int | None = None
    effect_index: int | None = None
    details: str = ""

    @property
    def points(self) -> Decimal:
        return sum((e.points for e in self.effects), Decimal(0))

    @property
    def discount(self) -> Decimal:
        return sum((e.discount for e in self.effects), Decimal(0))


@dataclass(frozen=True)
class CompiledLimits:
    """``limits`` with durations resolved."""

    per_profile: int | None = None
    per_period: tuple[int, timedelta] | None = None
    every_nth: int | None = None
    budget_points: Decimal | None = None
    budget_discount: Decimal | None = None

    @property
    def per_profile_limits(self) -> bool:
        return self.per_profile is not None or self.per_period is not None or self.every_nth is not None


@dataclass(frozen=True)
class CompiledRule:
    """A rule version ready to evaluate: its settings, plus the closures of its condition and effects."""

    rule_id: int
    version: int
    name: str
    triggers: tuple[str, ...]
    priority: int
    exclusive: bool
    enabled: bool
    start: datetime | None
    end: datetime | None
    limits: CompiledLimits
    delay: timedelta | None
    cancel_if: frozenset[str]
    conditions: tuple[Predicate, ...] = field(repr=False)
    effects: tuple[Callable[[EvaluationContext], EffectResult], ...] = field(repr=False)

    def evaluate(self, ctx: EvaluationContext) -> RuleOutcome:
        """The rule's outcome for ``ctx``; never raises for the values it reads."""
        for index, holds in enumerate(self.conditions):
            if not holds(ctx):
                return RuleOutcome(False, condition_index=index, details="condition not met")
        results = []
        for index, emit in enumerate(self.effects):
            try:
                results.append(emit(ctx))
            except (EvaluationFailed, ArithmeticError) as error:
                return RuleOutcome(True, effect_index=index, details=str(error) or type(error).__name__)
        return RuleOutcome(True, tuple(results))

    def is_live(self, at: datetime) -> bool:
        """Enabled, and ``at`` within the schedule."""
        return (
            self.enabled and (self.start is None or at >= self.start) and (self.end is None or at < self.end)
        )


def compile_rule(rule_id: int, version: int, defn: RuleDefinition) -> CompiledRule:
    """Compile a parsed (and type-checked) definition; each top-level condition keeps its index."""
    top: Sequence[Condition] = () if defn.condition is None else (
        defn.condition.all if isinstance(defn.condition, All) else (defn.condition,)
    )  # fmt: skip
    limits = defn.limits
    period = limits.per_profile_per_period if limits else None
    budget = limits.budget if limits else None
    return CompiledRule(
        rule_id=rule_id,
        version=version,
        name=defn.name,
        triggers=tuple(defn.trigger),
        priority=defn.priority,
        exclusive=defn.exclusive,
        enabled=defn.enabled,
        start=defn.schedule.start_time if defn.schedule else None,
        end=defn.schedule.end_time if defn.schedule else None,
        limits=CompiledLimits(
            per_profile=limits.per_profile if limits else None,
            per_period=(period.count, parse_duration(period.period)) if period else None,
            every_nth=limits.every_nth if limits else None,
            budget_points=budget.points if budget else None,
            budget_discount=budget.discount if budget else None,
        ),
        delay=parse_duration(defn.delay.after) if defn.delay else None,
        cancel_if=frozenset(defn.delay.cancel_if) if defn.delay else frozenset(),
        conditions=tuple(compile_condition(c) for c in top),
        effects=tuple(_compile_effect(i, e) for i, e in enumerate(defn.effects)),
    )


def compile_condition(node: Condition, scope: Scope = "rule", event_type: str = "") -> Predicate:
    """A predicate over the scope's subject: the context, a ``CartItemView`` or a ``HistoryItem``."""
    if isinstance(node, All | Any_):
        children = tuple(compile_condition(c, scope, event_type) for c in getattr(node, node.key))
        if isinstance(node, All):
            return lambda subject: all(child(subject) for child in children)
        return lambda subject: any(child(subject) for child in children)
    if isinstance(node, Not):
        inner = compile_condition(node.not_, scope, event_type)
        return lambda subject: not inner(subject)
    if isinstance(node, Compare):
        ref = resolve(node.attr, scope)
        get: Callable[[Any], Any]
        if scope == "rule":
            get = rule_getter(ref)
        elif scope == "item":
            get = item_getter(ref)
        else:
            get = history_getter(ref, event_type)
        return _compare(get, node.op, node.value)
    if isinstance(node, CartItems):
        return _cart_items(node)
    return _history(node)


def _compare(get: Callable[[Any], Any], op: str, value: Any) -> Predicate:
    if op == "notExists":
        return lambda subject: get(subject) is None
    test = compile_op(op, value)
    return lambda subject: (actual := get(subject)) is not None and test(actual)


def _cart_items(node: CartItems) -> Predicate:
    matches = compile_condition(node.cart_items, "item")
    measure = node.count or node.sum
    assert measure is not None  # the parser demands one of them
    test = compile_op(measure.op, measure.value)
    amount: Callable[[CartItemView], Decimal]
    if node.sum is None:
        amount = _one
    elif node.sum.of == "price":  # the value of the matching items: price times the units still in the cart
        amount = lambda item: item.price * live_quantity(item)  # noqa: E731
    else:
        amount = lambda item: Decimal(live_quantity(item))  # noqa: E731

    def holds(ctx: EvaluationContext) -> bool:
        if ctx.session is None:
            return False
        items = [i for i in ctx.session.cart_items if live_quantity(i) > 0 and matches(i)]
        return test(sum((amount(i) for i in items), Decimal(0)))

    return holds


def _one(_: CartItemView) -> Decimal:
    return Decimal(1)


def _history(node: History) -> Predicate:
    query = node.history
    within = parse_duration(query.within) if query.within else None
    where = compile_condition(query.where, "history", query.type) if query.where else None
    measure = _measure(query.measure)
    test = compile_op(node.op, node.value)

    def holds(ctx: EvaluationContext) -> bool:
        profile_id = ctx.event.profile_id
        if profile_id is None:
            return False
        since = ctx.event.at - within if within is not None else None
        items = ctx.history.events(profile_id, query.type, since)
        return test(measure([i for i in items if where(i)] if where else items))

    return holds


def _measure(text: str) -> Callable[[Sequence[HistoryItem]], Decimal]:
    kind, _, name = text.partition(":")
    if kind == "count":
        return lambda items: Decimal(len(items))
    if kind == "sum":  # Gameball's accumulative total; values that are not numbers do not count
        return lambda items: sum(
            (n for i in items if (n := as_number(i.attributes.get(name))) is not None), Decimal(0)
        )
    return lambda items: Decimal(
        len({_hashable(v) for i in items if (v := i.attributes.get(name)) is not None})
    )


def _hashable(value: Any) -> Any:
    number = as_number(value)
    if number is not None:
        return number
    return tuple(value) if isinstance(value, list) else value


def _compile_effect(index: int, effect: Effect) -> Callable[[EvaluationContext], EffectResult]:
    kind = effect.effect_type
    props = effect.props
    if not isinstance(props, NamedValue):  # static props: copied so a caller cannot change the next ones
        static = props.model_dump(mode="json", by_alias=True, exclude_none=True)
        return lambda ctx: EffectResult(index, kind, copy.deepcopy(static))
    value = compile_number(props.value)
    name = props.name
    position = props.position if isinstance(props, PerItemValue) else None
    is_points = isinstance(effect, AddLoyaltyPoints)
    on_ledger = isinstance(effect, AddLoyaltyPoints | DeductLoyaltyPoints)
    is_discount = isinstance(effect, SetDiscount | SetDiscountPerItem)

    def emit(ctx: EvaluationContext) -> EffectResult:
        if on_ledger and not ctx.event.profile_id:  # an anonymous session or event: no ledger to book them on
            raise EvaluationFailed(f"{kind} needs a customer profile: the event has none")
        amount = value(ctx)
        if amount < 0:
            raise EvaluationFailed(f"{kind} value {amount} is negative")
        out: dict[str, Any] = {"name": name, "value": amount}
        if position is not None:
            out["position"] = position
        return EffectResult(
            index,
            kind,
            out,
            points=amount if is_points else Decimal(0),
            discount=amount if is_discount else Decimal(0),
        )

    return emit
