"""Rules as event-sourced aggregates: every version stays readable, with who wrote it and when.

Events carry the request's metadata like every ``Stream`` event, and store definitions as plain
JSON-compatible dicts (``RuleDefinition.to_json()``), never pydantic objects, so that they stay readable for
as long as the log lives, whatever the models become.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from ..base import Stream

NAMESPACE = uuid.UUID("0b7e4f2c-8a61-5d3e-9f47-2c1d6a8e5b90")
"""Namespace of the uuid5 ids of rule aggregates and of the rule registry."""

REGISTRY_ID = uuid.uuid5(NAMESPACE, "rule-registry")


def rule_aggregate_id(rule_id: int) -> uuid.UUID:
    """The aggregate id of the rule with integer id ``rule_id``."""
    return uuid.uuid5(NAMESPACE, f"rule:{rule_id}")


@dataclass(frozen=True)
class RuleVersion:
    """One version of a rule: its definition, who saved it (API key name), when, and if it was enabled."""

    version: int
    definition: dict[str, Any]
    author: str
    recorded_at: datetime
    enabled: bool


class Rule(Stream):
    """A rule and all its versions; ``enabled`` is the switch, set by the definition or by commands."""

    class RuleCreated(Stream.Created):
        rule_id: int
        definition: dict[str, Any]
        author: str

    class RuleRevised(Stream.Event):
        definition: dict[str, Any]
        author: str

        def apply(self, aggregate: Any) -> None:
            aggregate._add_version(self.definition, self.author, self.timestamp)

    class RuleDisabled(Stream.Event):
        author: str

        def apply(self, aggregate: Any) -> None:
            aggregate.enabled = False

    class RuleEnabled(Stream.Event):
        author: str

        def apply(self, aggregate: Any) -> None:
            aggregate.enabled = True

    @staticmethod
    def create_id(rule_id: int) -> uuid.UUID:
        return rule_aggregate_id(rule_id)

    @event(RuleCreated)
    def __init__(self, rule_id: int, definition: dict[str, Any], author: str) -> None:
        self.rule_id = rule_id
        self.versions: list[RuleVersion] = []
        self.enabled = True
        self._add_version(definition, author, self.created_on)

    def revise(self, definition: dict[str, Any], author: str) -> None:
        """Save a new version; earlier versions stay readable."""
        self.trigger_event(self.RuleRevised, definition=definition, author=author)

    def disable(self, author: str) -> None:
        if self.enabled:
            self.trigger_event(self.RuleDisabled, author=author)

    def enable(self, author: str) -> None:
        if not self.enabled:
            self.trigger_event(self.RuleEnabled, author=author)

    @property
    def current(self) -> RuleVersion:
        """The latest version."""
        return self.versions[-1]

    @property
    def current_definition(self) -> dict[str, Any]:
        """The latest definition, with ``enabled`` as the rule's switch says (what to compile)."""
        return {**self.current.definition, "enabled": self.enabled}

    def _add_version(self, definition: dict[str, Any], author: str, at: datetime) -> None:
        enabled = bool(definition.get("enabled", True))
        self.versions.append(RuleVersion(len(self.versions) + 1, definition, author, at, enabled))
        self.enabled = enabled


class RuleRegistry(Stream):
    """The one registry of rule ids: hands out increasing integers and lists them without a read model."""

    @staticmethod
    def create_id() -> uuid.UUID:
        return REGISTRY_ID

    @event("RuleRegistryStarted")
    def __init__(self) -> None:
        self.rule_ids: list[int] = []

    def allocate(self) -> int:
        """A new rule id, one more than the last one handed out."""
        rule_id = (self.rule_ids[-1] if self.rule_ids else 0) + 1
        self._allocated(rule_id)
        return rule_id

    @event("RuleIdAllocated")
    def _allocated(self, rule_id: int) -> None:
        self.rule_ids.append(rule_id)
