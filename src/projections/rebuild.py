"""Rebuild a read model from the log while the live one keeps serving, then switch readers over atomically.

1. Claim the rebuild (an advisory lock: one rebuild of a model at a time, and status can see it running).
2. Create generation N+1 of the model's tables beside the live generation N, and follow the log into it from the
   start, under the tracking name ``<model>:rebuild``, in batches, reporting progress.
3. Switch, in one transaction: lock the live follower's tracking row (its next batch waits), apply what the log
   gained meanwhile, move the live checkpoint to the copy's, point the views and the pointer row at N+1.
   The live follower, wherever it runs, finds its checkpoint moved and its generation changed at its next batch.
4. Drop generation N.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from domain.application import Rulestream
from domain.errors import Conflict, NotFound
from projections.follower import CHECKPOINT, FollowerRunner, lock_key
from projections.readmodel import (
    POINTERS,
    REBUILD_SUFFIX,
    ReadModel,
    create_tables,
    drop_tables,
    ensure_pointers,
    live_generation,
    point_view,
)
from projections.registry import READ_MODELS

REBUILD_LOCK = 7_003
Progress = Callable[[int, int], None]
"""``progress(position, head)``: the copy has applied the log up to ``position`` of ``head``."""


@dataclass(frozen=True)
class Rebuilt:
    name: str
    generation: int
    position: int
    events: int


def rebuild_lock_key(name: str) -> int:
    return lock_key(f"rulestream-rebuild:{name}")


class Rebuild:
    """One rebuild of one read model. ``claim()`` first (raises ``Conflict`` if one is running), then ``run()``."""

    def __init__(self, app: Rulestream, name: str) -> None:
        if name not in READ_MODELS:
            raise NotFound(f"no projection named '{name}' (there are: {', '.join(READ_MODELS)})")
        self.app = app
        self.name = name
        self.datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
        self._lock: psycopg.Connection[Any] | None = None

    def claim(self) -> None:
        params = {k: v for k, v in self.datastore.pool.kwargs.items() if k != "row_factory"}
        conn = psycopg.connect(**params, autocommit=True, connect_timeout=10)
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (REBUILD_LOCK, rebuild_lock_key(self.name))
        ).fetchone()
        if not (row and row[0]):
            conn.close()
            raise Conflict(f"a rebuild of '{self.name}' is already running")
        self._lock = conn

    def run(self, progress: Progress | None = None) -> Rebuilt:
        if self._lock is None:
            self.claim()
        try:
            return self._run(progress or (lambda position, head: None))
        finally:
            assert self._lock is not None
            self._lock.close()
            self._lock = None
            with contextlib.suppress(KeyError):  # the copy's gauge: it has no checkpoint of its own any more
                CHECKPOINT.remove(self.name + REBUILD_SUFFIX)

    def in_background(self) -> threading.Thread:
        """Claim now (so that a conflict is the caller's error) and rebuild in a daemon thread."""
        self.claim()
        worker = threading.Thread(target=self.run, name=f"rebuild-{self.name}", daemon=True)
        worker.start()
        return worker

    def _run(self, progress: Progress) -> Rebuilt:
        model = READ_MODELS[self.name]
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            ensure_pointers(cursor)
            live = live_generation(cursor, self.name)
            target = live + 1
            copy = model(self.app, generation=target)
            drop_tables(cursor, copy, target)  # what a crashed rebuild left
            create_tables(cursor, copy, target, views=False)
        runner = FollowerRunner(self.app, copy)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            runner._setup(cursor)
            cursor.execute(
                f'UPDATE "{runner.tracking_table}" SET notification_id = 0 WHERE application_name = %s',
                (copy.name,),
            )
        events = 0
        head = self.app.recorder.max_notification_id() or 0
        progress(0, head)
        while applied := runner.step():
            events += applied
            if runner.checkpoint >= head:
                head = self.app.recorder.max_notification_id() or 0
            progress(runner.checkpoint, max(head, runner.checkpoint))
        position, more = self._switch(runner, copy, live)
        progress(position, position)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            drop_tables(cursor, copy, live)
        return Rebuilt(self.name, target, position, events + more)

    def _switch(self, runner: FollowerRunner, copy: ReadModel, live: int) -> tuple[int, int]:
        tracking = runner.tracking_table
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO "{tracking}" (application_name, notification_id) VALUES (%s, 0) '
                "ON CONFLICT (application_name) DO NOTHING",
                (self.name,),
            )
            cursor.execute(
                f'SELECT notification_id FROM "{tracking}" WHERE application_name = %s FOR UPDATE',
                (self.name,),
            )
            cursor.execute(f"SELECT generation FROM {POINTERS} WHERE name = %s FOR UPDATE", (self.name,))
            row = cursor.fetchone()
            if row is None or row["generation"] != live:
                raise Conflict(f"'{self.name}' was switched over by someone else meanwhile")
            # The live follower waits on its tracking row now: whatever the log gained goes into the copy here.
            position, more = runner.checkpoint, 0
            while batch := runner.read(cursor, position, copy.batch_size):
                copy.apply(cursor, batch)
                position, more = batch[-1].position, more + len(batch)
            cursor.execute(
                f'UPDATE "{tracking}" SET notification_id = %s WHERE application_name = %s',
                (position, self.name),
            )
            cursor.execute(
                f'DELETE FROM "{tracking}" WHERE application_name = %s', (self.name + REBUILD_SUFFIX,)
            )
            cursor.execute(
                f"UPDATE {POINTERS} SET generation = %s, error = NULL, failed_at = NULL, applied_at = now() "
                "WHERE name = %s",
                (copy.generation, self.name),
            )
            for table in copy.tables:
                point_view(cursor, table, copy.generation)
        return position, more
