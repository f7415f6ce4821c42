"""Request bodies of the Gameball ingest: ``/api/v4.0/integrations/events``, ``/api/v2.0/event``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

CustomerId = Annotated[StrictStr, Field(min_length=1, max_length=1000)]
Events = Annotated[
    dict[str, dict[str, Any]],
    Field(min_length=1, max_length=100, description="Event name → its metadata (the event's attributes)."),
]

PROCESSED = {"success": True, "message": "Events processed"}
"""Gameball's answer to an accepted batch of events."""


class Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class EventsRequest(Wire):
    """``POST /api/v4.0/integrations/events``: events of one customer (``email``, ``mobile`` are ignored)."""

    customer_id: CustomerId = Field(alias="customerId")
    events: Events


class PlayerAttributes(Wire):
    """Gameball's player attributes: standard ones (``displayName``, ``email``, ...) and ``custom`` ones.

    Both kinds are custom attributes of ``CustomerProfile`` here, declared like any other.
    """

    model_config = ConfigDict(extra="allow")

    custom: dict[str, Any] | None = None

    def groups(self) -> dict[str, dict[str, Any]]:
        """Profile attributes by the JSON pointer prefix they were sent under."""
        groups = {"/playerAttributes": dict(self.model_extra or {})}
        if self.custom:
            groups["/playerAttributes/custom"] = dict(self.custom)
        return {prefix: values for prefix, values in groups.items() if values}


class LegacyEventRequest(Wire):
    """``POST /api/v2.0/event`` (Gameball's v2 and its Python client ``gameball.send_event``)."""

    player_unique_id: CustomerId = Field(alias="playerUniqueId")
    events: Events
    player_attributes: PlayerAttributes | None = Field(default=None, alias="playerAttributes")
