"""Reading a resolved path's value: one small closure per path, built once when a rule is compiled.

A getter answers None when the value is absent (no session, no profile, attribute not sent): conditions treat
absence as "does not hold", except ``notExists``.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from .context import CartItemView, EvaluationContext, HistoryItem
from .paths import PathRef

Getter = Callable[[Any], Any]


def rule_getter(ref: PathRef | None) -> Callable[[EvaluationContext], Any]:
    """A getter over the evaluation context (event, session, profile).

    An unknown path (None) reads as absent: the type checker refuses them, but a rule compiled without being
    checked must still never raise while it is evaluated.
    """
    if ref is None:
        return _absent
    if ref.root == "event":
        if ref.is_attribute:
            name = ref.name
            return lambda ctx: ctx.event.attributes.get(name)
        field = attrgetter(ref.name)
        return lambda ctx: field(ctx.event)
    view = attrgetter(ref.root)  # ctx.session or ctx.profile
    if ref.is_attribute:
        name = ref.name
        return lambda ctx: None if (v := view(ctx)) is None else v.attributes.get(name)
    field = attrgetter(ref.name)
    return lambda ctx: None if (v := view(ctx)) is None else field(v)


def item_getter(ref: PathRef | None) -> Callable[[CartItemView], Any]:
    """A getter over one cart item; its quantity is what was not returned."""
    if ref is None:
        return _absent
    if ref.is_attribute:
        name = ref.name
        return lambda item: item.attributes.get(name)
    if ref.name == "quantity":
        return live_quantity
    return attrgetter(ref.name)


def history_getter(ref: PathRef | None, event_type: str) -> Callable[[HistoryItem], Any]:
    """A getter over one recorded event of ``event_type``."""
    if ref is None:
        return _absent
    if not ref.is_attribute:  # only event.type resolves in a history scope
        return lambda item: event_type
    name = ref.name
    return lambda item: item.attributes.get(name)


def live_quantity(item: CartItemView) -> int:
    """The units of an item still in the cart: bought and not returned."""
    return item.quantity - item.returned_quantity


def _absent(_: Any) -> None:
    return None
