"""Checking attribute values of a write, and names of new attributes, against declarations.

Pure functions over the declared attributes of one scope (an entity, or one custom event type): the catalog
aggregate picks the scope, these find every problem of a request, so that one error reports them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from domain.catalog.builtin import BUILTIN_ATTRIBUTES
from domain.catalog.model import NAME_PATTERN, AttributeInfo, ValidatedAttributes
from domain.catalog.types import STRING, element_type, infer_type, invalid, normalize_into
from domain.errors import Problem, pointer

UNDECLARED = "Undeclared attribute"
NOT_ALLOWED = "Value not allowed"
CANNOT_DISCOVER = "Attribute cannot be discovered"


def check_values(
    declared: Mapping[str, AttributeInfo],
    attributes: Mapping[str, Any],
    prefix: str,
    *,
    entity: str,
    discover: bool = False,
) -> ValidatedAttributes:
    """Normalise ``attributes`` by their declarations; ``AttributeInvalid`` with every problem found.

    With ``discover``, an undeclared attribute whose name is valid and whose type can be inferred is accepted
    and returned in ``discovered``; otherwise an undeclared attribute is a problem.
    """
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    discovered: list[tuple[str, str]] = []
    deprecated: list[str] = []
    for name, value in attributes.items():
        ptr = prefix + pointer(name)
        attribute = declared.get(name)
        if attribute is None:
            if not discover:
                problems.append(Problem(UNDECLARED, _undeclared(name, declared), ptr))
                continue
            found = _discover(name, value, declared, entity, ptr, problems)
            if found is None:
                continue
            discovered.append((name, found))
            values[name] = normalize_into(found, value, ptr, problems)
            continue
        if attribute.deprecated:
            deprecated.append(name)
        before = len(problems)
        values[name] = normalize_into(attribute.type, value, ptr, problems)
        if len(problems) == before:
            _check_allowed(attribute, values[name], ptr, problems)
    if problems:
        raise invalid(problems)
    return ValidatedAttributes(values, tuple(discovered), tuple(deprecated))


def name_problems(entity: str, name: str, ptr: str) -> list[Problem]:
    """Why ``name`` cannot name a new attribute of ``entity``: its form, or a built-in property it shadows."""
    if not NAME_PATTERN.fullmatch(name):
        details = f"'{name}' is not an attribute name: a letter, then letters, digits or _"
        return [Problem("Invalid attribute name", details, ptr)]
    if name.lower() in BUILTIN_ATTRIBUTES.get(entity, frozenset()):
        details = f"'{name}' is a built-in property of {entity}; choose another name"
        return [Problem("Reserved attribute name", details, ptr)]
    return []


def same_name(name: str, names: Iterable[str]) -> str | None:
    """The existing name ``name`` collides with, ignoring case (``url`` and ``URL`` would confuse rules)."""
    folded = name.casefold()
    return next((n for n in names if n.casefold() == folded), None)


def _discover(
    name: str,
    value: Any,
    declared: Mapping[str, AttributeInfo],
    entity: str,
    ptr: str,
    problems: list[Problem],
) -> str | None:
    name_trouble = name_problems(entity, name, ptr)
    if name_trouble:
        problems.extend(name_trouble)
        return None
    twin = same_name(name, declared)
    if twin is not None:
        problems.append(
            Problem(CANNOT_DISCOVER, f"'{name}' differs from the declared '{twin}' only in case", ptr)
        )
        return None
    found = infer_type(value)
    if found is None:
        details = f"the type of '{name}' cannot be inferred from this value: declare the attribute first"
        problems.append(Problem(CANNOT_DISCOVER, details, ptr))
    return found


def _check_allowed(attribute: AttributeInfo, value: Any, ptr: str, problems: list[Problem]) -> None:
    allowed = attribute.allowed_values
    if allowed is None:
        return
    if attribute.type == STRING:
        items: list[tuple[str, Any]] = [(ptr, value)]
    elif element_type(attribute.type) == STRING:
        items = [(f"{ptr}/{i}", v) for i, v in enumerate(value)]
    else:
        return
    for item_ptr, item in items:
        if item not in allowed:
            details = f"'{item}' is not an allowed value of '{attribute.name}'"
            problems.append(Problem(NOT_ALLOWED, details, item_ptr))


def _undeclared(name: str, declared: Mapping[str, AttributeInfo]) -> str:
    twin = same_name(name, declared)
    hint = f" (did you mean '{twin}'?)" if twin is not None else ""
    return f"'{name}' is not a declared attribute{hint}"
