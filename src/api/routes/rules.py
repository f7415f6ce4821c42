"""Rules: Rulestream's own API (RULES.md is the language). Management keys only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import ApplicationDep, CorrelationId, ManagementKey
from api.wire.json import FastJSONResponse
from domain.base import recording
from domain.errors import DomainError
from domain.rulebook import RuleBook
from domain.rules.aggregate import Rule
from projections.replay import simulate

router = APIRouter(tags=["Rules"], default_response_class=FastJSONResponse)

RuleId = Annotated[int, Path(alias="id", ge=1, le=2**31 - 1)]
RuleBody = Annotated[dict[str, Any], Body(description="A rule as RULES.md describes it.")]


def rule_json(rule: Rule) -> dict[str, Any]:
    current = rule.current
    return {
        **current.definition,
        "id": rule.rule_id,
        "version": current.version,
        "enabled": rule.enabled,
        "created": rule.created_on,
        "updated": rule.modified_on,
        "author": current.author,
    }


@router.post("/v1/rules", status_code=201, summary="Create a rule")
def create_rule(body: RuleBody, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId) -> Any:
    """Save a new rule (version 1). An invalid rule is refused with 400 and JSON pointers into it."""
    with recording(correlationId=correlation_id, keyName=key.name):
        rule = RuleBook(app).create(body, key.name)
    return FastJSONResponse(rule_json(rule), status_code=201)


@router.get("/v1/rules", summary="List rules")
def list_rules(app: ApplicationDep, _: ManagementKey) -> Any:
    """The current version of every rule."""
    rules = RuleBook(app).all()
    return FastJSONResponse({"totalResultSize": len(rules), "data": [rule_json(r) for r in rules]})


@router.get("/v1/rules/{id}", summary="Get a rule")
def get_rule(rule_id: RuleId, app: ApplicationDep, _: ManagementKey) -> Any:
    return FastJSONResponse(rule_json(RuleBook(app).get(rule_id)))


@router.put("/v1/rules/{id}", summary="Revise a rule")
def revise_rule(
    rule_id: RuleId, body: RuleBody, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId
) -> Any:
    """Save a new version; earlier versions stay readable, and effects name the version that produced them."""
    with recording(correlationId=correlation_id, keyName=key.name):
        rule = RuleBook(app).revise(rule_id, body, key.name)
    return FastJSONResponse(rule_json(rule))


@router.get("/v1/rules/{id}/versions", summary="Every version of a rule")
def rule_versions(rule_id: RuleId, app: ApplicationDep, _: ManagementKey) -> Any:
    rule = RuleBook(app).get(rule_id)
    data = [
        {
            "version": v.version,
            "definition": v.definition,
            "author": v.author,
            "recordedAt": v.recorded_at,
            "enabled": v.enabled,
        }
        for v in rule.versions
    ]
    return FastJSONResponse({"id": rule.rule_id, "data": data})


@router.post("/v1/rules/{id}/disable", summary="Disable a rule")
def disable_rule(rule_id: RuleId, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId) -> Any:
    with recording(correlationId=correlation_id, keyName=key.name):
        rule = RuleBook(app).switch(rule_id, enabled=False, author=key.name)
    return FastJSONResponse(rule_json(rule))


@router.post("/v1/rules/{id}/enable", summary="Enable a rule")
def enable_rule(rule_id: RuleId, app: ApplicationDep, key: ManagementKey, correlation_id: CorrelationId) -> Any:
    with recording(correlationId=correlation_id, keyName=key.name):
        rule = RuleBook(app).switch(rule_id, enabled=True, author=key.name)
    return FastJSONResponse(rule_json(rule))


class SimulationRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    rules: list[dict[str, Any]] = Field(min_length=1, max_length=100)
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    sample: int = Field(default=20, ge=0, le=1000)


@router.post("/v1/rules/simulate", summary="Replay candidate rules over recorded history")
def simulate_rules(body: SimulationRequest, app: ApplicationDep, _: ManagementKey) -> Any:
    """What the candidate rules (not saved) would have emitted over the recorded events between ``from`` and
    ``to``: totals per rule and effect type, and a sample of firings. Records nothing."""
    book = RuleBook(app)
    checked = []
    for index, definition in enumerate(body.rules):
        try:
            checked.append(book.check(definition))
        except DomainError as error:
            raise error.prefixed(f"/rules/{index}") from None
    report = simulate(app, checked, since=body.from_, until=body.to, sample=body.sample)
    return FastJSONResponse(report)

