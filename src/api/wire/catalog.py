"""Wire shapes of the attribute catalog: Talon.One's ``NewAttribute`` in, ``Attribute`` and ``EventType`` out.

Rulestream's extensions ride along as extra fields, which the SDK's models ignore: ``schemaMode`` on a new
Event attribute, ``allowedList`` (Talon.One imports it separately), ``deprecated`` and ``discovered`` on an
attribute, ``builtin``, ``mode`` and ``attributes`` on an event type.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from api.wire.talon import ACCOUNT_ID
from domain.catalog.model import AttributeInfo, EventTypeInfo

Text = Annotated[StrictStr, Field(max_length=1000)]
SchemaMode = Literal["strict", "discover"]
Ids = Annotated[list[StrictInt], Field(max_length=1000)]
Subscriptions = Annotated[list[Literal["application", "catalog"]], Field(max_length=2)]


class Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class NewAttributeRequest(Wire):
    """``POST /v1/attributes`` and ``PUT /v1/attributes/{id}``: Talon.One's ``NewAttribute``.

    The form of names, titles and types is checked by the catalog, which answers with a pointer per problem.
    """

    entity: Text
    event_type: Text | None = Field(default=None, alias="eventType")
    name: Text
    title: Text | None = None
    type: Text
    description: Annotated[StrictStr, Field(max_length=10_000)] = ""
    suggestions: list[StrictStr] = Field(default_factory=list)
    has_allowed_list: StrictBool = Field(default=False, alias="hasAllowedList")
    restricted_by_suggestions: StrictBool = Field(default=False, alias="restrictedBySuggestions")
    allowed_list: list[StrictStr] = Field(default_factory=list, alias="allowedList", max_length=10_000)
    editable: StrictBool = True
    subscribed_applications_ids: list[StrictInt] | None = Field(
        default=None, alias="subscribedApplicationsIds"
    )
    subscribed_catalogs_ids: list[StrictInt] | None = Field(default=None, alias="subscribedCatalogsIds")
    allowed_subscriptions: list[StrictStr] | None = Field(
        default=None, alias="allowedSubscriptions", max_length=2
    )
    schema_mode: SchemaMode | None = Field(
        default=None,
        alias="schemaMode",
        description="Rulestream: the mode of the event type this attribute creates (strict by default).",
    )

    def declaration(self) -> dict[str, Any]:
        """The keyword arguments of ``create_attribute`` beyond entity, name and type."""
        return {
            "event_type": self.event_type or None,
            "title": self.title,
            "description": self.description,
            "suggestions": self.suggestions,
            "has_allowed_list": self.has_allowed_list,
            "restricted_by_suggestions": self.restricted_by_suggestions,
            "allowed_list": self.allowed_list,
            "editable": self.editable,
            "subscribed_applications_ids": self.subscribed_applications_ids,
            "subscribed_catalogs_ids": self.subscribed_catalogs_ids,
            "allowed_subscriptions": self.allowed_subscriptions,
            "schema_mode": self.schema_mode,
        }

    def description_fields(self) -> dict[str, Any]:
        """The keyword arguments of ``update_attribute``: what describes an attribute."""
        return {
            "title": self.title,
            "description": self.description,
            "suggestions": self.suggestions,
            "has_allowed_list": self.has_allowed_list,
            "restricted_by_suggestions": self.restricted_by_suggestions,
            "allowed_list": self.allowed_list,
        }


class SchemaModeRequest(Wire):
    """``PUT /v1/event_types/{name}/mode``."""

    mode: SchemaMode


def attribute(info: AttributeInfo) -> dict[str, Any]:
    """Talon.One's ``Attribute``, with Rulestream's ``allowedList``, ``deprecated`` and ``discovered``."""
    return {
        "id": info.id,
        "created": info.created,
        "accountId": ACCOUNT_ID,
        "entity": info.entity,
        "eventType": info.event_type,
        "name": info.name,
        "title": info.title,
        "type": info.type,
        "description": info.description,
        "suggestions": list(info.suggestions),
        "hasAllowedList": info.has_allowed_list,
        "restrictedBySuggestions": info.restricted_by_suggestions,
        "allowedList": list(info.allowed_list),
        "editable": info.editable,
        "subscribedApplicationsIds": _list(info.subscribed_applications_ids),
        "subscribedCatalogsIds": _list(info.subscribed_catalogs_ids),
        "allowedSubscriptions": _list(info.allowed_subscriptions),
        "eventTypeId": info.event_type_id,
        "deprecated": info.deprecated,
        "discovered": info.discovered,
    }


def event_type(info: EventTypeInfo) -> dict[str, Any]:
    """Talon.One's ``EventType``, with Rulestream's ``builtin``, schema ``mode`` and ``attributes``."""
    return {
        "id": info.id,
        "created": info.created,
        "title": info.title,
        "name": info.name,
        "description": info.description,
        "builtin": info.builtin,
        "mode": info.mode,
        "attributes": [attribute(a) for a in info.attributes],
    }


def page(data: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """Talon.One's paged list with a total (``GetAttributes200Response``, ``GetEventTypes200Response``)."""
    return {"totalResultSize": total, "data": data}


def _list(values: tuple[Any, ...] | None) -> list[Any] | None:
    return list(values) if values is not None else None
