"""The form of a new or updated attribute declaration, checked before the catalog looks at what exists.

Each function returns every problem it finds, with a JSON pointer into Talon.One's ``NewAttribute`` body.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.catalog.builtin import ENTITIES, EVENT, RESERVED_EVENT_TYPE_PREFIX
from domain.catalog.model import EVENT_TYPE_PATTERN, MAX_SUGGESTIONS, SCHEMA_MODES, TITLE_PATTERN
from domain.catalog.types import ATTRIBUTE_TYPES, STRING, element_type
from domain.catalog.validation import name_problems
from domain.errors import Problem

INVALID = "Invalid attribute declaration"


def is_reserved_event_type(name: str) -> bool:
    """Whether ``name`` is in the ``talon_`` namespace of built-in event types (in any case)."""
    return name.lower().startswith(RESERVED_EVENT_TYPE_PREFIX)


def declaration_problems(
    entity: str,
    name: str,
    type_: str,
    event_type: str | None,
    schema_mode: str | None,
) -> list[Problem]:
    """Problems of the identity of a new attribute: its entity, name, type, event type and schema mode."""
    if entity not in ENTITIES:
        return [Problem(INVALID, f"unknown entity '{entity}': one of {', '.join(ENTITIES)}", "/entity")]
    problems = name_problems(entity, name, "/name")
    if type_ not in ATTRIBUTE_TYPES:
        problems.append(
            Problem(INVALID, f"unknown type '{type_}': one of {', '.join(ATTRIBUTE_TYPES)}", "/type")
        )
    if entity == EVENT:
        problems += event_type_problems(event_type)
    elif event_type:  # "" and null both mean none, as clients send either
        problems.append(
            Problem(INVALID, "only attributes of the Event entity have an eventType", "/eventType")
        )
    if schema_mode is not None and entity != EVENT:
        problems.append(Problem(INVALID, "only event types have a schema mode", "/schemaMode"))
    elif schema_mode is not None and schema_mode not in SCHEMA_MODES:
        problems.append(
            Problem(INVALID, f"unknown schema mode '{schema_mode}': strict or discover", "/schemaMode")
        )
    return problems


def event_type_problems(event_type: str | None) -> list[Problem]:
    """Why ``event_type`` cannot name a custom event type."""
    if event_type is None or event_type == "":
        return [Problem(INVALID, "an attribute of the Event entity needs an eventType", "/eventType")]
    if is_reserved_event_type(event_type):
        details = f"'{event_type}': event types starting with talon_ are reserved for built-in events"
        return [Problem("Reserved event type", details, "/eventType")]
    if not EVENT_TYPE_PATTERN.fullmatch(event_type):
        details = (
            f"'{event_type}' is not an event type name: a letter, then letters, digits or _ . : - (≤ 255)"
        )
        return [Problem(INVALID, details, "/eventType")]
    return []


def description_problems(
    type_: str,
    title: str | None,
    suggestions: Sequence[str],
    restricted_by_suggestions: bool,
    has_allowed_list: bool,
    allowed_list: Sequence[str],
) -> list[Problem]:
    """Problems of what describes an attribute (also what an update may change); no title: the name's."""
    problems: list[Problem] = []
    if title is not None and not TITLE_PATTERN.fullmatch(title):
        details = "a title is a letter, then letters, digits, spaces or _ . ! ~ * ' ( ) -"
        problems.append(Problem(INVALID, details, "/title"))
    if len(suggestions) > MAX_SUGGESTIONS:
        problems.append(Problem(INVALID, f"at most {MAX_SUGGESTIONS} suggestions", "/suggestions"))
    for field, values in (("suggestions", suggestions), ("allowedList", allowed_list)):
        for i, value in enumerate(values):
            if not isinstance(value, str) or value == "":
                problems.append(Problem(INVALID, "a non-empty string", f"/{field}/{i}"))
    if allowed_list and not has_allowed_list:
        problems.append(Problem(INVALID, "an allowed list needs hasAllowedList: true", "/allowedList"))
    restrictable = STRING in (type_, element_type(type_))
    if (restricted_by_suggestions or has_allowed_list) and not restrictable:
        details = "only string and (list string) attributes can be restricted to a list of values"
        problems.append(Problem(INVALID, details, "/restrictedBySuggestions"))
    return problems
