"""Management API shapes built from read model rows: ``ApplicationEvent``, ``ApplicationSession``,
``ApplicationCustomer``, the effects CSV, and the query parameters they share.

The SDK's strict models are the judge: ids are integers (``int_id`` of the stream), amounts are numbers.
Rulestream adds the integration ids beside Talon.One's integer ids (``profileIntegrationId``, ...).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from api.limits import is_text
from api.wire.talon import ACCOUNT_ID, APPLICATION_ID
from domain.application import profile_id, session_id
from domain.base import int_id
from domain.effects import numeric
from domain.errors import InvalidInput, Problem


def parse_time(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 time from a query parameter (the SDK sends ``%z`` offsets: ``+0000``); naive is UTC."""
    if value is None or value == "":
        return None
    text = value.strip().replace(" ", "+")  # an unencoded '+' arrives as a space
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"'{value}' is not an RFC 3339 time",
            [Problem("Invalid query parameter", f"'{value}' is not a time", parameter=name)],
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_sort(value: str | None, name: str = "sort") -> bool:
    """Whether ``sort`` asks for descending order; only ``created`` can be sorted on."""
    if value in (None, "", "created"):
        return False
    if value == "-created":
        return True
    raise InvalidInput(
        f"cannot sort by '{value}': use 'created' or '-created'",
        [Problem("Invalid query parameter", f"cannot sort by '{value}'", parameter=name)],
    )


def parse_json_object(value: str | None, name: str) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):  # nested past the parser's depth: not an object we could use either
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidInput(
            f"{name} must be a JSON object",
            [Problem("Invalid query parameter", "not a JSON object", parameter=name)],
        )
    try:
        storable = _storable(parsed)
    except RecursionError:  # nested deeper than a query is worth
        storable = False
    if not storable:  # PostgreSQL's jsonb holds neither
        raise InvalidInput(
            f"{name} holds a NUL character or a lone UTF-16 surrogate",
            [Problem("Invalid query parameter", "a NUL character or a lone surrogate", parameter=name)],
        )
    return parsed


