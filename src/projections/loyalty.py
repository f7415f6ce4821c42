"""The loyalty ledger and balances, folded from the ledger entries of the rule policy's evaluations.

Nothing else stores a balance: it is the sum of a profile's entries (``domain.effects``), kept here per profile
so that reading it is one index lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import DictRow

from domain.effects import Evaluation
from projections.follower import Recorded
from projections.readmodel import ReadModel, Table, insert_rows

LEDGER = Table(
    "loyalty_ledger",
    """position bigint NOT NULL, entry int NOT NULL, profile text NOT NULL, amount numeric NOT NULL,
       reason text NOT NULL, rule_id bigint, name text NOT NULL, created timestamptz NOT NULL,
       cause_position bigint, session text, PRIMARY KEY (position, entry)""",
    {"profile": "(profile, position, entry)"},
)
BALANCES = Table(
    "loyalty_balances",
    """profile text PRIMARY KEY, balance numeric NOT NULL, earned numeric NOT NULL, spent numeric NOT NULL,
       entries int NOT NULL, updated timestamptz NOT NULL""",
)


SPENDING = frozenset({"deductLoyaltyPoints", "rollbackDeductedLoyaltyPoints"})
"""Ledger reasons of spending: a deduction (negative) and the return of one (positive)."""


class Loyalty(ReadModel):
    model = "loyalty"
    tables = (LEDGER, BALANCES)

    def apply_batch(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        entries: list[tuple[Any, ...]] = []
        totals: dict[str, list[Any]] = {}
        for recorded in batch:
            event: Any = recorded.event
            if not isinstance(event, Evaluation.Evaluated):
                continue
            for index, entry in enumerate(event.ledger):
                amount = Decimal(entry["amount"])
                entries.append(
                    (
                        recorded.position,
                        index,
                        entry["profileId"],
                        amount,
                        entry.get("reason", ""),
                        entry.get("ruleId"),
                        entry.get("name") or "",
                        event.timestamp,
                        event.cause.get("position"),
                        event.cause.get("sessionId"),
                    )
                )
                total = totals.setdefault(entry["profileId"], [Decimal(0), Decimal(0), Decimal(0), 0, None])
                total[0] += amount
                # Earned: points added, less those rolled back; spent: points deducted (redeemed), less those
                # given back. A rollback of earned points is not spending.
                if entry.get("reason") in SPENDING:
                    total[2] -= amount
                else:
                    total[1] += amount
                total[3] += 1
                total[4] = event.timestamp
        if not entries:
            return
        with cursor.copy(
            f"COPY {self.t('loyalty_ledger')} (position, entry, profile, amount, reason, rule_id, "
            "name, created, cause_position, session) FROM STDIN"
        ) as copy:
            for entry_row in entries:
                copy.write_row(entry_row)
        table = self.t("loyalty_balances")
        insert_rows(
            cursor,
            f"{table} AS b",
            ["profile", "balance", "earned", "spent", "entries", "updated"],
            [(profile, *total) for profile, total in totals.items()],
            "ON CONFLICT (profile) DO UPDATE SET "
            "balance = b.balance + EXCLUDED.balance, earned = b.earned + EXCLUDED.earned, "
            "spent = b.spent + EXCLUDED.spent, entries = b.entries + EXCLUDED.entries, updated = EXCLUDED.updated",
        )
