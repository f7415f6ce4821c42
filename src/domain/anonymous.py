"""Custom events of nobody in particular (Talon.One accepts events without a profile)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.base import Stream


class AnonymousEvent(Stream):
    """A one-event stream holding a custom event that names neither a profile nor a session."""

    class Tracked(Stream.Created):
        event_type: str
        attributes: dict[str, Any]

    @classmethod
    def track(cls, event_type: str, attributes: Mapping[str, Any]) -> AnonymousEvent:
        event: AnonymousEvent = cls._create(cls.Tracked, event_type=event_type, attributes=dict(attributes))
        return event
