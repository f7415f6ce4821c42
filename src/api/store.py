"""Group commit: the events of concurrent commands go into the event store in one transaction.

The library's writers serialise on a table lock (so that log positions commit in order), so one transaction per
command caps throughput at one lock-and-fsync per command. ``GroupCommitRecorder`` queues each command's events
and a single committer thread writes everything queued in one transaction: one lock, one ``NOTIFY``, one commit.

A conflict in the batch must not fail the others: the batch is first tried as one ``INSERT``; if a unique
violation (a concurrent write to the same aggregate version) aborts it, the batch is written again command by
command under savepoints, and only the conflicting commands get the ``IntegrityError`` (which the application
retries on fresh state). Writes that carry a follower's tracking position do not queue: they already batch.

Enabled by ``PROCESS_RECORDER_TOPIC=api.store:GroupCommitRecorder`` in the library's environment.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder

log = logging.getLogger("rulestream.store")

MAX_BATCH_EVENTS = 2000


class GroupCommitRecorder(PostgresProcessRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: queue.SimpleQueue[tuple[Sequence[StoredEvent], Future[Sequence[int]]]] = queue.SimpleQueue()
        self._committer: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if kwargs.get("tracking") is not None or not stored_events:
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        self._ensure_committer()
        done: Future[Sequence[int]] = Future()
        self._queue.put((stored_events, done))
        return done.result()

    def _ensure_committer(self) -> None:
        if self._committer is None:
            with self._start_lock:
                if self._committer is None:
                    self._committer = threading.Thread(target=self._commit_forever, name="group-commit", daemon=True)
                    self._committer.start()

    def _commit_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            size = len(batch[0][0])
            while size < MAX_BATCH_EVENTS:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                size += len(item[0])
            try:
                self._commit(batch)
            except BaseException as error:  # noqa: BLE001 - every waiting command must hear of it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)

    def _commit(self, batch: list[tuple[Sequence[StoredEvent], Future[Sequence[int]]]]) -> None:
        everything = [e for events, _ in batch for e in events]
        try:
            ids = self._write(everything)
        except IntegrityError:
            self._commit_one_by_one(batch)
            return
        offset = 0
        for events, done in batch:
            done.set_result(ids[offset : offset + len(events)])
            offset += len(events)

    def _write(self, events: Sequence[StoredEvent]) -> list[int]:
        with self.datastore.get_connection() as conn:
            try:
                with conn.transaction(), conn.cursor() as curs:
                    self._insert_stored_events(curs, events)
                    return [row["notification_id"] for row in curs.fetchall()]
            except psycopg.errors.UniqueViolation as error:
                raise IntegrityError(str(error)) from error

    def _commit_one_by_one(self, batch: list[tuple[Sequence[StoredEvent], Future[Sequence[int]]]]) -> None:
        results: list[tuple[Future[Sequence[int]], Sequence[int] | BaseException]] = []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            for events, done in batch:
                try:
                    with conn.transaction():  # a savepoint
                        self._insert_only(curs, events)
                        results.append((done, [row["notification_id"] for row in curs.fetchall()]))
                except psycopg.errors.UniqueViolation as error:
                    results.append((done, IntegrityError(str(error))))
        for done, result in results:
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                done.set_result(result)

    def _insert_only(self, curs: Any, events: Sequence[StoredEvent]) -> None:
        # The library's insert, without its lock and notify (taken once for the whole batch).
        pg_events = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state) for e in events
        ]
        curs.execute(self.insert_events_statement, (pg_events,))
