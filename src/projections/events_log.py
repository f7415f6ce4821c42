"""The events log: every built-in and custom event, as Talon.One's "Displaying events" shows it.

One row per visible event (``talon_type`` set, or a custom event), keyed by its log position: type, time,
profile, session, store, attributes, and the effects the rule policy recorded for it. Effects arrive later in
the log (an ``Evaluation.Evaluated`` names its cause's position), and update the row then.

Attributes of built-in session and profile events are those of the session or profile as they stand after the
event (what the Integration API's ``event`` shows); the model keeps the little state that takes, per stream,
in ``events_log_streams``. Every filter of the endpoint has an index (see ``projections.queries``).

Delayed rule evaluations show as two rows, ``rulestream_delay_scheduled`` and ``rulestream_delay_came_due``,
under the profile and session of the event that triggered them (the delay's ``cause``); the came-due row
carries the effects of the evaluation it caused. Their attributes say which rule, from which event, due when.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from domain.anonymous import AnonymousEvent
from domain.delays import Delay
from domain.effects import Evaluation
from domain.profile import ERASED, CustomerProfile
from domain.session import CustomerSession
from projections.follower import Recorded
from projections.readmodel import ReadModel, Table, insert_rows

EVENTS = Table(
    "events_log",
    """position bigint PRIMARY KEY, created timestamptz NOT NULL, type text NOT NULL,
       profile text, session text, store text, attributes jsonb NOT NULL,
       effects jsonb NOT NULL DEFAULT '[]', effect_types text[] NOT NULL DEFAULT '{}',
       failures jsonb NOT NULL DEFAULT '[]', evaluated_at bigint""",
    {
        "created": "(created, position)",
        "type": "(type, created, position)",
        "session": "(session, created, position) WHERE session IS NOT NULL",
        "profile": "(profile, created, position) WHERE profile IS NOT NULL",
        "attributes": "USING gin (attributes jsonb_path_ops)",
    },
)
EFFECT_TYPES = Table(
    "events_log_effect_types",
    """effect_type text NOT NULL, created timestamptz NOT NULL, position bigint NOT NULL,
       PRIMARY KEY (effect_type, created, position)""",
    {"position": "(effect_type, position)"},
)
"""Which events had an effect of a type, in the events log's orders: a rare ``effectType`` filter reads only its
own rows, already sorted (a GIN index on ``effect_types`` finds them but cannot give them in order, so a page
cost a sort of every match: 4.6× slower at 1M events than at 10k)."""
STREAMS = Table(
    "events_log_streams",
    "stream uuid PRIMARY KEY, profile text, session text, store text, attributes jsonb NOT NULL",
)


class EventsLog(ReadModel):
    model = "events_log"
    tables = (EVENTS, EFFECT_TYPES, STREAMS)

    def apply_batch(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        streams = self._load_streams(cursor, batch)
        touched: set[Any] = set()
        rows: list[tuple[Any, ...]] = []
        evaluations: list[tuple[Any, ...]] = []
        for recorded in batch:
            event: Any = recorded.event
            if isinstance(event, Evaluation.Evaluated):
                types = sorted({e.get("effectType", "") for e in event.effects})
                evaluations.append(
                    (
                        Jsonb(event.effects),
                        types,
                        Jsonb(event.failures),
                        recorded.position,
                        event.cause["position"],
                    )
                )
                continue
            if isinstance(event, CustomerProfile.DataErased):
                self._write(cursor, streams, touched, rows, evaluations)
                rows, evaluations, touched = [], [], set()
                self._erase(cursor, streams, event.originator_id)
                continue
            state = streams.get(event.originator_id)
            if isinstance(event, Delay.DelayScheduled):
                state = self._delay_state(event, streams)
                folded: Any = (state, self._delay_row(event, state, recorded.position))
            elif isinstance(event, Delay.DelayCameDue):
                folded = (None, self._delay_row(event, state, recorded.position) if state else None)
            else:
                folded = self._fold(event, state, recorded.position)
            if folded is None:
                continue
            state, visible = folded
            if state is not None:
                streams[event.originator_id] = state
                touched.add(event.originator_id)
            if visible is not None:
                rows.append(visible)
        self._write(cursor, streams, touched, rows, evaluations)

    def _write(
        self,
        cursor: psycopg.Cursor[DictRow],
        streams: dict[Any, dict[str, Any]],
        touched: set[Any],
        rows: list[tuple[Any, ...]],
        evaluations: list[tuple[Any, ...]],
    ) -> None:
        # An evaluation mostly arrives in the same batch as the event it evaluated (in a rebuild nearly always): its
        # effects go into that event's row as it is written, instead of updating the row after.
        pending = {row[0]: index for index, row in enumerate(rows)}
        full = [(*row, Jsonb([]), [], Jsonb([]), None) for row in rows]
        later = []
        for effects, types, failures, evaluated_at, cause in evaluations:
            index = pending.get(cause)
            if index is None:
                later.append((effects, types, failures, evaluated_at, cause))
            else:
                full[index] = (*full[index][:7], effects, types, failures, evaluated_at)
        if full:
            with cursor.copy(
                f"COPY {self.t('events_log')} (position, created, type, profile, session, store, attributes, "
                "effects, effect_types, failures, evaluated_at) FROM STDIN"
            ) as copy:
                for row in full:
                    copy.write_row(row)
            with cursor.copy(
                f"COPY {self.t('events_log_effect_types')} (effect_type, created, position) FROM STDIN"
            ) as copy:
                for row in full:
                    for effect_type in row[8]:
                        copy.write_row((effect_type, row[1], row[0]))
        if later:
            # An event is evaluated once (exactly once by the policy); were it ever again, it would keep its latest
            # effects, and the side table its old types too.
            values = ", ".join(["(%s::jsonb, %s::text[], %s::jsonb, %s::bigint, %s::bigint)"] * len(later))
            cursor.execute(
                f"WITH v (effects, types, failures, evaluated_at, position) AS (VALUES {values}), "
                f"updated AS (UPDATE {self.t('events_log')} e SET effects = v.effects, effect_types = v.types, "
                "failures = v.failures, evaluated_at = v.evaluated_at FROM v WHERE e.position = v.position "
                "RETURNING e.position, e.created, e.effect_types) "
                f"INSERT INTO {self.t('events_log_effect_types')} (effect_type, created, position) "
                "SELECT t, u.created, u.position FROM updated u, unnest(u.effect_types) t ON CONFLICT DO NOTHING",
                [value for row in later for value in row],
            )
        if touched:
            insert_rows(
                cursor,
                self.t("events_log_streams"),
                ["stream", "profile", "session", "store", "attributes"],
                [
                    (
                        s,
                        streams[s]["profile"],
                        streams[s]["session"],
                        streams[s]["store"],
                        Jsonb(streams[s]["attributes"]),
                    )
                    for s in touched
                ],
                "ON CONFLICT (stream) DO UPDATE SET profile = EXCLUDED.profile, session = EXCLUDED.session, "
                "store = EXCLUDED.store, attributes = EXCLUDED.attributes",
            )

    def _erase(
        self, cursor: psycopg.Cursor[DictRow], streams: dict[Any, dict[str, Any]], stream: Any
    ) -> None:
        """The customer asked to be forgotten: their events keep their rows, not their attributes.

        A rebuild comes out the same: the log's sealed fields decode as erased, and this runs again.
        """
        profile = (streams.get(stream) or {}).get("profile")
        if not profile:
            return
        cursor.execute(
            f"UPDATE {self.t('events_log')} SET attributes = %s WHERE profile = %s", (Jsonb(ERASED), profile)
        )
        cursor.execute(
            f"UPDATE {self.t('events_log_streams')} SET attributes = '{{}}' WHERE profile = %s", (profile,)
        )
        for state in streams.values():
            if state["profile"] == profile:
                state["attributes"] = {}

    def _load_streams(
        self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]
    ) -> dict[Any, dict[str, Any]]:
        followed = CustomerSession.Event | CustomerProfile.Event | Delay.DelayCameDue
        causes = {
            UUID(r.event.cause["originatorId"]) for r in batch if isinstance(r.event, Delay.DelayScheduled)
        }
        ids = list({r.event.originator_id for r in batch if isinstance(r.event, followed)} | causes)
        if not ids:
            return {}
        cursor.execute(
            f"SELECT stream, profile, session, store, attributes FROM {self.t('events_log_streams')} "
            "WHERE stream = ANY(%s)",
            (ids,),
        )
        return {row["stream"]: dict(row) for row in cursor.fetchall()}

    @staticmethod
    def _delay_state(event: Any, streams: dict[Any, dict[str, Any]]) -> dict[str, Any]:
        """A delay's row state: profile and session from its cause, the store the cause's stream had then."""
        cause = event.cause
        trigger = streams.get(UUID(cause["originatorId"])) or {}
        return {
            "profile": cause.get("profileId"),
            "session": cause.get("sessionId"),
            "store": trigger.get("store"),
            "attributes": {
                "ruleId": event.rule_id,
                "ruleVersion": event.rule_version,
                "dueAt": event.due_at.isoformat(),
                "cancelIf": list(event.cancel_if),
                "causePosition": cause.get("position"),
                "causeType": cause.get("type"),
            },
        }

    @staticmethod
    def _delay_row(event: Any, state: dict[str, Any], position: int) -> tuple[Any, ...]:
        attributes = dict(state["attributes"])
        if isinstance(event, Delay.DelayCameDue):
            attributes["firedAt"] = event.fired_at.isoformat()
        return (
            position,
            event.timestamp,
            str(type(event).talon_type),
            state["profile"],
            state["session"],
            state["store"],
            Jsonb(attributes),
        )

    @staticmethod
    def _fold(
        event: Any, state: dict[str, Any] | None, position: int
    ) -> tuple[dict[str, Any] | None, tuple[Any, ...] | None] | None:
        """The stream's state after ``event`` (``None``: nothing to keep), and its log row (``None``: not shown).

        Answers ``None`` altogether for events of streams this model does not follow.
        """
        talon_type: str | None = getattr(type(event), "talon_type", None)
        if isinstance(event, AnonymousEvent.Tracked):
            row: tuple[Any, ...] = (
                position,
                event.timestamp,
                event.event_type,
                None,
                None,
                None,
                Jsonb(event.attributes),
            )
            return None, row
        if isinstance(event, CustomerSession.Event):
            state = dict(state or {"profile": None, "session": None, "store": None, "attributes": {}})
            if isinstance(event, CustomerSession.Created):
                state["session"] = event.integration_id
            changes = getattr(event, "changes", None) or {}
            if "profileId" in changes:
                state["profile"] = changes["profileId"] or None
            if "storeIntegrationId" in changes:
                state["store"] = changes["storeIntegrationId"]
            if changes.get("attributes"):
                state["attributes"] = {**state["attributes"], **changes["attributes"]}
            if isinstance(event, CustomerSession.CustomEventTracked):
                row = (
                    position,
                    event.timestamp,
                    event.event_type,
                    event.profile_id or state["profile"],
                    state["session"],
                    state["store"],
                    Jsonb(event.attributes),
                )
                return state, row
            if talon_type is None:
                return state, None
            return state, (
                position,
                event.timestamp,
                talon_type,
                state["profile"],
                state["session"],
                state["store"],
                Jsonb(state["attributes"]),
            )
        if isinstance(event, CustomerProfile.Event):
            state = dict(state or {"profile": None, "session": None, "store": None, "attributes": {}})
            if isinstance(event, CustomerProfile.Registered):
                state["profile"] = event.integration_id
                state["attributes"] = dict(event.attributes)
            elif isinstance(event, CustomerProfile.AttributesStored):
                state["attributes"] = {**state["attributes"], **event.attributes}
            if isinstance(event, CustomerProfile.CustomEventTracked):
                return state, (
                    position,
                    event.timestamp,
                    event.event_type,
                    state["profile"],
                    None,
                    None,
                    Jsonb(event.attributes),
                )
            if talon_type is None:
                return state, None
            return state, (
                position,
                event.timestamp,
                talon_type,
                state["profile"],
                None,
                None,
                Jsonb(state["attributes"]),
            )
        return None
