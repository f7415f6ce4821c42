"""A realistic workload for the read models: sessions through every state, profiles, custom and anonymous events,
and evaluations with effects and loyalty entries recorded as the rule policy records them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from domain.application import Outcome, Rulestream
from domain.delays import Delay
from domain.effects import Cause, Evaluation, LedgerEntry
from domain.errors import DomainError
from domain.session import ReturnedItem
from tests.builders import cart_item, session_changes


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def cause_of(outcome: Outcome) -> Cause:
    """The command's last event, as an evaluation names its cause."""
    event = outcome.events[-1]
    return Cause(
        outcome.positions[-1],
        str(event.originator_id),
        event.originator_version,
        getattr(type(event), "talon_type", None) or getattr(event, "event_type", "custom"),
        outcome.profile.integration_id if outcome.profile else None,
        outcome.session.integration_id if outcome.session else None,
    )


def evaluate(app: Rulestream, outcome: Outcome, points: str = "5", discount: str = "2.50") -> None:
    """Record an evaluation, with one discount, one points effect and a ledger entry, of the command's last event."""
    cause = cause_of(outcome)
    profile = cause.profile_id
    effects: list[dict[str, Any]] = [
        {
            "campaignId": 7,
            "rulesetId": 2,
            "ruleIndex": 0,
            "ruleName": "ten percent",
            "effectType": "setDiscount",
            "props": {"name": "ten percent", "value": discount},
        },
    ]
    ledger = []
    if profile:
        effects.append(
            {
                "campaignId": 8,
                "rulesetId": 1,
                "ruleIndex": 0,
                "ruleName": "points",
                "effectType": "addLoyaltyPoints",
                "props": {
                    "name": "points",
                    "value": points,
                    "programId": 1,
                    "recipientIntegrationId": profile,
                },
            }
        )
        ledger.append(LedgerEntry(profile, Decimal(points), "addLoyaltyPoints", 8, "points"))
    app.save(Evaluation.record(cause, effects, [], ledger))


def delay(app: Rulestream, outcome: Outcome) -> None:
    """A delayed rule triggered by the command's last event, scheduled, come due and evaluated with a
    notification, recorded as the policy and the timer record them."""
    cause = cause_of(outcome)
    event = outcome.events[-1]
    due_at = event.timestamp + timedelta(hours=2)
    scheduled = Delay.schedule(cause.to_record(), 9, 1, due_at, ["talon_session_closed"])
    app.save(scheduled)
    scheduled.come_due(due_at + timedelta(seconds=1))
    position = app.save(scheduled)[-1].notification.id
    fired = str(Delay.DelayCameDue.talon_type)
    due = Cause(position, str(scheduled.id), 2, fired, cause.profile_id, cause.session_id)
    effect = {
        "campaignId": 9, "rulesetId": 1, "ruleIndex": 0, "ruleName": "reminder",
        "effectType": "showNotification",
        "props": {"notificationType": "Offer", "title": "Your cart", "body": "Complete your order"},
    }  # fmt: skip
    app.save(Evaluation.record(due, [effect], [], []))


DECLARATIONS = (
    ("CustomerProfile", "name", "string", None), ("CustomerProfile", "tier", "string", None),
    ("CustomerSession", "channel", "string", None),
    ("Event", "stars", "number", "review_posted"), ("Event", "product", "string", "review_posted"),
    ("Event", "device", "string", "cart_viewed"), ("Event", "campaign", "string", "newsletter_opened"),
)  # fmt: skip


def declare(app: Rulestream) -> None:
    """Declare the workload's attributes and event types in the catalog (once per database)."""
    for entity, name, kind, event_type in DECLARATIONS:
        try:
            app.create_attribute(entity, name, kind, **({"event_type": event_type} if event_type else {}))
        except DomainError:
            pass  # declared by an earlier test on this database


def run(app: Rulestream, customers: int = 6) -> dict[str, list[str]]:
    """Write the workload; answer the ids it used."""
    declare(app)
    ids: dict[str, list[str]] = {"profiles": [], "sessions": []}
    for n in range(customers):
        pid, sid = new_id("p"), new_id("s")
        ids["profiles"].append(pid)
        ids["sessions"].append(sid)
        app.update_profile(
            pid, {"name": f"Customer {n}", "tier": "gold" if n % 2 else "silver"}, run_rule_engine=True
        )
        out = app.update_session(
            sid,
            session_changes(
                cart_item("a", "19.99", 2), profile=pid, couponCodes=[f"C{n}"], attributes={"channel": "web"}
            ),
            None,
        )
        evaluate(app, out)
        out = app.update_session(
            sid,
            {
                "cartItems": [cart_item("a", "19.99", 2), cart_item("b", "5", 1)],
                "additionalCosts": {"shipping": "4.90"},
            },
            "closed",
        )
        evaluate(app, out, points="12")
        if n % 3 == 0:
            app.return_items(sid, [ReturnedItem(sku="a", quantity=1)])
        if n % 3 == 1:
            app.reopen_session(sid)
            app.update_session(sid, {"referralCode": "FRIEND"}, None)
            app.update_session(sid, {}, "cancelled")
        app.track_event("review_posted", {"stars": n % 5 + 1, "product": "a"}, pid, None)
        out = app.track_event("cart_viewed", {"device": "phone"}, None, sid)
        evaluate(app, out, points="-1")
        if n == 0:
            delay(app, out)
        app.update_profile(pid, {"tier": "platinum"}, run_rule_engine=n % 2 == 0)
    app.track_event("newsletter_opened", {"campaign": "spring"}, None, None)
    return ids
