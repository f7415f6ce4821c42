"""The stored log, read directly by its indexes: a stream by primary key, the whole log by position.

Each stored event is shown with what an auditor asks about it: where it is in the log (``position``) and in
its stream (``version``), what it is (``type``: the Talon.One type, the custom event type, or the class name
of a bookkeeping event), when it was recorded, its data, the request and API key behind it, its hash, and the
effects the rule policy derived from it (found by primary key: an evaluation's id is derived from the event it
answers).

A profile's history also shows the delayed rule evaluations its events (or its sessions' events) scheduled:
each delay's ``rulestream_delay_scheduled`` and ``rulestream_delay_came_due``, in log order among the
profile's own events, with ``causationId`` the position of the event that caused it (the trigger, or the
scheduling) and, for a came-due delay, the effects of the evaluation it caused.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from domain.application import Rulestream, profile_id
from domain.delays import Delay
from domain.effects import Evaluation, evaluation_id, numeric
from domain.errors import NotFound
from projections.audit.schema import names

MAX_LIMIT = 1000
EVALUATION = Evaluation.Evaluated.__qualname__
HIDDEN_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "meta", "originator_topic"})


@dataclass(frozen=True)
class Row:
    """A stored event as the table holds it."""

    position: int
    stream_id: UUID
    version: int
    topic: str
    state: bytes
    hash: bytes | None

    @classmethod
    def of(cls, record: dict[str, Any]) -> Row:
        digest = record.get("hash")
        return cls(
            record["notification_id"], record["originator_id"], record["originator_version"], record["topic"],
            bytes(record["state"]), bytes(digest) if digest is not None else None,
        )  # fmt: skip


@dataclass
class Page:
    entries: list[dict[str, Any]]
    has_more: bool
    next_after: int | None

    def to_json(self) -> dict[str, Any]:
        return {"hasMore": self.has_more, "next": self.next_after, "data": self.entries}


@dataclass
class AuditLog:
    """Reads of the log for one application."""

    app: Rulestream
    _sql: dict[str, sql.Composable] = field(init=False)

    def __post_init__(self) -> None:
        self._sql = names(self.app)

    # -- reading rows -----------------------------------------------------------------------------------

    def query(self, template: str, params: Sequence[Any]) -> list[Row]:
        statement = sql.SQL(template).format(**self._sql)
        with self._datastore().get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            return [Row.of(r) for r in cursor.fetchall()]

    def stream_rows(self, stream_id: UUID, after: int = 0, limit: int = MAX_LIMIT) -> list[Row]:
        return self.query(
            "SELECT * FROM {events} WHERE originator_id = %s AND originator_version > %s "
            "ORDER BY originator_version LIMIT %s",
            (stream_id, after, limit),
        )

    def feed_rows(self, after: int = 0, limit: int = MAX_LIMIT) -> list[Row]:
        return self.query(
            "SELECT * FROM {events} WHERE notification_id > %s ORDER BY notification_id LIMIT %s",
            (after, limit),
        )

    def head_version(self, stream_id: UUID) -> int:
        """The stream's last version (0 when it has none)."""
        last = self.app.recorder.select_events(stream_id, desc=True, limit=1)
        return last[0].originator_version if last else 0

    def whole_stream(self, stream_id: UUID) -> Iterator[Row]:
        """Every row of a stream, in version order, a batch at a time."""
        after = 0
        while batch := self.stream_rows(stream_id, after):
            yield from batch
            after = batch[-1].version

    def whole_log(self) -> Iterator[Row]:
        """Every row of the log, in position order, a batch at a time."""
        after = 0
        while batch := self.feed_rows(after):
            yield from batch
            after = batch[-1].position

    # -- pages --------------------------------------------------------------------------------------------

    def history(self, stream_id: UUID, after: int = 0, limit: int = 100) -> Page:
        """A stream's events after version ``after``, with the effects each caused."""
        limit = max(1, min(limit, MAX_LIMIT))
        rows = self.stream_rows(stream_id, after, limit + 1)
        if not rows and after == 0:
            raise NotFound(f"no stream {stream_id}")
        page = rows[:limit]
        return Page(
            self.describe(page, with_effects=True), len(rows) > limit, page[-1].version if page else None
        )

    def profile_history(self, integration_id: str, after: int = 0, limit: int = 100) -> Page:
        """A profile's events after version ``after``, with the delays scheduled for it in between.

        Paged by the profile's versions like any history; a page shows the delays recorded after the event
        at version ``after`` and up to its own last event (or up to now, on the last page).
        """
        stream = profile_id(integration_id)
        limit = max(1, min(limit, MAX_LIMIT))
        rows = self.stream_rows(stream, after, limit + 1)
        page, has_more = rows[:limit], len(rows) > limit
        since = self._position_of(stream, after)
        delays = self.delay_rows(integration_id, since, page[-1].position if has_more else None)
        if not rows and not delays and after == 0:
            raise NotFound(f"no stream {stream}")
        merged = sorted([*page, *delays], key=lambda r: r.position)
        entries = self.describe(merged, with_effects=True)
        self._name_causes(entries, delays)
        return Page(entries, has_more, page[-1].version if page else None)

    def delay_rows(self, integration_id: str, after: int, upto: int | None) -> list[Row]:
        """Every event of the delays scheduled for a profile, at log positions in (``after``, ``upto``]."""
        return self.query(
            "SELECT * FROM {events} WHERE originator_id IN (SELECT originator_id FROM {events} "
            "  WHERE topic = {delay_topic} AND {delay_profile_fn}(state) = %s"
            ") AND notification_id > %s AND notification_id <= %s ORDER BY notification_id",
            (integration_id, after, upto if upto is not None else 2**63 - 1),
        )

    def _position_of(self, stream_id: UUID, version: int) -> int:
        if version <= 0:
            return 0
        rows = self.query(
            "SELECT * FROM {events} WHERE originator_id = %s AND originator_version <= %s "
            "ORDER BY originator_version DESC LIMIT 1",
            (stream_id, version),
        )
        return rows[0].position if rows else 0

    def _name_causes(self, entries: list[dict[str, Any]], delays: Sequence[Row]) -> None:
        """The policy and the timer record no ``causationId``: a delay's cause is in its stream and data."""
        streams = list({r.stream_id for r in delays})
        scheduled = {
            r.stream_id: r.position
            for r in (self.query(
                "SELECT * FROM {events} WHERE originator_id = ANY(%s) AND originator_version = 1", (streams,)
            ) if streams else [])
        }  # fmt: skip
        for entry in entries:
            if entry["causationId"] is not None:
                continue
            if entry["type"] == Delay.DelayScheduled.talon_type:
                entry["causationId"] = str(entry["data"]["cause"]["position"])
            elif entry["type"] == Delay.DelayCameDue.talon_type:
                position = scheduled.get(UUID(entry["streamId"]))
                entry["causationId"] = str(position) if position is not None else None

    def feed(self, after: int = 0, limit: int = 100) -> Page:
        """Every stream's events after position ``after``, in log order."""
        limit = max(1, min(limit, MAX_LIMIT))
        rows = self.feed_rows(after, limit + 1)
        page = rows[:limit]
        return Page(self.describe(page), len(rows) > limit, page[-1].position if page else after)

    # -- describing events --------------------------------------------------------------------------------

    def describe(
        self, rows: Sequence[Row], *, with_effects: bool = False, stored: bool = False
    ) -> list[dict[str, Any]]:
        effects = self.effects_of(rows) if with_effects else {}
        entries = []
        for row in rows:
            entry = self.entry(row, stored=stored)
            if with_effects:
                caused = effects.get((row.stream_id, row.version))
                entry["evaluated"] = caused is not None
                entry["effects"], entry["ledger"] = caused or ([], [])
            entries.append(entry)
        self._link_evaluations(entries)
        return entries

    def _link_evaluations(self, entries: list[dict[str, Any]]) -> None:
        """An evaluation is stored without metadata of its own (the policy, not a request, records it): its
        ``causationId`` is the position of the event it answers, and its ``correlationId`` that event's, the
        request's (one query for the page)."""
        evaluations = [e for e in entries if e["type"] == EVALUATION and e["causationId"] is None]
        causes = {e["data"]["cause"]["position"] for e in evaluations if isinstance(e["data"].get("cause"), dict)}
        if not causes:
            return
        correlation = {}
        for row in self.query("SELECT * FROM {events} WHERE notification_id = ANY(%s)", (sorted(causes),)):
            try:
                meta = getattr(self.app.mapper.to_domain_event(self._stored(row)), "meta", None) or {}
            except Exception:  # noqa: BLE001 - as in ``entry``: an undecodable cause must not hide the page
                meta = {}
            correlation[row.position] = meta.get("correlationId")
        for entry in evaluations:
            position = (entry["data"].get("cause") or {}).get("position")
            if position is not None:
                entry["causationId"] = str(position)
                entry["correlationId"] = entry["correlationId"] or correlation.get(position)

    def entry(self, row: Row, *, stored: bool = False) -> dict[str, Any]:
        try:
            event = self.app.mapper.to_domain_event(self._stored(row))
        except Exception:  # noqa: BLE001 - a class that no longer exists must not hide its event from auditors
            data = orjson.loads(row.state)
            event_type, recorded_at, meta = row.topic, data.get("timestamp"), data.get("meta") or {}
        else:
            event_type = event_type_of(event)
            data = {k: v for k, v in vars(event).items() if k not in HIDDEN_FIELDS}
            recorded_at, meta = getattr(event, "timestamp", None), getattr(event, "meta", {}) or {}
        entry: dict[str, Any] = {
            "position": row.position,
            "streamId": str(row.stream_id),
            "version": row.version,
            "type": event_type,
            "topic": row.topic,
            "recordedAt": recorded_at,
            "data": data,
            "correlationId": meta.get("correlationId"),
            "causationId": meta.get("causationId"),
            "keyName": meta.get("keyName"),
            "hash": row.hash.hex() if row.hash is not None else None,
        }
        if stored:
            entry["stored"] = base64.b64encode(row.state).decode()
        return entry

    def effects_of(
        self, rows: Iterable[Row]
    ) -> dict[tuple[UUID, int], tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """The effects of the evaluation of each row that has one, and the loyalty ledger entries it booked (points
        credited at a close, rolled back at a return, ...), by (stream, version); amounts as numbers."""
        wanted = {evaluation_id(r.stream_id, r.version): (r.stream_id, r.version) for r in rows}
        if not wanted:
            return {}
        found: dict[tuple[UUID, int], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for row in self.query(
            "SELECT * FROM {events} WHERE originator_id = ANY(%s) AND originator_version = 1", (list(wanted),)
        ):
            evaluation = self.app.mapper.to_domain_event(self._stored(row))
            effects = [
                {**effect, "ruleId": effect.get("campaignId"), "ruleVersion": effect.get("rulesetId")}
                for effect in numeric(getattr(evaluation, "effects", []))
            ]
            found[wanted[row.stream_id]] = (effects, numeric(getattr(evaluation, "ledger", [])))
        return found

    def _datastore(self) -> Any:
        return self.app.recorder.datastore  # type: ignore[attr-defined]

    @staticmethod
    def _stored(row: Row) -> StoredEvent:
        return StoredEvent(
            originator_id=row.stream_id, originator_version=row.version, topic=row.topic, state=row.state
        )


def event_type_of(event: Any) -> str:
    """The Talon.One type of a built-in event, the type of a custom one, else the class (bookkeeping)."""
    talon_type = getattr(type(event), "talon_type", None)
    if talon_type:
        return str(talon_type)
    custom = getattr(event, "event_type", None)
    if isinstance(custom, str):
        return custom
    return type(event).__qualname__


def recorded_at(entry: dict[str, Any]) -> datetime | None:
    value = entry.get("recordedAt")
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None

