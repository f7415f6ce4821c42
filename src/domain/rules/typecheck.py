"""Checking a parsed rule against the attribute catalog: a wrong rule is refused when saved, never false.

Refused, each with a JSON pointer into the rule: unknown trigger (and ``cancelIf``, history) event types,
unknown attribute paths, attributes the catalog does not declare (an ``event.attributes.x`` must be declared
for at least one trigger, with one type), operators that do not fit the attribute's type, values that do not
fit it, and arithmetic over attributes that are not numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..catalog.builtin import EVENT
from ..catalog.types import LIST_TYPES, NUMBER, STRING, TIME, element_type, normalize
from ..errors import AttributeInvalid, Problem, RuleInvalid, pointer
from .effects import NamedValue
from .language import (
    Add,
    All,
    Any_,
    AttrRef,
    CartItems,
    Compare,
    Condition,
    Div,
    History,
    Max,
    Min,
    Mul,
    Not,
    NumExpr,
    Op,
    PercentOf,
    Round,
    RuleDefinition,
    Sub,
)  # fmt: skip
from .operators import as_number, as_time
from .paths import Scope, resolve

Ptr = tuple[str | int, ...]
ORDERING: frozenset[str] = frozenset({"gt", "gte", "lt", "lte", "between"})
STRING_OPS: frozenset[str] = frozenset({"startsWith", "endsWith", "eqIgnoreCase"})
_TITLE = "Invalid rule"


class CatalogView(Protocol):
    """What the type checker needs of the attribute catalog."""

    def is_event_type(self, name: str) -> bool:
        """True for built-in ``talon_*`` types and the catalog's custom event types."""
        ...

    def attribute_type(self, entity: str, name: str, event_type: str | None = None) -> str | None:
        """The type of a declared attribute (of ``event_type`` for ``Event``), None if undeclared."""
        ...


def check_rule(defn: RuleDefinition, catalog: CatalogView) -> None:
    """``RuleInvalid`` with every problem found, when the rule does not fit the catalog."""
    problems = _Checker(catalog, defn.trigger).rule(defn)
    if problems:
        raise RuleInvalid("The rule does not type-check against the attribute catalog", problems)


