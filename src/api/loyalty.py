"""Loyalty balances and a session's current effects, read from the rule policy's state.

A balance is the running fold of the ledger entries the policy recorded (``domain.effects.Evaluation.ledger``);
pending points are those of open sessions, credited when the session closes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from domain.application import Rulestream
from domain.effects import LOYALTY_PROGRAM_ID
from domain.settlement import SessionLedger
from projections.policy_state import PolicyState

PROGRAM = {"id": LOYALTY_PROGRAM_ID, "title": "Loyalty", "name": "loyalty"}


class LoyaltyReader:
    def __init__(self, app: Rulestream) -> None:
        self.app = app

    def _read(self, fn: Any) -> Any:
        datastore: Any = self.app.recorder.datastore  # type: ignore[attr-defined]
        with datastore.get_connection() as conn, conn.cursor() as cursor:
            try:
                return fn(PolicyState(cursor))
            except psycopg.errors.UndefinedTable:
                return None

    def balance(self, profile_id: str) -> tuple[Decimal, Decimal]:
        found = self._read(lambda state: state.balance(profile_id))
        return found if found is not None else (Decimal(0), Decimal(0))

    def of(
        self, profile_id: str, *, booked: Decimal = Decimal(0), pending_change: Decimal = Decimal(0)
    ) -> dict[str, Any]:
        """Talon.One's ``Loyalty``: the profile's ledger in the one built-in program (for a dry run, as if its
        ``booked`` points were credited and its pending points changed by ``pending_change``)."""
        active, pending = self.balance(profile_id)
        active, pending = active + booked, pending + pending_change
        # Talon.One's LedgerInfo: a negative balance is owed, the current one is then 0; the tentative balance is
        # what the current one becomes when the open sessions close (their pending points credited).
        ledger = {
            "currentBalance": max(active, Decimal(0)),
            "pendingBalance": pending,
            "negativeBalance": -active if active < 0 else Decimal(0),
            "expiredBalance": 0,
            "spentBalance": 0,
            "tentativeCurrentBalance": max(active + pending, Decimal(0)),
            "tentativePendingBalance": pending,
        }
        return {"programs": {str(LOYALTY_PROGRAM_ID): {**PROGRAM, "ledger": ledger}}}

    def balances(self, profile_id: str, spent: Decimal = Decimal(0)) -> dict[str, Any]:
        """Talon.One's ``LoyaltyBalancesWithTiers`` (``spent``: what the profile redeemed, as the loyalty read
        model counts it)."""
        active, pending = self.balance(profile_id)
        balance = {
            "activePoints": max(active, Decimal(0)),
            "pendingPoints": pending,
            "spentPoints": spent,
            "expiredPoints": 0,
            "negativePoints": -active if active < 0 else Decimal(0),
        }
        return {"balance": balance, "subledgerBalances": {}}

    def session_effects(self, session_id: str, state: str) -> list[dict[str, Any]]:
        """The session's effects still in force: current discounts and points, minus what was rolled back."""
        ledger: SessionLedger | None = self._read(lambda s: s.session_ledger(session_id))
        if ledger is None:
            return []
        if state == "open":
            return [*ledger.discounts.values(), *ledger.pending.values()]
        if state == "cancelled":
            return []
        return [e for e in ledger.credited.values() if Decimal(e["props"].get("value", 0)) > 0]
