"""Request bodies of the Integration API, in Talon.One's camelCase shapes and limits.

These models translate at the edge: routes turn them into the plain ``changes`` mappings the domain takes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

MAX_CART_ITEMS = 1000
MAX_TOTAL_QUANTITY = 10_000

Money = Annotated[Decimal, Field(allow_inf_nan=False, max_digits=40, decimal_places=20)]
"""Up to 20 digits before the point and 20 after: a price a client computed in floating point
(``0.1 + 0.2`` = ``0.30000000000000004``) is taken as sent; totals add them exactly."""
Id = Annotated[StrictStr, Field(max_length=1000)]
SessionState = Literal["open", "closed", "partially_returned", "cancelled"]
SessionContent = Literal[
    "customerSession", "customerProfile", "coupons", "triggeredCampaigns", "referral", "loyalty", "event",
    "awardedGiveaways", "ruleFailureReasons", "previousReturns",
]  # fmt: skip
ProfileContent = Literal[
    "customerProfile", "triggeredCampaigns", "loyalty", "event", "awardedGiveaways", "ruleFailureReasons"
]


class Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class AdditionalCostRequest(Wire):
    price: Money


class CartItemRequest(Wire):
    """A cart line. Fields Talon.One defines that we do not interpret are kept and given back as they came."""

    model_config = ConfigDict(extra="allow")

    sku: Annotated[StrictStr, Field(min_length=1, max_length=1000)]
    quantity: Annotated[StrictInt, Field(ge=1, le=MAX_TOTAL_QUANTITY)]
    price: Money
    name: Annotated[StrictStr, Field(max_length=1000)] | None = None
    category: Annotated[StrictStr, Field(max_length=1000)] | None = None
    attributes: dict[str, Any] | None = None
    returned_quantity: StrictInt | None = Field(default=None, alias="returnedQuantity")
    remaining_quantity: StrictInt | None = Field(default=None, alias="remainingQuantity")
    position: float | None = None


class NewCustomerSessionRequest(Wire):
    profile_id: Annotated[StrictStr, Field(max_length=1000)] | None = Field(default=None, alias="profileId")
    store_integration_id: Annotated[StrictStr, Field(min_length=1, max_length=1000)] | None = Field(
        default=None, alias="storeIntegrationId"
    )
    evaluable_campaign_ids: list[StrictInt] | None = Field(default=None, alias="evaluableCampaignIds")
    coupon_codes: list[Annotated[StrictStr, Field(max_length=100)]] | None = Field(
        default=None, alias="couponCodes", max_length=100
    )
    referral_code: Annotated[StrictStr, Field(max_length=100)] | None = Field(default=None, alias="referralCode")
    loyalty_cards: list[Id] | None = Field(default=None, alias="loyaltyCards", max_length=1)
    state: SessionState = "open"
    cart_items: list[CartItemRequest] | None = Field(default=None, alias="cartItems", max_length=MAX_CART_ITEMS)
    additional_costs: dict[str, AdditionalCostRequest] | None = Field(default=None, alias="additionalCosts")
    identifiers: list[Id] | None = Field(default=None, max_length=5)
    attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _total_quantity_within_limit(self) -> NewCustomerSessionRequest:
        if self.cart_items and sum(i.quantity for i in self.cart_items) > MAX_TOTAL_QUANTITY:
            raise ValueError(f"the cart items' quantities add up to more than {MAX_TOTAL_QUANTITY}")
        return self

    def changes(self) -> dict[str, Any]:
        """The content this request sets; omitted fields leave the session's content as it is."""
        changes: dict[str, Any] = {}
        if self.profile_id is not None:
            changes["profileId"] = self.profile_id or None
        for key, value in (
            ("storeIntegrationId", self.store_integration_id),
            ("couponCodes", self.coupon_codes),
            ("referralCode", self.referral_code),
            ("loyaltyCards", self.loyalty_cards),
            ("identifiers", self.identifiers),
            ("attributes", self.attributes),
        ):
            if value is not None:
                changes[key] = value
        if self.additional_costs is not None:
            changes["additionalCosts"] = {name: str(cost.price) for name, cost in self.additional_costs.items()}
        if self.cart_items is not None:
            changes["cartItems"] = [_cart_item_record(item) for item in self.cart_items]
        return changes


def _cart_item_record(item: CartItemRequest) -> dict[str, Any]:
    return {
        "sku": item.sku,
        "quantity": item.quantity,
        "price": str(item.price),
        "name": item.name,
        "category": item.category,
        "returnedQuantity": 0,
        "attributes": item.attributes or {},
        "extra": dict(item.model_extra or {}),
    }


class IntegrationRequest(Wire):
    """``PUT /v2/customer_sessions/{id}``."""

    customer_session: NewCustomerSessionRequest = Field(alias="customerSession")
    response_content: list[SessionContent] | None = Field(default=None, alias="responseContent")


class ReturnedCartItemRequest(Wire):
    position: Annotated[StrictInt, Field(ge=0)] | None = None
    quantity: Annotated[StrictInt, Field(ge=1)] | None = None
    sku: Annotated[StrictStr, Field(min_length=1)] | None = None


class NewReturnRequest(Wire):
    returned_cart_items: list[ReturnedCartItemRequest] = Field(
        alias="returnedCartItems", min_length=1, max_length=MAX_CART_ITEMS
    )


class ReturnIntegrationRequest(Wire):
    """``POST /v2/customer_sessions/{id}/returns``."""

    return_: NewReturnRequest = Field(alias="return")
    response_content: list[SessionContent] | None = Field(default=None, alias="responseContent")


class CustomerProfileIntegrationRequest(Wire):
    """``PUT /v2/customer_profiles/{integrationId}``."""

    attributes: dict[str, Any] | None = None
    evaluable_campaign_ids: list[StrictInt] | None = Field(default=None, alias="evaluableCampaignIds")
    audiences_changes: Any = Field(default=None, alias="audiencesChanges")
    response_content: list[ProfileContent] | None = Field(default=None, alias="responseContent")


class IntegrationEventRequest(Wire):
    """``POST /v2/events``; ``sessionId`` is Rulestream's extension that binds the event to a session."""

    profile_id: Annotated[StrictStr, Field(max_length=1000)] | None = Field(default=None, alias="profileId")
    store_integration_id: Annotated[StrictStr, Field(min_length=1, max_length=1000)] | None = Field(
        default=None, alias="storeIntegrationId"
    )
    evaluable_campaign_ids: list[StrictInt] | None = Field(default=None, alias="evaluableCampaignIds")
    type: Annotated[StrictStr, Field(min_length=1, max_length=255)]
    attributes: dict[str, Any] | None = None
    loyalty_cards: list[Id] | None = Field(default=None, alias="loyaltyCards", max_length=1)
    session_id: Annotated[StrictStr, Field(min_length=1, max_length=1000)] | None = Field(
        default=None, alias="sessionId"
    )
    response_content: list[ProfileContent] | None = Field(default=None, alias="responseContent")