def _storable(value: Any) -> bool:
    """Whether every string of ``value`` (keys too) is text PostgreSQL can hold."""
    if isinstance(value, str):
        return is_text(value)
    if isinstance(value, dict):
        return all(is_text(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def _profile_int(key: str | None) -> int | None:
    return int_id(profile_id(key)) if key else None


def _session_int(key: str | None) -> int | None:
    return int_id(session_id(key)) if key else None


def effect(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded effect (amounts as decimal strings) as Talon.One's ``Effect`` (amounts as numbers)."""
    out: dict[str, Any] = numeric(dict(recorded))
    out.setdefault("props", {})
    return out


def application_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """``ApplicationEvent``; ``id`` is the event's log position."""
    event: dict[str, Any] = {
        "id": row["position"],
        "position": row["position"],
        "created": row["created"],
        "applicationId": APPLICATION_ID,
        "profileId": _profile_int(row["profile"]),
        "profileIntegrationId": row["profile"],
        "sessionId": _session_int(row["session"]),
        "sessionIntegrationId": row["session"],
        "storeIntegrationId": row["store"],
        "type": row["type"],
        "attributes": row["attributes"],
        "effects": [effect(e) for e in row["effects"]],
        "evaluated": row["evaluated_at"] is not None,
    }
    if row["failures"]:
        event["ruleFailureReasons"] = row["failures"]
    return {k: v for k, v in event.items() if v is not None}


DISCOUNT_EFFECTS = ("setDiscount", "setDiscountPerItem", "setDiscountPerAdditionalCost")


def application_session(row: Mapping[str, Any]) -> dict[str, Any]:
    """``ApplicationSession`` (with ``couponCodes``, totals and current effects beside Talon.One's fields)."""
    effects = [effect(e) for e in row["effects"]]
    discounts: dict[str, Decimal] = {}
    for e in effects:
        if e.get("effectType") in DISCOUNT_EFFECTS and isinstance(e["props"], Mapping):
            name = str(e["props"].get("name") or e.get("ruleName") or "discount")
            discounts[name] = discounts.get(name, Decimal(0)) + Decimal(str(e["props"].get("value", 0)))
    session: dict[str, Any] = {
        "id": row["id"],
        "created": row["created"],
        "updated": row["updated"],
        "integrationId": row["integration_id"],
        "storeIntegrationId": row["store"],
        "applicationId": APPLICATION_ID,
        "profileId": _profile_int(row["profile"]),
        "profileintegrationid": row["profile"],
        "coupon": row["coupon_codes"][0] if row["coupon_codes"] else "",
        "couponCodes": row["coupon_codes"],
        "referral": row["referral"] or "",
        "state": row["state"],
        "cartItems": [
            {
                **(item.get("extra") or {}),
                "name": item.get("name"),
                "sku": item["sku"],
                "quantity": item["quantity"],
                "returnedQuantity": item.get("returnedQuantity", 0),
                "remainingQuantity": item["quantity"] - item.get("returnedQuantity", 0),
                "price": Decimal(item["price"]),
                "category": item.get("category"),
                "position": position,
                "attributes": item.get("attributes") or {},
            }
            for position, item in enumerate(row["cart_items"])
        ],
        "additionalCosts": {
            name: {"price": Decimal(price)} for name, price in row["additional_costs"].items()
        },
        "discounts": discounts,
        "totalDiscounts": sum(discounts.values(), Decimal(0)),
        "total": row["total"],
        "cartItemTotal": row["cart_item_total"],
        "additionalCostTotal": row["additional_cost_total"],
        "attributes": row["attributes"],
        "identifiers": row["identifiers"],
        "loyaltyCards": row["loyalty_cards"],
        "firstSession": row["first_session"],
        "updateCount": row["update_count"],
        "effects": effects,
    }
    return {k: v for k, v in session.items() if v is not None}


def application_customer(row: Mapping[str, Any]) -> dict[str, Any]:
    """``ApplicationCustomer`` with the loyalty balance of the built-in program."""
    return {
        "id": row["id"],
        "created": row["created"],
        "integrationId": row["integration_id"],
        "attributes": row["attributes"],
        "accountId": ACCOUNT_ID,
        "closedSessions": row["closed_sessions"],
        "totalSales": row["total_sales"],
        "lastActivity": row["last_activity"],
        "sandbox": False,
        "loyalty": {
            "balance": row["balance"] or Decimal(0),
            "earned": row["earned"] or Decimal(0),
            "spent": row["spent"] or Decimal(0),
        },
    }


def ledger_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "position": row["position"],
        "entry": row["entry"],
        "created": row["created"],
        "profileId": row["profile"],
        "amount": row["amount"],
        "reason": row["reason"],
        "ruleId": row["rule_id"],
        "name": row["name"],
        "eventId": row["cause_position"],
        "sessionId": row["session"],
    }


CSV_COLUMNS = (
    "applicationid", "campaignid", "couponid", "created", "event_type", "eventid", "name",
    "profileintegrationid",
    "props", "ruleindex", "rulesetid", "sessionid", "profileid", "sessionintegrationid", "total_revenue",
    "store_integration_id",
)  # fmt: skip


def _time(value: datetime, date_format: str) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S") if date_format == "excel" else value.isoformat()


def effects_csv(rows: Iterable[Mapping[str, Any]], date_format: str = "ISO8601") -> Iterator[str]:
    """Talon.One's effects export: a header, then a line per effect (``eventid``: the event's position)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for count, row in enumerate(rows):
        writer.writerow((
            APPLICATION_ID, row["campaign_id"], "", _time(row["created"], date_format), row["event_type"],
            row["cause_position"], row["effect_type"], row["profile"] or "",
            json.dumps(row["props"], separators=(",", ":"), sort_keys=True),
            row["rule_index"], row["ruleset_id"],
            _session_int(row["session"]) or "", _profile_int(row["profile"]) or "", row["session"] or "", "",
            row["store"] or "",
        ))  # fmt: skip
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
