"""Loyalty balances, as Talon.One's ``IntegrationApi.get_loyalty_balances`` reads them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api.deps import ApplicationDep, EffectsDep, IntegrationKey, LoyaltyDep
from api.limits import SLASHES
from api.wire.json import FastJSONResponse
from domain.effects import LOYALTY_PROGRAM_ID
from domain.errors import NotFound
from projections import queries, status
from projections.status import IMPLICIT_WAIT_SECONDS

router = APIRouter(tags=["Loyalty"], default_response_class=FastJSONResponse)


@router.get(
    "/v1/loyalty_programs/{loyaltyProgramId}/profile/{integrationId}/balances", summary="Get loyalty balances"
)
def get_loyalty_balances(
    loyalty_program_id: Annotated[int, Path(alias="loyaltyProgramId")],
    integration_id: Annotated[str, Path(alias="integrationId", min_length=1, max_length=1000), SLASHES],
    loyalty: LoyaltyDep,
    effects: EffectsDep,
    app: ApplicationDep,
    _: IntegrationKey,
) -> Any:
    """The profile's points in the built-in loyalty program (id 1): the fold of its recorded ledger entries,
    including what the rules made of every write that answered before this read (a ``silent=yes`` event's or a
    Gameball ingest's points too: the read waits up to 0.5 s for the rule policy to have passed them), and the
    points it spent (deducted, less those given back)."""
    if loyalty_program_id != LOYALTY_PROGRAM_ID:
        raise NotFound(f"no loyalty program {loyalty_program_id}: Rulestream has one, with id {LOYALTY_PROGRAM_ID}")
    # The policy's evaluations of every answered write, and the loyalty read model (spent points) up to them.
    status.ensure(app)
    status.wait_for_position(app, ["loyalty"], None, IMPLICIT_WAIT_SECONDS, effects.settled)
    return FastJSONResponse(loyalty.balances(integration_id, queries.spent(app, integration_id)))
