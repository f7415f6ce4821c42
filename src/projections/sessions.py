"""Customer sessions as they stand now: the state, the cart, the totals, and the effects of the last evaluation.

The fold mirrors ``domain.session.CustomerSession`` on plain records (the stored shape of cart items is the domain's
``CartItem.to_record``), and computes totals with the domain's ``CartItem`` so that they agree to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from domain.application import session_id as session_uuid
from domain.base import int_id
from domain.effects import Evaluation
from domain.session import CANCELLED, CLOSED, OPEN, PARTIALLY_RETURNED, CartItem, CustomerSession
from projections.follower import Recorded
from projections.readmodel import ReadModel, Table, insert_rows

SESSIONS = Table(
    "sessions",
    """integration_id text PRIMARY KEY, id bigint NOT NULL, profile text, state text NOT NULL,
       created timestamptz NOT NULL, updated timestamptz NOT NULL, store text, coupon_codes text[] NOT NULL,
       referral text, loyalty_cards jsonb NOT NULL, identifiers jsonb NOT NULL, cart_items jsonb NOT NULL,
       additional_costs jsonb NOT NULL, attributes jsonb NOT NULL, first_session boolean NOT NULL,
       update_count int NOT NULL, custom_events int NOT NULL, cart_item_total numeric NOT NULL,
       additional_cost_total numeric NOT NULL, total numeric NOT NULL, effects jsonb NOT NULL,
       version int NOT NULL""",
    {
        "id": "(id)",
        "created": "(created, integration_id)",
        "profile": "(profile, created, integration_id)",
        "state": "(state, created, integration_id)",
        "store": "(store, created) WHERE store IS NOT NULL",
        "referral": "(referral) WHERE referral IS NOT NULL",
        "coupons": "USING gin (coupon_codes)",
    },
)
COLUMNS = [c.split()[0] for c in SESSIONS.columns.replace("\n", " ").split(", ")]

STATE_OF = {
    CustomerSession.Closed: CLOSED,
    CustomerSession.Cancelled: CANCELLED,
    CustomerSession.Revoked: CANCELLED,
    CustomerSession.ItemsReturned: PARTIALLY_RETURNED,
    CustomerSession.Reopened: OPEN,
}


class Sessions(ReadModel):
    model = "sessions"
    tables = (SESSIONS,)

    def apply_batch(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        ids = list({r.event.integration_id for r in batch if isinstance(r.event, CustomerSession.Created)})
        sessions = self._load(cursor, batch)
        by_uuid = {session_uuid(key): key for key in sessions}
        by_uuid.update({session_uuid(key): key for key in ids})
        touched: set[str] = set()
        for recorded in batch:
            event: Any = recorded.event
            if isinstance(event, Evaluation.Evaluated):
                key = event.cause.get("sessionId")
                if key in sessions or (key and self._fetch(cursor, sessions, key)):
                    sessions[key]["effects"] = event.effects
                    touched.add(key)
                continue
            if not isinstance(event, CustomerSession.Event):
                continue
            if isinstance(event, CustomerSession.Created):
                sessions[event.integration_id] = new_session(event)
                touched.add(event.integration_id)
                continue
            key = by_uuid[event.originator_id]
            fold(sessions[key], event)
            touched.add(key)
        if touched:
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
            insert_rows(
                cursor,
                self.t("sessions"),
                COLUMNS,
                [row_of(sessions[key]) for key in touched],
                f"ON CONFLICT (integration_id) DO UPDATE SET {updates}",
            )

    def _load(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> dict[str, dict[str, Any]]:
        uuids = list(
            {
                r.event.originator_id
                for r in batch
                if isinstance(r.event, CustomerSession.Event)
                and not isinstance(r.event, CustomerSession.Created)
            }
        )
        if not uuids:
            return {}
        # Integration ids are the key; the stream id derives from them, so look rows up by the integer id.
        cursor.execute(
            f"SELECT * FROM {self.t('sessions')} WHERE id = ANY(%s)", ([int_id(u) for u in uuids],)
        )
        return {row["integration_id"]: dict(row) for row in cursor.fetchall()}

    def _fetch(self, cursor: psycopg.Cursor[DictRow], sessions: dict[str, dict[str, Any]], key: str) -> bool:
        cursor.execute(f"SELECT * FROM {self.t('sessions')} WHERE integration_id = %s", (key,))
        row = cursor.fetchone()
        if row is not None:
            sessions[key] = dict(row)
        return row is not None


def new_session(event: Any) -> dict[str, Any]:
    session: dict[str, Any] = {
        "integration_id": event.integration_id, "id": int_id(event.originator_id), "profile": None,
        "state": OPEN, "created": event.timestamp, "updated": event.timestamp, "store": None, "coupon_codes": [],
        "referral": None, "loyalty_cards": [], "identifiers": [], "cart_items": [], "additional_costs": {},
        "attributes": {}, "first_session": event.first_session, "update_count": 1, "custom_events": 0,
        "effects": [], "version": event.originator_version,
    }  # fmt: skip
    apply_changes(session, event.changes)
    return session


def fold(session: dict[str, Any], event: Any) -> None:
    """``session`` after ``event`` (a ``CustomerSession`` event other than ``Created``)."""
    session["updated"] = event.timestamp
    session["version"] = event.originator_version
    if isinstance(event, CustomerSession.CustomEventTracked):
        session["custom_events"] += 1
        return
    if isinstance(event, CustomerSession.AttributesAdded):  # no update of the session
        apply_changes(session, event.changes)
        return
    session["update_count"] += 1
    apply_changes(session, getattr(event, "changes", None) or {})
    if isinstance(event, CustomerSession.ItemsReturned):
        items = [dict(i) for i in session["cart_items"]]
        for returned in event.items:
            line = items[returned["position"]]
            line["returnedQuantity"] = int(line.get("returnedQuantity", 0)) + int(returned["quantity"])
        session["cart_items"] = items
    session["state"] = STATE_OF.get(type(event), session["state"])


def apply_changes(session: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if key == "cartItems":
            session["cart_items"] = list(value)
        elif key == "additionalCosts":
            session["additional_costs"] = dict(value)
        elif key == "attributes":
            session["attributes"] = {**session["attributes"], **value}
        elif key == "profileId":
            session["profile"] = value or None
        elif key == "storeIntegrationId":
            session["store"] = value
        elif key == "couponCodes":
            session["coupon_codes"] = list(value)
        elif key == "referralCode":
            session["referral"] = value or None
        elif key == "loyaltyCards":
            session["loyalty_cards"] = list(value)
        elif key == "identifiers":
            session["identifiers"] = list(value)


def row_of(session: dict[str, Any]) -> tuple[Any, ...]:
    cart_item_total = sum(
        (CartItem.from_record(i).remaining_value for i in session["cart_items"]), Decimal(0)
    )
    additional = sum((Decimal(p) for p in session["additional_costs"].values()), Decimal(0))
    session = {
        **session,
        "cart_item_total": cart_item_total,
        "additional_cost_total": additional,
        "total": cart_item_total + additional,
    }
    jsonb = {"loyalty_cards", "identifiers", "cart_items", "additional_costs", "attributes", "effects"}
    return tuple(Jsonb(session[c]) if c in jsonb else session[c] for c in COLUMNS)
