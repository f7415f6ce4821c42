"""Loyalty balances, as Talon.One's ``IntegrationApi.get_loyalty_balances`` reads them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api.deps import IntegrationKey, LoyaltyDep
from api.wire.json import FastJSONResponse
from domain.effects import LOYALTY_PROGRAM_ID
from domain.errors import NotFound

router = APIRouter(tags=["Loyalty"], default_response_class=FastJSONResponse)


@router.get(
    "/v1/loyalty_programs/{loyaltyProgramId}/profile/{integrationId:path}/balances", summary="Get loyalty balances"
)
def get_loyalty_balances(
    loyalty_program_id: Annotated[int, Path(alias="loyaltyProgramId")],
    integration_id: Annotated[str, Path(alias="integrationId", min_length=1, max_length=1000)],
    loyalty: LoyaltyDep,
    _: IntegrationKey,
) -> Any:
    """The profile's points in the built-in loyalty program (id 1): the fold of its recorded ledger entries."""
    if loyalty_program_id != LOYALTY_PROGRAM_ID:
        raise NotFound(f"no loyalty program {loyalty_program_id}: Rulestream has one, with id {LOYALTY_PROGRAM_ID}")
    return FastJSONResponse(loyalty.balances(integration_id))
