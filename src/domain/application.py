"""The application service: the commands of the Integration API, each one atomic append.

A command loads the aggregates it touches, lets them decide (they raise domain errors for what they refuse), and
saves every new event of every aggregate in one transaction. Optimistic concurrency on the aggregate versions turns
a concurrent write into a conflict, which is retried here on fresh state: parallel requests for one session all
succeed, in some order, and none is lost. ``dry=True`` runs the same decisions and stores nothing.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    project_aggregate,
)
from eventsourcing.domain import Aggregate, DomainEventProtocol, Snapshot
from eventsourcing.persistence import IntegrityError, Recording

from domain.anonymous import AnonymousEvent
from domain.base import Stream, natural_id
from domain.catalog.aggregate import CATALOG_ID, AttributeCatalog
from domain.catalog.service import (
    CatalogService,
    checked_event,
    checked_profile_attributes,
    checked_session_changes,
    event_problems,
    shared_with_session,
)
from domain.catalog.types import invalid
from domain.errors import (
    InvalidInput,
    InvalidTransition,
    NotFound,
    Problem,
    UnknownEventType,
    pointer,
)
from domain.keys import KEY_RING_ID, ApiKey, KeyRing, new_key
from domain.profile import CustomerProfile
from domain.session import (
    CANCELLED,
    CLOSED,
    OPEN,
    PARTIALLY_RETURNED,
    CustomerSession,
    ReturnedItem,
)

T = TypeVar("T")
MAX_ATTEMPTS = 100


PROFILE_SNAPSHOT_EVERY = 100


def session_id(integration_id: str) -> UUID:
    return natural_id("session", integration_id)


def profile_id(integration_id: str) -> UUID:
    return natural_id("profile", integration_id)


@dataclass
class Outcome:
    """What a command did: the aggregates as they are now, the events it recorded and their log positions."""

    events: list[DomainEventProtocol[UUID]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    session: CustomerSession | None = None
    profile: CustomerProfile | None = None
    dry: bool = False

    @property
    def last_position(self) -> int | None:
        return max(self.positions) if self.positions else None

    def position_of(self, event: DomainEventProtocol[UUID]) -> int | None:
        for recorded, position in zip(self.events, self.positions, strict=False):
            if recorded is event:
                return position
        return None


MISSING: Any = object()
"""Not asked yet (``Rulestream._profile_for``)."""


class Rulestream(CatalogService, Application[UUID]):
    """Customer sessions, customer profiles, custom events and API keys, in one ordered log."""

    name = "rulestream"
    snapshotting_intervals = {CustomerProfile: PROFILE_SNAPSHOT_EVERY}
    """A profile's history grows with every session its customer closes; loading one that is not cached (or
    as of a version, for the policy) reads its latest snapshot and at most this many events after it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sole_writer = self.env.get("SOLE_WRITER", "n").lower() in ("y", "yes", "true", "1")
        """Commands trust this process's cached sessions and profiles (see ``_get``)."""
        self._cache_lock = threading.Lock()

    def construct_recorder(self) -> Any:
        # A process recorder: the same events table, plus tracking rows, so that followers of the log (the rule
        # policy) can record their own events and their position in one transaction.
        return self.factory.process_recorder()

    # -- customer sessions ----------------------------------------------------------------------------

    def update_session(
        self, integration_id: str, changes: Mapping[str, Any], state: str | None, *, dry: bool = False
    ) -> Outcome:
        """Create or update a session, and move it to ``state`` (``None`` keeps the current state)."""
        changes = checked_session_changes(self.catalog(), changes)

        def attempt() -> Outcome:
            named = changes.get("profileId")
            if named:  # both known up front: one load for the two (``_get_all``)
                session, known = self._get_all(
                    [(session_id(integration_id), CustomerSession), (profile_id(named), CustomerProfile)]
                )
            else:
                session = self._get(session_id(integration_id), CustomerSession)
            counted = session.total if session is not None and session.counts_as_sale else None
            if named and session is not None and session.state != OPEN and named != session.profile_id:
                named = None  # content sent to a session no longer open is ignored: it stays its profile's
            profile_key = named or (session.profile_id if session else None)
            profile = self._profile_for(profile_key, known if named else MISSING)
            if session is None:
                first = profile is None or profile.sessions == 0
                session = CustomerSession.start(
                    session_id(integration_id), integration_id, changes, first_session=first
                )
                if profile is not None:
                    profile.start_session(integration_id)
                if state == CLOSED:
                    session.close({})
                elif state not in (None, OPEN):
                    raise InvalidTransition.at(
                        "/customerSession/state", f"a session is created open or closed, not '{state}'"
                    )
            else:
                self._move(session, changes, state or session.state)
            self._keep_sales(session, profile, counted)
            return self._commit(session, profile, dry=dry)

        return self._retrying(attempt)

    def return_items(self, integration_id: str, items: Sequence[ReturnedItem], *, dry: bool = False) -> Outcome:
        def attempt() -> Outcome:
            session = self._require_session(integration_id)
            profile = self._profile_for(session.profile_id)
            before = session.cart_item_total
            session.return_items(items)
            if profile is not None:
                profile.reduce_sale(integration_id, before - session.cart_item_total)
            return self._commit(session, profile, dry=dry)

        return self._retrying(attempt)

    def reopen_session(self, integration_id: str, *, dry: bool = False) -> Outcome:
        def attempt() -> Outcome:
            session = self._require_session(integration_id)
            profile = self._profile_for(session.profile_id)
            counted = session.total
            session.reopen()
            self._keep_sales(session, profile, counted)
            return self._commit(session, profile, dry=dry)

        return self._retrying(attempt)

    def get_session(self, integration_id: str) -> CustomerSession:
        session = self._get(session_id(integration_id), CustomerSession, fresh=True)
        if session is None:
            raise NotFound(f"no customer session '{integration_id}'")
        return session

    # -- customer profiles ----------------------------------------------------------------------------

    def update_profile(
        self, integration_id: str, attributes: Mapping[str, Any], *, run_rule_engine: bool, dry: bool = False
    ) -> Outcome:
        attributes = checked_profile_attributes(self.catalog(), attributes)

        def attempt() -> Outcome:
            profile = self._get(profile_id(integration_id), CustomerProfile)
            if profile is None:
                profile = CustomerProfile.register(
                    profile_id(integration_id), integration_id, attributes, run_rule_engine=run_rule_engine
                )
            else:
                profile.update(attributes, run_rule_engine=run_rule_engine)
            return self._commit(None, profile, dry=dry)

        return self._retrying(attempt)

    def get_profile(self, integration_id: str) -> CustomerProfile | None:
        return self._get(profile_id(integration_id), CustomerProfile, fresh=True)

    def erase_profile(self, integration_id: str) -> Outcome:
        """Forget a customer: records ``DataErased`` on the profile (the keys are destroyed by infrastructure)."""

        def attempt() -> Outcome:
            profile = self._get(profile_id(integration_id), CustomerProfile)
            if profile is None:
                raise NotFound(f"no customer profile '{integration_id}'")
            profile.erase()
            return self._commit(None, profile, dry=False)

        return self._retrying(attempt)

    # -- custom events --------------------------------------------------------------------------------

    def track_event(
        self,
        event_type: str,
        attributes: Mapping[str, Any],
        profile_integration_id: str | None,
        session_integration_id: str | None,
        *,
        dry: bool = False,
    ) -> Outcome:
        """Record a custom event on its session's stream, else on its profile's, else as an anonymous event."""

        if event_type.startswith("talon_"):
            raise UnknownEventType.at("/type", f"'{event_type}' is a reserved built-in event type")

        def attempt() -> Outcome:
            discovered: list[tuple[str, Any]] = []
            catalog = self.catalog()
            values = checked_event(catalog, event_type, attributes, discovered)
            catalog = self._registering(catalog, discovered)
            session = None
            if session_integration_id is not None:
                session = self._get(session_id(session_integration_id), CustomerSession)
                if session is None:
                    raise InvalidInput.at("/sessionId", f"no customer session '{session_integration_id}'")
                if profile_integration_id and session.profile_id and session.profile_id != profile_integration_id:
                    raise InvalidInput.at("/profileId", f"the session belongs to profile '{session.profile_id}'")
            profile = self._profile_for(profile_integration_id or (session.profile_id if session else None))
            if session is not None:
                # Session content changes only while the session is open: a closed one keeps its attributes.
                shared = shared_with_session(catalog, values) if session.state == OPEN else {}
                session.track(event_type, values, profile.integration_id if profile else None, shared)
                return self._commit_with_catalog(catalog, session, profile, dry=dry)
            if profile is not None:
                profile.track(event_type, values)
                return self._commit_with_catalog(catalog, None, profile, dry=dry)
            anonymous = AnonymousEvent.track(event_type, values)
            return self._commit_with_catalog(catalog, None, None, anonymous, dry=dry)

        return self._retrying(attempt)

    def track_events(
        self,
        profile_integration_id: str,
        events: Mapping[str, Mapping[str, Any]],
        profile_attributes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Outcome:
        """Record several custom events of one profile in one atomic append: all of them, or none (Gameball).

        ``events`` maps each event type to its attributes; problems are pointed at ``/events/<type>/<name>``.
        ``profile_attributes`` maps a JSON pointer prefix to profile attributes stored in the same append.
        """

        def attempt() -> Outcome:
            catalog = self.catalog()
            problems: list[Problem] = []
            recorded: list[tuple[str, dict[str, Any]]] = []
            discovered: list[tuple[str, Any]] = []
            for event_type, attributes in events.items():
                try:
                    recorded.append((event_type, checked_event(catalog, event_type, attributes, discovered)))
                except InvalidInput as e:
                    problems += event_problems(e, "/events" + pointer(event_type))
            stored: dict[str, Any] = {}
            for prefix, attributes in (profile_attributes or {}).items():
                try:
                    stored |= checked_profile_attributes(catalog, attributes, prefix)
                except InvalidInput as e:
                    problems += e.problems
            if problems:
                raise invalid(problems)
            catalog = self._registering(catalog, discovered)
            profile = self._profile_for(profile_integration_id)
            assert profile is not None
            if stored:
                profile.update(stored, run_rule_engine=False)
            for event_type, values in recorded:
                profile.track(event_type, values)
            return self._commit_with_catalog(catalog, None, profile, dry=False)

        return self._retrying(attempt)

    # -- API keys ---------------------------------------------------------------------------------------

    def issue_key(self, name: str, role: str, *, secret: str | None = None) -> str:
        """Issue a new key (or register ``secret`` as one) and return it; only its hash is stored."""
        key = secret or new_key(role)

        def attempt() -> str:
            ring = self.key_ring() or KeyRing.start()
            ring.issue(name, role, key)
            self.save(ring)
            return key

        return self._retrying(attempt)

    def revoke_key(self, name: str) -> None:
        def attempt() -> None:
            ring = self.key_ring()
            if ring is None:
                raise NotFound(f"no key named '{name}'")
            ring.revoke(name)
            self.save(ring)

        self._retrying(attempt)

    def key_ring(self) -> KeyRing | None:
        return self._get(KEY_RING_ID, KeyRing)

    def keys(self) -> list[ApiKey]:
        ring = self.key_ring()
        return list(ring.keys.values()) if ring else []

    # -- how commands are carried out -----------------------------------------------------------------

    def _move(self, session: CustomerSession, changes: Mapping[str, Any], target: str) -> None:
        if target == OPEN:
            session.update(changes)
        elif target == CLOSED:
            session.close(changes)
        elif target == CANCELLED:
            session.cancel()
        elif target == PARTIALLY_RETURNED:
            raise InvalidTransition.at(
                "/customerSession/state",
                f"cannot change the session from '{session.state}' to '{target}': use the returns endpoint",
                title="Invalid state transition",
            )
        else:
            raise InvalidInput.at("/customerSession/state", f"unknown session state '{target}'")

    @staticmethod
    def _keep_sales(session: CustomerSession, profile: CustomerProfile | None, counted: Decimal | None) -> None:
        """Let the profile's sales follow the session: counted while closed, not after revoke or reopen.

        ``counted`` is what the session counted with before the command (``None``: it did not count). A counted
        session cannot change its profile (only open sessions take changes), so it counted in this profile.
        """
        if profile is None or session.profile_id != profile.integration_id:
            return
        if session.counts_as_sale and counted is None:
            profile.count_sale(session.integration_id, session.total)
        elif not session.counts_as_sale and counted is not None:
            reason = "reopened" if session.state == OPEN else "cancelled"
            profile.uncount_sale(session.integration_id, counted, reason)

    def _profile_for(self, integration_id: str | None, loaded: Any = MISSING) -> CustomerProfile | None:
        """The profile with this integration id; an unknown one is registered empty (Talon.One does the same).
        ``loaded``: what ``_get`` answered for it already, if it was asked (``MISSING`` if not)."""
        if not integration_id:
            return None
        profile = self._get(profile_id(integration_id), CustomerProfile) if loaded is MISSING else loaded
        if profile is None:
            profile = CustomerProfile.register(profile_id(integration_id), integration_id, {}, run_rule_engine=False)
        return profile

    def _require_session(self, integration_id: str) -> CustomerSession:
        session = self._get(session_id(integration_id), CustomerSession)
        if session is None:
            raise NotFound(f"no customer session '{integration_id}'")
        return session

    def _get(self, aggregate_id: UUID, kind: type[T], *, fresh: bool = False) -> T | None:
        """An aggregate to change (a copy: a cached one stays as it was if the command fails).

        When this process is the only writer of sessions and profiles (``sole_writer``), a cached aggregate is
        current: a command takes a copy without asking the database for newer events (the library's
        fast-forward, a query per load). Were it ever stale, the append of the command's events conflicts on
        the version, ``save`` evicts it, and the retry loads it afresh: nothing is decided on stale state.
        ``fresh=True`` (queries, which have no append to conflict) reads the newer events of a cached one.
        """
        cache = self.repository.cache
        try:
            if self.sole_writer and cache is not None and kind in (CustomerSession, CustomerProfile):
                try:
                    aggregate: Any = deepcopy(cache.get(aggregate_id))
                    if fresh:
                        newer = list(self.repository.event_store.get(aggregate_id, gt=aggregate.version))
                        if newer:
                            aggregate = project_aggregate(aggregate, newer)
                            self._cache_if_newer(deepcopy(aggregate))
                except KeyError:
                    loaded = self._load(aggregate_id)
                    self._cache_if_newer(loaded)
                    aggregate = deepcopy(loaded)
            else:
                aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, kind):
            raise NotFound(f"{aggregate_id} is not a {kind.__name__}")
        return aggregate

    def _get_all(self, wanted: Sequence[tuple[UUID, type[Any]]]) -> list[Any]:
        """``_get`` of several sessions and profiles; those this sole writer has not cached are loaded in one
        query, not one each (a command on a new session of a new customer asked twice for nothing)."""
        cache = self.repository.cache
        select = getattr(self.recorder, "select_all_with_snapshots", None)
        snapshots = self.repository.snapshot_store
        if not self.sole_writer or cache is None or select is None or snapshots is None:
            return [self._get(aggregate_id, kind) for aggregate_id, kind in wanted]
        missing = []
        for aggregate_id, _ in wanted:
            try:
                cache.get(aggregate_id)
            except KeyError:
                missing.append(aggregate_id)
        if len(missing) < 2:
            return [self._get(aggregate_id, kind) for aggregate_id, kind in wanted]
        found = select(missing, snapshots.recorder.events_table_name)  # type: ignore[attr-defined]
        for snapshot, events in found.values():
            loaded = self._projected(snapshot, events)
            if loaded is not None:
                self._cache_if_newer(loaded)
        return [
            self._get(aggregate_id, kind) if aggregate_id not in missing or aggregate_id in found else None
            for aggregate_id, kind in wanted
        ]

    def _load(self, aggregate_id: UUID) -> Stream:
        """An aggregate as the log has it now: its latest snapshot and the events after it.

        In one query when the recorder can (``select_with_snapshot``), where the library's repository asks two:
        the snapshot, then the events after it (for a new customer, both answer nothing)."""
        snapshots = self.repository.snapshot_store
        select = getattr(self.recorder, "select_with_snapshot", None)
        project: Any = project_aggregate
        if snapshots is None or select is None:
            loaded: Stream = self.repository._reconstruct_aggregate(aggregate_id, None, project)  # noqa: SLF001
            return loaded
        snapshot, events = select(aggregate_id, snapshots.recorder.events_table_name)  # type: ignore[attr-defined]
        aggregate = self._projected(snapshot, events)
        if aggregate is None:
            raise AggregateNotFoundError(f"Aggregate {aggregate_id!r} not found.")
        return aggregate

    def _projected(self, snapshot: Any, events: Sequence[Any]) -> Stream | None:
        """The aggregate of a stored snapshot (or ``None``) and the stored events after it (``None``: neither)."""
        snapshots: Any = self.repository.snapshot_store
        stream = [snapshots.mapper.to_domain_event(snapshot)] if snapshot is not None else []
        stream += [self.repository.event_store.mapper.to_domain_event(e) for e in events]
        projected: Stream | None = project_aggregate(None, stream)
        return projected

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """The library's save; a conflict brings cached sessions and profiles up to the log (the retry decides
        on them) and evicts other aggregates, a success caches sessions and profiles as saved (see ``_get``)."""
        cache = self.repository.cache
        try:
            recordings = self._saved(objs, kwargs)
        except IntegrityError:
            for obj in objs:
                if isinstance(obj, CustomerSession | CustomerProfile):
                    self._catch_up_cached(obj.id)
                elif isinstance(obj, Stream) and cache is not None:
                    # Others (the catalog, the key ring) may be changed in their cached copy: read afresh.
                    with contextlib.suppress(KeyError):
                        cache.get(obj.id, evict=True)
            raise
        if any(isinstance(obj, AttributeCatalog) for obj in objs):
            self.catalog_saved()
        if self.sole_writer:
            for obj in objs:
                if isinstance(obj, CustomerSession | CustomerProfile):
                    self._cache_if_newer(obj)
        return recordings

    def _saved(self, objs: Sequence[Any], kwargs: dict[str, Any]) -> list[Recording[UUID]]:
        """The library's ``Application.save``, the events of our aggregates collected directly: its
        ``ProcessingEvent.collect_events`` asks ``isinstance`` of two runtime-checkable protocols of each object
        (attribute by attribute), a tenth of a cached customer's command outside its round trips (cProfile)."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # the library's deprecated hook, called as its save does
        return recordings

    def _catch_up_cached(self, aggregate_id: UUID) -> None:
        """Read the events a cached session or profile lacks (after a conflict: another command, here or
        elsewhere, got there first). Cheaper than evicting it: a profile's whole history would be read again.
        Commands change copies of these (``_get``), so the cached one is as some command saved it."""
        cache = self.repository.cache
        if cache is None:
            return
        try:
            cached: Any = cache.get(aggregate_id)
        except KeyError:
            return
        newer = list(self.repository.event_store.get(aggregate_id, gt=cached.version))
        caught_up: Stream | None = project_aggregate(deepcopy(cached), newer) if newer else None
        if caught_up is not None:
            self._cache_if_newer(caught_up)

    def _take_snapshots(self, processing_event: Any) -> None:
        """Snapshot a profile whose version crossed a multiple of the interval, from the aggregate just saved.

        The library's own would read the profile back from the log to take it (a query and a replay per
        snapshot); the saved aggregate is the same state, in memory.
        """
        if self.snapshots is None:
            return
        for aggregate in processing_event.aggregates.values():
            interval = self.snapshotting_intervals.get(type(aggregate))
            events = [e for e in processing_event.events if e.originator_id == aggregate.id]
            if interval and events and events[0].originator_version <= aggregate.version // interval * interval:
                self.snapshots.put([Snapshot.take(aggregate)])

    def _cache_if_newer(self, aggregate: Stream) -> None:
        """Cache a session or profile unless a newer version is cached already (two commands finishing in either
        order leave the later version)."""
        cache = self.repository.cache
        if cache is None:
            return
        with self._cache_lock:
            try:
                cached: Any = cache.get(aggregate.id)
            except KeyError:
                cached = None
            if cached is None or cached.version < aggregate.version:
                cache.put(aggregate.id, aggregate)

    def _commit(self, session: CustomerSession | None, profile: CustomerProfile | None, *, dry: bool) -> Outcome:
        # The profile's bookkeeping goes first, so that followers evaluating a session event see the profile
        # as it is after the command (e.g. ``closedSessions`` including the session that just closed).
        aggregates: list[Stream] = [a for a in (profile, session) if a is not None]
        if dry:
            events = [e for a in aggregates for e in a.collect_events()]
            return Outcome(events=list(events), session=session, profile=profile, dry=True)
        recordings = self.save(*aggregates)
        return Outcome(
            events=[r.domain_event for r in recordings],
            positions=[r.notification.id for r in recordings],
            session=session,
            profile=profile,
        )

    def _registering(self, catalog: AttributeCatalog, discovered: list[tuple[str, Any]]) -> AttributeCatalog:
        """The catalog to save with the event: a private copy with what discover mode found, if anything."""
        if not discovered:
            return catalog
        catalog = self.catalog(private=True)
        for event_type, found in discovered:
            catalog.register_discovered(event_type, found)
        return catalog

    def _commit_with_catalog(
        self,
        catalog: AttributeCatalog,
        session: CustomerSession | None,
        profile: CustomerProfile | None,
        anonymous: AnonymousEvent | None = None,
        *,
        dry: bool,
    ) -> Outcome:
        """Commit a custom event with the attributes discover mode registered for it, in one transaction.

        The catalog's events are not the command's own: they stay out of the ``Outcome``.
        """
        if dry or not catalog.pending_events:
            if anonymous is not None:
                return self._record_anonymous(anonymous, dry=dry)
            return self._commit(session, profile, dry=dry)
        aggregates: list[Stream] = [a for a in (profile, session, anonymous) if a is not None]
        own = [r for r in self.save(*aggregates, catalog) if r.domain_event.originator_id != CATALOG_ID]
        return Outcome(
            events=[r.domain_event for r in own],
            positions=[r.notification.id for r in own],
            session=session,
            profile=profile,
        )

    def _record_anonymous(self, event: AnonymousEvent, *, dry: bool) -> Outcome:
        if dry:
            return Outcome(events=list(event.collect_events()), dry=True)
        recordings = self.save(event)
        return Outcome(events=[r.domain_event for r in recordings], positions=[r.notification.id for r in recordings])

    @staticmethod
    def _retrying(attempt: Callable[[], T]) -> T:
        """Run a command, again on fresh state whenever a concurrent write took the version it built on."""
        for tries in range(MAX_ATTEMPTS):
            try:
                return attempt()
            except IntegrityError:
                time.sleep(random.uniform(0, 0.002 * min(tries + 1, 10)))  # noqa: S311 - jitter, not security
        return attempt()
