"""What every Rulestream aggregate and event shares: natural-key ids and event metadata.

Metadata (the request's correlation id, the event that caused this one, the API key's name) is not an argument of
every command method: the application service sets it for the duration of a command with ``recording(...)`` and
every event triggered meanwhile carries a copy in its ``meta`` field.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import datetime as dt
import functools
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

IMMUTABLE = (str, int, float, type(None), Decimal, uuid.UUID, dt.datetime, dt.date, bytes, frozenset)
"""Values an aggregate's copy can share with the original."""

NAMESPACE = uuid.UUID("6f1c4a52-3f0e-5b7a-9c0d-5d2b8e7a1c33")
"""Namespace of the uuid5 ids derived from natural keys (session and profile integration ids, ...)."""

_meta: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("rulestream_event_meta", default=None)


@functools.lru_cache(maxsize=16_384)
def natural_id(kind: str, key: str) -> uuid.UUID:
    """The aggregate id of a natural key, e.g. ``natural_id("session", "cart-42")``.

    Cached: a command derives the ids of its session, profile and evaluations several times over (a SHA-1 and
    a ``UUID`` each, 3 % of the API's CPU under B1's load); ``UUID`` is immutable."""
    return uuid.uuid5(NAMESPACE, f"{kind}:{key}")


def int_id(aggregate_id: uuid.UUID) -> int:
    """A stable positive integer for an aggregate, for Talon.One shapes whose ids are integers.

    52 bits, so that JavaScript clients read it exactly too.
    """
    return aggregate_id.int >> 76


@contextlib.contextmanager
def recording(**meta: Any) -> Iterator[None]:
    """Stamp every event triggered in this block with ``meta`` (``correlationId``, ``keyName``, ...)."""
    token = _meta.set({k: v for k, v in meta.items() if v is not None})
    try:
        yield
    finally:
        _meta.reset(token)


def current_meta() -> dict[str, Any]:
    return dict(_meta.get() or {})


class Stream(Aggregate):
    """An aggregate whose events carry metadata and, where they are Talon.One built-in events, their type."""

    class Event(Aggregate.Event):
        meta: dict[str, Any]

        talon_type: ClassVar[str | None] = None
        """The Talon.One event type this event is shown as in the events log, or None for bookkeeping events."""

    class Created(Event, Aggregate.Created):
        pass

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        """A copy for a command to change (the repository copies every cached aggregate it hands out).

        Immutable values are shared rather than copied: the generic protocol rebuilt each id, timestamp and the
        aggregate itself through ``__reduce_ex__``, a measurable part of every command's CPU.
        """
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(
            {k: v if isinstance(v, IMMUTABLE) else copy.deepcopy(v, memo) for k, v in self.__dict__.items()}
        )
        return clone

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:  # noqa: A002
        kwargs.setdefault("meta", current_meta())
        return super()._create(event_class, id=id, **kwargs)

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        kwargs.setdefault("meta", current_meta())
        super().trigger_event(event_class, **kwargs)
