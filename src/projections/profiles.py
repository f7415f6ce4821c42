"""Customer profiles as they stand now: attributes, ``closedSessions``, ``totalSales``, ``lastActivity``.

The fold mirrors ``domain.profile.CustomerProfile``: a session counts in the sales while closed, with its total;
returns reduce it; revoking or reopening takes it out. ``counted`` holds, as the profile's ``legacy_sales`` does,
the amounts of sessions counted by version 1 events only (empty for everything recorded since).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from domain.application import profile_id
from domain.base import int_id
from domain.profile import CustomerProfile
from projections.follower import Recorded
from projections.readmodel import ReadModel, Table, insert_rows

PROFILES = Table(
    "profiles",
    """integration_id text PRIMARY KEY, id bigint NOT NULL, created timestamptz NOT NULL,
       attributes jsonb NOT NULL, sessions int NOT NULL, closed_sessions int NOT NULL,
       total_sales numeric NOT NULL, counted jsonb NOT NULL, last_activity timestamptz NOT NULL,
       version int NOT NULL""",
    {"id": "(id)", "last_activity": "(last_activity)"},
)
SALES = (CustomerProfile.SaleCounted, CustomerProfile.SaleReduced, CustomerProfile.SaleUncounted)

COLUMNS = ["integration_id", "id", "created", "attributes", "sessions", "closed_sessions", "total_sales",
           "counted", "last_activity", "version"]  # fmt: skip


class Profiles(ReadModel):
    model = "profiles"
    tables = (PROFILES,)

    def apply_batch(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        events = [r.event for r in batch if isinstance(r.event, CustomerProfile.Event)]
        if not events:
            return
        cursor.execute(
            f"SELECT * FROM {self.t('profiles')} WHERE id = ANY(%s)",
            (list({int_id(e.originator_id) for e in events}),),
        )
        # Integration ids are the key; stream ids derive from them (uuid5), integer ids from those.
        profiles = {profile_id(row["integration_id"]): dict(row) for row in cursor.fetchall()}
        for event in events:
            key = event.originator_id
            if isinstance(event, CustomerProfile.Registered):
                profiles[key] = {
                    "integration_id": event.integration_id, "id": int_id(key), "created": event.timestamp,
                    "attributes": dict(event.attributes), "sessions": 0, "counted": {},
                    "closed_sessions": 0, "total_sales": Decimal(0),
                }  # fmt: skip
            else:
                fold(profiles[key], event)
            profile = profiles[key]
            profile["last_activity"] = event.timestamp
            profile["version"] = event.originator_version
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
        insert_rows(
            cursor,
            self.t("profiles"),
            COLUMNS,
            [
                tuple(Jsonb(p[c]) if c in ("attributes", "counted") else p[c] for c in COLUMNS)
                for p in profiles.values()
            ],
            f"ON CONFLICT (integration_id) DO UPDATE SET {updates}",
        )


def fold(profile: dict[str, Any], event: Any) -> None:
    """Apply one event to a profile's row (O(1): a loyal customer has counted thousands of sessions)."""
    if isinstance(event, CustomerProfile.AttributesStored):
        profile["attributes"] = {**profile["attributes"], **event.attributes}
    elif isinstance(event, CustomerProfile.DataErased):
        profile["attributes"] = {}
    elif isinstance(event, CustomerProfile.SessionStarted):
        profile["sessions"] += 1
    elif isinstance(event, SALES):
        # The profile's own fold, on the row's figures: one place decides what a sale event does to them.
        figures = SimpleNamespace(closed_sessions=profile["closed_sessions"], total_sales=profile["total_sales"],
                                  legacy_sales=profile["counted"])  # fmt: skip
        event.apply(figures)
        profile["closed_sessions"], profile["total_sales"] = figures.closed_sessions, figures.total_sales
