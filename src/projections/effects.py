"""Effects per event: one row per effect the rule policy recorded, with the event that caused it.

Feeds ``GET /v1/applications/1/export_effects`` (CSV, Talon.One's columns) and the effects of one event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from domain.effects import Evaluation
from projections.follower import Recorded
from projections.readmodel import ReadModel, Table

EFFECTS = Table(
    "effects",
    """position bigint NOT NULL, effect int NOT NULL, cause_position bigint NOT NULL,
       event_type text NOT NULL,
       created timestamptz NOT NULL, campaign_id bigint, ruleset_id bigint, rule_index int, rule_name text,
       effect_type text NOT NULL, props jsonb NOT NULL, profile text, session text,
       PRIMARY KEY (position, effect)""",
    {
        "cause": "(cause_position)",
        "created": "(created, position)",
        "campaign": "(campaign_id, created, position)",
    },
)


class Effects(ReadModel):
    model = "effects"
    tables = (EFFECTS,)

    def apply_batch(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        rows: list[tuple[Any, ...]] = []
        for recorded in batch:
            event: Any = recorded.event
            if not isinstance(event, Evaluation.Evaluated):
                continue
            cause = event.cause
            for index, effect in enumerate(event.effects):
                rows.append((
                    recorded.position, index, cause["position"], cause.get("type") or "", event.timestamp,
                    effect.get("campaignId"), effect.get("rulesetId"), effect.get("ruleIndex"),
                    effect.get("ruleName"), effect.get("effectType") or "", Jsonb(effect.get("props") or {}),
                    cause.get("profileId"), cause.get("sessionId"),
                ))  # fmt: skip
        if rows:
            with cursor.copy(
                f"COPY {self.t('effects')} (position, effect, cause_position, event_type, created, "
                "campaign_id, ruleset_id, rule_index, rule_name, effect_type, props, profile, session) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
