"""A stream as it was at a version or a moment, rebuilt from the log, with snapshots so the cost stays flat.

The application itself takes no snapshots: the library would take them inside ``save`` (after the commit, in
the request's time, failing the request if one cannot be encoded), and its aggregate cache already spares the
write path a replay. Only history needs old versions, so history keeps its own snapshots, in their own table,
taken lazily: rebuilding version N replays from the newest snapshot at or below N and leaves a snapshot at
every multiple of ``INTERVAL`` it passes. Any version then costs one snapshot read plus fewer than
``INTERVAL`` events.

Snapshots need a transcoding for the value objects in aggregate state (``CartItem``); events never contain
them. A snapshot is only a cache: deleting the table loses nothing.
"""

from __future__ import annotations

import bisect
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import EventStore, IntegrityError, JSONTranscoder, Transcoding
from eventsourcing.postgres import PostgresAggregateRecorder

from domain.application import Rulestream
from domain.errors import NotFound
from domain.session import CartItem

INTERVAL = 50
"""A snapshot every this many versions (so a rebuild replays at most ``INTERVAL - 1`` events)."""


class CartItemAsDict(Transcoding):
    type = CartItem
    name = "cart_item"

    def encode(self, obj: CartItem) -> dict[str, Any]:
        return obj.to_record()

    def decode(self, data: dict[str, Any]) -> CartItem:
        return CartItem.from_record(data)


def snapshot_recorder(app: Rulestream) -> PostgresAggregateRecorder:
    """The recorder of the audit snapshots (no DDL here: ``schema.install`` creates its table)."""
    recorder: Any = app.recorder
    return PostgresAggregateRecorder(recorder.datastore, events_table_name=f"{app.name}_audit_snapshots")


@dataclass(frozen=True)
class Rebuilt:
    aggregate: Aggregate
    snapshot_version: int | None
    """The version of the snapshot the rebuild started from, if any."""
    replayed: int
    """How many events were applied on top of it."""


class History:
    """Old versions of streams, for one application."""

    def __init__(self, app: Rulestream) -> None:
        self.app = app
        transcoder = cast(JSONTranscoder, app.factory.transcoder())
        app.register_transcodings(transcoder)
        transcoder.register(CartItemAsDict())
        self.snapshots: EventStore[UUID] = app.factory.event_store(
            mapper=app.factory.mapper(transcoder=transcoder), recorder=snapshot_recorder(app)
        )

    def at_version(self, stream_id: UUID, version: int) -> Rebuilt:
        """The stream as it was right after its event ``version``."""
        found = list(self.snapshots.get(stream_id, desc=True, limit=1, lte=version))
        snapshot = cast(Snapshot | None, found[0] if found else None)
        aggregate: Any = snapshot.mutate(None) if snapshot else None
        replayed = 0
        for event in self.app.events.get(
            stream_id, gt=snapshot.originator_version if snapshot else None, lte=version
        ):
            aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
            replayed += 1
            if aggregate.version % INTERVAL == 0:
                self._keep(aggregate)  # a boundary not snapshotted yet: the newest snapshot was below it
        if aggregate is None or aggregate.version != version:
            raise NotFound(f"stream {stream_id} has no version {version}")
        return Rebuilt(aggregate, snapshot.originator_version if snapshot else None, replayed)

    def version_at(self, stream_id: UUID, moment: datetime) -> int:
        """The last version recorded at or before ``moment`` (a binary search: events of a stream are in time
        order)."""
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        head = self.head(stream_id)
        probe = _Timestamps(self, stream_id)
        version = bisect.bisect_right(range(1, head + 1), moment, key=probe)
        if version == 0:
            raise NotFound(f"stream {stream_id} did not exist yet at {moment.isoformat()}")
        return version

    def head(self, stream_id: UUID) -> int:
        last = list(self.app.recorder.select_events(stream_id, desc=True, limit=1))
        if not last:
            raise NotFound(f"no stream {stream_id}")
        return last[0].originator_version

    def _keep(self, aggregate: Aggregate) -> None:
        try:
            self.snapshots.put([Snapshot.take(aggregate)])
        except IntegrityError:
            pass  # another rebuild kept the same one


class _Timestamps:
    def __init__(self, history: History, stream_id: UUID) -> None:
        self.history, self.stream_id = history, stream_id

    def __call__(self, version: int) -> datetime:
        (event,) = self.history.app.events.get(self.stream_id, gt=version - 1, lte=version)
        moment: datetime = getattr(event, "timestamp")  # noqa: B009 - every aggregate event has one
        return moment


_histories: weakref.WeakKeyDictionary[Rulestream, History] = weakref.WeakKeyDictionary()


def history_of(app: Rulestream) -> History:
    """The ``History`` of an application, made once."""
    if app not in _histories:
        _histories[app] = History(app)
    return _histories[app]
