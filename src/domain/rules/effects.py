"""The closed set of effects a rule may emit, each with typed ``props`` (RULES.md "effects")."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, JsonValue, StrictInt, Tag

from .nodes import TAG_MARK, Node, NumExpr


class NamedValue(Node):
    """``{name, value}``: the props of points and discount effects."""

    name: Annotated[str, Field(min_length=1)]
    value: NumExpr


class PerItemValue(NamedValue):
    position: Annotated[StrictInt, Field(ge=0)]


class FreeItem(Node):
    sku: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]


class Notification(Node):
    notification_type: Literal["Info", "Offer", "Error", "Misc"]
    title: str
    body: str


class CustomProps(Node):
    name: Annotated[str, Field(min_length=1)]
    payload: dict[str, JsonValue] = Field(default_factory=dict)


class WebhookProps(Node):
    webhook: Annotated[str, Field(min_length=1)]
    payload: dict[str, JsonValue] | None = None


class EffectNode(Node):
    """Base of the effects: ``{"effectType": ..., "props": {...}}``."""

    effect_type: str


class AddLoyaltyPoints(EffectNode):
    key: ClassVar[str] = "addLoyaltyPoints"
    effect_type: Literal["addLoyaltyPoints"]
    props: NamedValue


class DeductLoyaltyPoints(EffectNode):
    key: ClassVar[str] = "deductLoyaltyPoints"
    effect_type: Literal["deductLoyaltyPoints"]
    props: NamedValue


class SetDiscount(EffectNode):
    key: ClassVar[str] = "setDiscount"
    effect_type: Literal["setDiscount"]
    props: NamedValue


class SetDiscountPerItem(EffectNode):
    key: ClassVar[str] = "setDiscountPerItem"
    effect_type: Literal["setDiscountPerItem"]
    props: PerItemValue


class AddFreeItem(EffectNode):
    key: ClassVar[str] = "addFreeItem"
    effect_type: Literal["addFreeItem"]
    props: FreeItem


class ShowNotification(EffectNode):
    key: ClassVar[str] = "showNotification"
    effect_type: Literal["showNotification"]
    props: Notification


class CustomEffect(EffectNode):
    key: ClassVar[str] = "customEffect"
    effect_type: Literal["customEffect"]
    props: CustomProps


class TriggerWebhook(EffectNode):
    key: ClassVar[str] = "triggerWebhook"
    effect_type: Literal["triggerWebhook"]
    props: WebhookProps


EFFECT_TYPES: tuple[type[EffectNode], ...] = (
    AddLoyaltyPoints, DeductLoyaltyPoints, SetDiscount, SetDiscountPerItem,
    AddFreeItem, ShowNotification, CustomEffect, TriggerWebhook,
)  # fmt: skip
_NAMES = tuple(cls.key for cls in EFFECT_TYPES)


def _effect_tag(value: Any) -> str | None:
    name = value.get("effectType") if isinstance(value, dict) else getattr(value, "key", None)
    return TAG_MARK + name if name in _NAMES else None


Effect = Annotated[
    Annotated[AddLoyaltyPoints, Tag("#addLoyaltyPoints")]
    | Annotated[DeductLoyaltyPoints, Tag("#deductLoyaltyPoints")]
    | Annotated[SetDiscount, Tag("#setDiscount")]
    | Annotated[SetDiscountPerItem, Tag("#setDiscountPerItem")]
    | Annotated[AddFreeItem, Tag("#addFreeItem")]
    | Annotated[ShowNotification, Tag("#showNotification")]
    | Annotated[CustomEffect, Tag("#customEffect")]
    | Annotated[TriggerWebhook, Tag("#triggerWebhook")],
    Discriminator(
        _effect_tag,
        custom_error_type="unknown_effect",
        custom_error_message="effectType must be one of " + ", ".join(_NAMES),
    ),
]
"""One effect of a rule."""