class _Checker:
    def __init__(self, catalog: CatalogView, triggers: Sequence[str]) -> None:
        self.catalog = catalog
        self.triggers = tuple(triggers)
        self.problems: list[Problem] = []

    def refuse(self, at: Ptr, details: str) -> None:
        self.problems.append(Problem(title=_TITLE, details=details, pointer=pointer(*at)))

    def rule(self, defn: RuleDefinition) -> list[Problem]:
        for i, name in enumerate(defn.trigger):
            self.event_type(name, ("trigger", i))
        if defn.delay is not None:
            for i, name in enumerate(defn.delay.cancel_if):
                self.event_type(name, ("delay", "cancelIf", i))
        if defn.condition is not None:
            self.condition(defn.condition, ("condition",), "rule", self.triggers)
        for i, effect in enumerate(defn.effects):
            if isinstance(effect.props, NamedValue):
                self.number(effect.props.value, ("effects", i, "props", "value"))
        return self.problems

    def event_type(self, name: str, at: Ptr) -> bool:
        known = self.catalog.is_event_type(name)
        if not known:
            self.refuse(at, f"unknown event type {name!r}")
        return known

    def condition(self, node: Condition, at: Ptr, scope: Scope, types: tuple[str, ...]) -> None:
        match node:
            case All() | Any_():
                children = node.all if isinstance(node, All) else node.any
                for i, child in enumerate(children):
                    self.condition(child, (*at, node.key, i), scope, types)
            case Not():
                self.condition(node.not_, (*at, "not"), scope, types)
            case Compare():
                type_ = self.path_type(node.attr, (*at, "attr"), scope, types)
                if type_ is not None:
                    self.fits(type_, node.op, node.value, at)
            case CartItems() if scope == "rule":
                self.condition(node.cart_items, (*at, "cartItems"), "item", types)
                measure = node.count if node.count is not None else node.sum
                assert measure is not None  # the parser demands one of them
                self.fits(NUMBER, measure.op, measure.value, (*at, "count" if node.count else "sum"))
            case History() if scope == "rule":
                self.history(node, at)
            case _:
                self.refuse(at, f"{node.key} cannot be nested in a {scope} condition")

    def history(self, node: History, at: Ptr) -> None:
        query = node.history
        if self.event_type(query.type, (*at, "history", "type")):
            if query.where is not None:
                self.condition(query.where, (*at, "history", "where"), "history", (query.type,))
            measure, _, name = query.measure.partition(":")
            if name:
                type_ = self.path_type(
                    f"event.attributes.{name}", (*at, "history", "measure"), "history", (query.type,)
                )
                if measure == "sum" and type_ not in (None, NUMBER):
                    self.refuse(
                        (*at, "history", "measure"), f"sum needs a number attribute, {name!r} is {type_}"
                    )
        self.fits(NUMBER, node.op, node.value, at)

    def path_type(self, path: str, at: Ptr, scope: Scope, types: tuple[str, ...]) -> str | None:
        ref = resolve(path, scope)
        if ref is None:
            self.refuse(
                at,
                f"unknown attribute path {path!r}" + ("" if scope == "rule" else f" in a {scope} condition"),
            )
            return None
        if ref.builtin_type is not None or ref.entity is None:
            return ref.builtin_type
        if ref.entity == EVENT:
            declared = {self.catalog.attribute_type(EVENT, ref.name, t) for t in types} - {None}
        else:
            declared = {self.catalog.attribute_type(ref.entity, ref.name)} - {None}
        if not declared:
            self.refuse(
                at,
                f"attribute {path!r} is not declared"
                + (f" for {', '.join(types)}" if ref.entity == EVENT else ""),
            )
            return None
        if len(declared) > 1:
            self.refuse(
                at, f"attribute {path!r} has conflicting types: {', '.join(sorted(t for t in declared if t))}"
            )
            return None
        return declared.pop()

    def fits(self, type_: str, op: Op, value: Any, at: Ptr) -> None:
        """Refuse an ``op`` that does not apply to ``type_``, or a ``value`` that does not fit it."""
        element = element_type(type_)
        if op in ("exists", "notExists"):
            if value is not None:
                self.refuse((*at, "value"), f"{op} takes no value")
            return
        if value is None:
            self.refuse((*at, "value"), f"{op} needs a value")
        elif op in ORDERING and type_ not in (NUMBER, TIME):
            self.refuse((*at, "op"), f"{op} applies to numbers and times, not to {type_}")
        elif op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.refuse((*at, "value"), "between needs [min, max]")
            else:
                low = self.value(type_, value[0], (*at, "value", 0))
                high = self.value(type_, value[1], (*at, "value", 1))
                if _above(type_, low, high):  # never true: a wrong rule, not a false one
                    self.refuse((*at, "value"), f"between needs [min, max]: {value[0]} is above {value[1]}")
        elif op in ("in", "notIn"):
            if type_ in LIST_TYPES:
                self.refuse((*at, "op"), f"{op} applies to single values, not to {type_}")
            elif not isinstance(value, list) or not value:
                self.refuse((*at, "value"), f"{op} needs a non-empty list of values")
            else:
                for i, item in enumerate(value):
                    self.value(type_, item, (*at, "value", i))
        elif op == "contains":
            if type_ != STRING and element is None:
                self.refuse((*at, "op"), f"contains applies to strings and lists, not to {type_}")
            else:
                self.value(element or STRING, value, (*at, "value"))
        elif op in STRING_OPS:
            if type_ != STRING:
                self.refuse((*at, "op"), f"{op} applies to strings, not to {type_}")
            else:
                self.value(STRING, value, (*at, "value"))
        else:
            self.value(type_, value, (*at, "value"))

    def value(self, type_: str, value: Any, at: Ptr) -> Any:
        """``value`` normalised for ``type_`` (None, with the problem kept, when it does not fit)."""
        try:
            return normalize(type_, value, pointer(*at))
        except AttributeInvalid as error:
            self.problems.extend(Problem(_TITLE, p.details, p.pointer) for p in error.problems)
            return None

    def number(self, expr: NumExpr, at: Ptr) -> None:
        match expr:
            case AttrRef():
                self.numeric_path(expr.attr, (*at, "attr"))
            case Add() | Sub() | Mul() | Div() | Min() | Max():
                for i, operand in enumerate(getattr(expr, expr.key)):
                    self.number(operand, (*at, expr.key, i))
            case Round():
                self.number(expr.round[0], (*at, "round", 0))
            case PercentOf():
                self.numeric_path(expr.percent_of, (*at, "percentOf"))
                self.number(expr.percent, (*at, "percent"))
            case _:  # a number
                pass

    def numeric_path(self, path: str, at: Ptr) -> None:
        type_ = self.path_type(path, at, "rule", self.triggers)
        if type_ not in (None, NUMBER):
            self.refuse(at, f"arithmetic needs a number, {path!r} is {type_}")


def _above(type_: str, low: Any, high: Any) -> bool:
    """Whether ``low`` is above ``high``, compared as evaluation compares them (times as times, not as text)."""
    if type_ == TIME:
        times = as_time(low), as_time(high)
        return times[0] is not None and times[1] is not None and times[0] > times[1]
    numbers = as_number(low), as_number(high)
    return numbers[0] is not None and numbers[1] is not None and numbers[0] > numbers[1]
