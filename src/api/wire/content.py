"""What ``responseContent`` may add to an integration state besides the session, profile, event and loyalty:
Talon.One's ``triggeredCampaigns``, ``previousReturns``, ``coupons``, ``awardedGiveaways`` and, on a return, the
``return`` itself. Built only when asked for (each reads the log or the rules).

A campaign is a rule (``Campaign``: id = rule id, ``activeRulesetId`` = the version that fired); a return is a
``talon_session_partially_returned`` event (``Return``: id and ``eventId`` = its log position). Rulestream has no
coupons or giveaways: asked for, they are empty lists, never absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from api.wire.talon import ACCOUNT_ID, APPLICATION_ID
from domain.application import Outcome, Rulestream, profile_id, session_id
from domain.base import int_id
from domain.errors import NotFound
from domain.rulebook import RuleBook
from domain.session import CustomerSession
from domain.settlement import POINT_EFFECTS, ROLLBACK_TYPES
from projections.audit.log import AuditLog

USER_ID = 1
EMPTY = ("coupons", "awardedGiveaways")
"""Contents Rulestream has nothing of."""


def extras(app: Rulestream, outcome: Outcome, effects: Sequence[Mapping[str, Any]], wanted: set[str]) -> dict[str, Any]:
    """The asked-for contents of ``wanted`` that ``talon.integration_state`` does not build."""
    found: dict[str, Any] = {name: [] for name in EMPTY if name in wanted}
    if "triggeredCampaigns" in wanted:
        found["triggeredCampaigns"] = triggered_campaigns(app, effects)
    session = outcome.session
    if session is not None:
        returned = [e for e in outcome.events if isinstance(e, CustomerSession.ItemsReturned)]
        if returned:
            found["return"] = model_return(session, returned[-1], outcome.position_of(returned[-1]))
        if "previousReturns" in wanted:
            current = {outcome.position_of(e) for e in returned}
            found["previousReturns"] = [r for r in returns_of(app, session) if r["eventId"] not in current]
    return found


def triggered_campaigns(app: Rulestream, effects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``Campaign`` of each rule whose effects the answer carries (rollbacks are not a rule firing), in order."""
    fired: dict[int, int] = {}
    for effect in effects:
        if effect["effectType"] not in ROLLBACK_TYPES:
            fired.setdefault(int(effect["campaignId"]), int(effect["rulesetId"]))
    book = RuleBook(app)
    campaigns: list[dict[str, Any]] = []
    for rule_id, version in fired.items():
        try:
            rule = book.get(rule_id)
        except NotFound:
            continue
        definition = rule.current.definition
        schedule = definition.get("schedule") or {}
        campaigns.append({
            "id": rule_id, "created": rule.versions[0].recorded_at, "applicationId": APPLICATION_ID,
            "userId": USER_ID, "name": definition.get("name") or f"rule {rule_id}",
            "description": definition.get("description") or "", "startTime": schedule.get("startTime"),
            "endTime": schedule.get("endTime"), "attributes": {},
            "state": "enabled" if rule.enabled else "disabled", "activeRulesetId": version, "tags": [],
            "features": ["loyalty"] if _earns_points(definition) else [], "limits": [], "type": "advanced",
            "frontendState": "running" if rule.enabled else "disabled", "storesImported": False,
        })  # fmt: skip
    return campaigns


def _earns_points(definition: Mapping[str, Any]) -> bool:
    return any(e.get("effectType") in POINT_EFFECTS for e in definition.get("effects") or [])


def returns_of(app: Rulestream, session: CustomerSession) -> list[dict[str, Any]]:
    """Every return of the session, in order, read from its stream."""
    log = AuditLog(app)
    found = []
    for row in log.whole_stream(session_id(session.integration_id)):
        if not row.topic.endswith(f"{CustomerSession.ItemsReturned.__qualname__}"):
            continue
        event = app.mapper.to_domain_event(log._stored(row))  # noqa: SLF001 - the log's own decoding
        if isinstance(event, CustomerSession.ItemsReturned):
            found.append(model_return(session, event, row.position))
    return found


def model_return(
    session: CustomerSession, event: CustomerSession.ItemsReturned, position: int | None
) -> dict[str, Any]:
    """``Return``: one ``talon_session_partially_returned`` event (a dry run's has id 0)."""
    created: datetime = event.timestamp
    profile = session.profile_id
    return {
        "id": position or 0, "created": created, "applicationId": APPLICATION_ID, "accountId": ACCOUNT_ID,
        "returnedCartItems": [{"position": i["position"], "quantity": int(i["quantity"])} for i in event.items],
        "eventId": position or 0, "sessionId": int_id(session.id), "sessionIntegrationId": session.integration_id,
        "profileId": int_id(profile_id(profile)) if profile else None, "profileIntegrationId": profile or None,
    }  # fmt: skip
