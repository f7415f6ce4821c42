"""The attribute catalog: Talon.One's Management API of custom attributes and event types, and our own.

Talon.One's (``talon_one.ManagementApi`` drives them): ``POST /v1/attributes`` (201), ``GET /v1/attributes``,
``GET /v1/attributes/{attributeId}``, ``PUT /v1/attributes/{attributeId}``, ``GET /v1/event_types``.
Rulestream's: ``POST /v1/attributes/{attributeId}/deprecate`` (attributes are never deleted) and
``PUT /v1/event_types/{name}/mode`` (``strict`` or ``discover``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query

from api.deps import ApplicationDep, AuditorKey, CorrelationId, ManagementKey
from api.limits import MAX_INT
from api.wire import catalog as wire
from api.wire.catalog import NewAttributeRequest, SchemaModeRequest
from api.wire.json import FastJSONResponse
from domain.base import recording
from domain.catalog.builtin import ENTITIES
from domain.catalog.model import AttributeInfo
from domain.errors import InvalidInput, Problem

router = APIRouter(tags=["Attributes"], default_response_class=FastJSONResponse)

T = TypeVar("T")
AttributeId = Annotated[int, Path(alias="attributeId", ge=1, le=MAX_INT)]
PageSize = Annotated[
    int, Query(alias="pageSize", ge=1, le=1000, description="The number of items in the response.")
]
Skip = Annotated[int, Query(ge=0, le=MAX_INT, description="The number of items to skip.")]
Sort = Annotated[
    str | None, Query(description="`id`, `created`, `name` or `title`; prefix with `-` for descending order.")
]
SORTABLE = ("id", "created", "name", "title")


@router.post("/v1/attributes", status_code=201, summary="Create custom attribute")
def create_attribute(
    body: NewAttributeRequest, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId
) -> Any:
    """Declare a custom attribute of an entity (Talon.One's ``NewAttribute`` → ``Attribute``, 201).

    With ``entity: "Event"``, ``eventType`` names the custom event type: the first attribute creates it (in
    ``schemaMode`` ``strict``, the default, or ``discover``), later ones extend it. A name or title taken in
    the same entity and event type (ignoring case) answers 409; every other problem 400 with a pointer.
    """
    with recording(correlationId=correlation_id, keyName=key.name):
        created = app.create_attribute(body.entity, body.name, body.type, **body.declaration())
    return FastJSONResponse(wire.attribute(created), status_code=201)


@router.get("/v1/attributes", summary="List custom attributes")
def list_attributes(
    app: ApplicationDep,
    _: AuditorKey,
    page_size: PageSize = 1000,
    skip: Skip = 0,
    sort: Sort = None,
    entity: Annotated[str | None, Query(description="Only attributes of this entity.")] = None,
    type_: Annotated[str | None, Query(alias="type", description="Only attributes of this type.")] = None,
    kind: Annotated[str | None, Query(description="`custom` (all of them) or `builtin` (none).")] = None,
    search: Annotated[str | None, Query(description="Case-insensitive, in name, title, description.")] = None,
    event_type: Annotated[str | None, Query(alias="eventType", description="Only this event type's.")] = None,
    application_ids: Annotated[str | None, Query(alias="applicationIds")] = None,
) -> Any:
    """Every custom attribute, deprecated ones included, in Talon.One's paged shape (``totalResultSize``)."""
    if entity is not None and entity not in ENTITIES:
        raise _bad_parameter("entity", f"unknown entity '{entity}': one of {', '.join(ENTITIES)}")
    if kind not in (None, "custom", "builtin"):
        raise _bad_parameter("kind", "builtin or custom")
    found = [
        a
        for a in app.catalog().attributes(entity, event_type)
        if kind != "builtin" and (type_ is None or a.type == type_) and _matches(a, search)
    ]
    return FastJSONResponse(_page(found, wire.attribute, page_size, skip, sort))


@router.get("/v1/attributes/{attributeId}", summary="Get custom attribute")
def get_attribute(attribute_id: AttributeId, app: ApplicationDep, _: AuditorKey) -> Any:
    """One custom attribute (404 if there is none with this id)."""
    return FastJSONResponse(wire.attribute(app.catalog().attribute(attribute_id)))


@router.put("/v1/attributes/{attributeId}", summary="Update custom attribute")
def update_attribute(
    attribute_id: AttributeId,
    body: NewAttributeRequest,
    app: ApplicationDep,
    key: ManagementKey,
    correlation_id: CorrelationId,
) -> Any:
    """Change what describes an attribute: title, description, suggestions, allowed list and restriction.

    Its identity (entity, event type, name, type) never changes, since history refers to it: a body naming
    another one answers 400. A narrower restriction binds new writes only; recorded values stay as they are.
    """
    _refuse_identity_change(app.catalog().attribute(attribute_id), body)
    with recording(correlationId=correlation_id, keyName=key.name):
        updated = app.update_attribute(attribute_id, **body.description_fields())
    return FastJSONResponse(wire.attribute(updated))


@router.post("/v1/attributes/{attributeId}/deprecate", summary="Deprecate custom attribute")
def deprecate_attribute(
    attribute_id: AttributeId, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId
) -> Any:
    """Deprecate an attribute (Rulestream; attributes are never deleted, history refers to them).

    A deprecated attribute keeps its name, stays readable in every recorded event, and is still accepted in
    writes, so clients that still send it keep working. Deprecating twice changes nothing.
    """
    with recording(correlationId=correlation_id, keyName=key.name):
        deprecated = app.deprecate_attribute(attribute_id)
    return FastJSONResponse(wire.attribute(deprecated))


@router.get("/v1/event_types", summary="List event types")
def list_event_types(
    app: ApplicationDep,
    _: AuditorKey,
    name: Annotated[str | None, Query(description="Only the event type of this name.")] = None,
    include_old_versions: Annotated[bool, Query(alias="includeOldVersions")] = False,
    page_size: PageSize = 1000,
    skip: Skip = 0,
    sort: Sort = None,
) -> Any:
    """Built-in (``talon_*``) and custom event types, with Rulestream's schema ``mode`` and ``attributes``.

    Event types have one version each (``includeOldVersions`` changes nothing).
    """
    found = [t for t in app.catalog().event_types() if name is None or t.name == name]
    return FastJSONResponse(_page(found, wire.event_type, page_size, skip, sort))


@router.put("/v1/event_types/{name}/mode", summary="Set the schema mode of a custom event type")
def set_schema_mode(
    name: Annotated[str, Path(min_length=1, max_length=255)],
    body: SchemaModeRequest,
    app: ApplicationDep,
    key: ManagementKey,
    correlation_id: CorrelationId,
) -> Any:
    """Rulestream: ``strict`` (Talon.One: undeclared attributes are refused) or ``discover`` (Gameball).

    In ``discover`` mode an undeclared attribute of this event type is registered on first sight with the type
    its value implies, in the same transaction as the event, and enforced from then on. Built-in event types
    are always strict (404 here).
    """
    with recording(correlationId=correlation_id, keyName=key.name):
        changed = app.set_schema_mode(name, body.mode)
    return FastJSONResponse(wire.event_type(changed))


def _page(
    items: Sequence[T], shape: Callable[[T], dict[str, Any]], size: int, skip: int, sort: str | None
) -> dict[str, Any]:
    if sort is not None:
        field = sort.removeprefix("-")
        if field not in SORTABLE:
            raise _bad_parameter("sort", f"cannot sort by '{field}': one of {', '.join(SORTABLE)}")
        items = sorted(items, key=lambda i: getattr(i, field), reverse=sort.startswith("-"))
    return wire.page([shape(i) for i in items[skip : skip + size]], len(items))


def _matches(info: AttributeInfo, search: str | None) -> bool:
    if not search:
        return True
    needle = search.casefold()
    return any(needle in text.casefold() for text in (info.name, info.title, info.description, info.type))


def _refuse_identity_change(current: AttributeInfo, body: NewAttributeRequest) -> None:
    problems = [
        Problem("Attribute identity cannot change", f"{field} is '{was}'; it cannot change", ptr)
        for field, ptr, was, now in (
            ("entity", "/entity", current.entity, body.entity),
            ("eventType", "/eventType", current.event_type, body.event_type or None),
            ("name", "/name", current.name, body.name),
            ("type", "/type", current.type, body.type),
        )
        if was != now
    ]
    if problems:
        raise InvalidInput(problems[0].details, problems)


def _bad_parameter(name: str, details: str) -> InvalidInput:
    return InvalidInput(details, [Problem(f"Invalid query parameter {name}", details, parameter=name)])
