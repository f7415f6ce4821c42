"""The rule policy's own state, in PostgreSQL tables it alone writes (inside its batch transactions).

- ``policy_history``: one row per evaluated event of a profile — what ``history`` conditions count and sum;
- ``policy_firings`` / ``policy_matches`` / ``policy_budgets``: what ``limits`` need;
- ``policy_sessions``: each session's effect ledger (current discounts, pending and credited points);
- ``policy_balances``: each profile's loyalty balance, the running fold of the recorded ledger entries;
- ``policy_delays``: delayed evaluations scheduled and not yet come due, with the trigger as rules see it and the
  ``cancelIf`` event that cancelled them, if one came;
- ``policy_rules``: the rule versions in force at the policy's checkpoint (so a restart resumes with the rules
  of that moment in the log, not of today).

Every lookup is an index range scan for one profile (or rule): the policy never scans the log per event. All of it
can be rebuilt by replaying the log from the start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from domain.delays import PendingDelay
from domain.effects import LedgerEntry
from domain.rules.context import HistoryItem
from domain.rules.decide import Decision
from domain.settlement import SessionLedger
from projections import jsonb

SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_history (
    profile_id text NOT NULL, event_type text NOT NULL, at timestamptz NOT NULL, position bigint NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS policy_history_lookup ON policy_history (profile_id, event_type, at);
CREATE TABLE IF NOT EXISTS policy_firings (
    rule_id int NOT NULL, profile_id text NOT NULL, at timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS policy_firings_lookup ON policy_firings (rule_id, profile_id, at);
CREATE TABLE IF NOT EXISTS policy_matches (
    rule_id int NOT NULL, profile_id text NOT NULL, matches bigint NOT NULL, PRIMARY KEY (rule_id, profile_id));
CREATE TABLE IF NOT EXISTS policy_budgets (
    rule_id int PRIMARY KEY, points numeric NOT NULL DEFAULT 0, discount numeric NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS policy_sessions (session_id text PRIMARY KEY, profile_id text, ledger jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS policy_balances (
    profile_id text PRIMARY KEY, active numeric NOT NULL DEFAULT 0, pending numeric NOT NULL DEFAULT 0,
    spent numeric NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS policy_rules (
    rule_id int PRIMARY KEY, version int NOT NULL, definition jsonb NOT NULL, enabled boolean NOT NULL);
CREATE TABLE IF NOT EXISTS policy_delays (
    delay_id uuid PRIMARY KEY, rule_id int NOT NULL, rule_version int NOT NULL, due_at timestamptz NOT NULL,
    cancel_if text[] NOT NULL, event_type text NOT NULL, attributes jsonb NOT NULL, profile_id text,
    session_id text, session_stream uuid, cancelled_by text);
CREATE INDEX IF NOT EXISTS policy_delays_session ON policy_delays (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS policy_delays_profile ON policy_delays (profile_id) WHERE session_id IS NULL;
"""


def _json(value: Any) -> Jsonb:
    # Numbers stay JSON numbers (history sums read them back as numbers).
    return Jsonb(value, dumps=_dumps)


def _dumps(value: Any) -> bytes | str:
    return jsonb.dumps(value, default=_number)


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


class PolicyCache:
    """What the policy read or wrote of balances and session ledgers, kept across its batches.

    Valid because the elected policy is the only writer of those tables; cleared when a batch rolls back.
    """

    LIMIT = 200_000
    """Entries of each map by default (``POLICY_STATE_CACHE_MAXSIZE``, ``RULESTREAM_POLICY_STATE_CACHE``)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}
        self.ledgers: dict[str, SessionLedger] = {}

    def keep_balance(self, profile_id: str, balance: tuple[Decimal, Decimal]) -> None:
        if len(self.balances) >= self.limit and profile_id not in self.balances:
            self.balances.clear()
        self.balances[profile_id] = balance

    def keep_ledger(self, session_id: str, ledger: SessionLedger) -> None:
        if len(self.ledgers) >= self.limit and session_id not in self.ledgers:
            self.ledgers.clear()
        self.ledgers[session_id] = ledger

    def clear(self) -> None:
        self.balances.clear()
        self.ledgers.clear()


class PolicyState:
    """Reads and writes of the policy's tables through one cursor (one transaction, or read-only for dry runs).

    Implements the rule language's ``HistoryReader`` and ``LimitsReader``.
    """

    def __init__(self, cursor: psycopg.Cursor[DictRow], cache: PolicyCache | None = None) -> None:
        self.cursor = cursor
        self.cache = cache if cache is not None else PolicyCache()
        self._history: list[tuple[Any, ...]] = []
        self._firings: list[tuple[Any, ...]] = []
        self._matches: Counter[tuple[int, str]] = Counter()
        self._budgets: dict[int, list[Decimal]] = {}
        self._sessions: dict[str, tuple[str | None, SessionLedger]] = {}
        self._balances: set[str] = set()
        self._parts: list[tuple[str, Sequence[tuple[Any, ...]]]] = []
        """The inserts ``flush`` gathers into its one statement."""

    def flush(self) -> None:
        """Write what this batch buffered, in one statement; reads of the buffered tables call it first.

        Each table's insert takes its rows as one binary array per column (``unnest``): ``executemany`` binds
        every row on its own, in Python, and was an eighth of the policy's time under load. The inserts of the
        tables that have rows go out as one statement (all but the last as ``WITH`` queries: they write
        different tables, so none needs to see another's rows): psycopg's cost is per statement. Upserted rows
        are unique per table (buffered by key), as ``ON CONFLICT DO UPDATE`` requires.
        """
        self._insert(
            "INSERT INTO policy_history (profile_id, event_type, at, position, attributes) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::bigint[], %b::jsonb[])",
            self._history,
        )
        self._insert(
            "INSERT INTO policy_firings (rule_id, profile_id, at) "
            "SELECT * FROM unnest(%b::int[], %b::text[], %b::timestamptz[])",
            self._firings,
        )
        self._insert(
            "INSERT INTO policy_budgets (rule_id, points, discount) "
            "SELECT * FROM unnest(%b::int[], %b::numeric[], %b::numeric[]) "
            "ON CONFLICT (rule_id) DO UPDATE SET points = policy_budgets.points + EXCLUDED.points, "
            "discount = policy_budgets.discount + EXCLUDED.discount",
            [(rule, p, d) for rule, (p, d) in self._budgets.items()],
        )
        self._insert(
            "INSERT INTO policy_matches (rule_id, profile_id, matches) "
            "SELECT * FROM unnest(%b::int[], %b::text[], %b::bigint[]) "
            "ON CONFLICT (rule_id, profile_id) DO UPDATE SET matches = policy_matches.matches + EXCLUDED.matches",
            [(rule, profile, n) for (rule, profile), n in self._matches.items()],
        )
        self._insert(
            "INSERT INTO policy_sessions (session_id, profile_id, ledger) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::jsonb[]) "
            "ON CONFLICT (session_id) DO UPDATE SET ledger = EXCLUDED.ledger, profile_id = EXCLUDED.profile_id",
            [(sid, profile, Jsonb(ledger.to_record())) for sid, (profile, ledger) in self._sessions.items()],
        )
        self._insert(
            "INSERT INTO policy_balances (profile_id, active, pending) "
            "SELECT * FROM unnest(%b::text[], %b::numeric[], %b::numeric[]) "
            "ON CONFLICT (profile_id) DO UPDATE SET active = EXCLUDED.active, pending = EXCLUDED.pending",
            [(pid, *self.cache.balances[pid]) for pid in self._balances],
        )
        parts, self._parts = self._parts, []
        if parts:
            *first, last = [statement for statement, _ in parts]
            ctes = ", ".join(f"w{n} AS ({statement})" for n, statement in enumerate(first))
            statement = f"WITH {ctes} {last}" if ctes else last
            params = [list(column) for _, rows in parts for column in zip(*rows, strict=True)]
            self.cursor.execute(statement, params, prepare=True)
        self._history, self._firings, self._matches, self._budgets = [], [], Counter(), {}
        self._sessions, self._balances = {}, set()

    def _insert(self, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            self._parts.append((statement, rows))

    @staticmethod
    def create_tables(cursor: psycopg.Cursor[DictRow]) -> None:
        cursor.execute(SCHEMA)

    # -- HistoryReader / LimitsReader -----------------------------------------------------------------

    def events(self, profile_id: str, event_type: str, since: datetime | None) -> Sequence[HistoryItem]:
        self.flush()
        self.cursor.execute(
            "SELECT at, attributes FROM policy_history WHERE profile_id = %s AND event_type = %s "
            "AND at >= coalesce(%s, '-infinity'::timestamptz) ORDER BY at, position",
            (profile_id, event_type, since),
        )
        return [HistoryItem(row["at"], row["attributes"]) for row in self.cursor.fetchall()]

    def firings(self, rule_id: int, profile_id: str, since: datetime | None) -> int:
        self.flush()
        self.cursor.execute(
            "SELECT count(*) AS n FROM policy_firings WHERE rule_id = %s AND profile_id = %s "
            "AND at >= coalesce(%s, '-infinity'::timestamptz)",
            (rule_id, profile_id, since),
        )
        row = self.cursor.fetchone()
        return int(row["n"]) if row else 0

    def matches(self, rule_id: int, profile_id: str) -> int:
        self.flush()
        self.cursor.execute(
            "SELECT matches FROM policy_matches WHERE rule_id = %s AND profile_id = %s", (rule_id, profile_id)
        )
        row = self.cursor.fetchone()
        return int(row["matches"]) if row else 0

    def budget_used(self, rule_id: int) -> Mapping[str, Decimal]:
        self.flush()
        self.cursor.execute("SELECT points, discount FROM policy_budgets WHERE rule_id = %s", (rule_id,))
        row = self.cursor.fetchone()
        return {"points": row["points"], "discount": row["discount"]} if row else {}

    # -- sessions and balances ------------------------------------------------------------------------

    def prefetch(self, profile_ids: Iterable[str], session_ids: Iterable[str]) -> None:
        """Read the balances and session ledgers of these profiles and sessions that the cache lacks, a query for
        each kind: a batch's first look at a thousand new customers was a thousand queries (round trips)."""
        profiles = {p for p in profile_ids if p not in self.cache.balances}
        sessions = {s for s in session_ids if s not in self.cache.ledgers}
        if profiles:
            self.cursor.execute(
                "SELECT profile_id, active, pending FROM policy_balances WHERE profile_id = ANY(%s)", (list(profiles),)
            )
            found = {row["profile_id"]: (row["active"], row["pending"]) for row in self.cursor.fetchall()}
            for profile in profiles:
                self.cache.keep_balance(profile, found.get(profile, (Decimal(0), Decimal(0))))
        if sessions:
            self.cursor.execute(
                "SELECT session_id, ledger FROM policy_sessions WHERE session_id = ANY(%s)", (list(sessions),)
            )
            ledgers = {row["session_id"]: row["ledger"] for row in self.cursor.fetchall()}
            for session in sessions:
                self.cache.keep_ledger(session, SessionLedger.from_record(ledgers.get(session)))

    def session_ledger(self, session_id: str) -> SessionLedger:
        cached = self.cache.ledgers.get(session_id)
        if cached is not None:
            return cached
        self.cursor.execute("SELECT ledger FROM policy_sessions WHERE session_id = %s", (session_id,))
        row = self.cursor.fetchone()
        ledger = SessionLedger.from_record(row["ledger"] if row else None)
        self.cache.keep_ledger(session_id, ledger)
        return ledger

    def balance(self, profile_id: str) -> tuple[Decimal, Decimal]:
        """(active, pending) points of the profile."""
        cached = self.cache.balances.get(profile_id)
        if cached is not None:
            return cached
        self.cursor.execute("SELECT active, pending FROM policy_balances WHERE profile_id = %s", (profile_id,))
        row = self.cursor.fetchone()
        balance = (row["active"], row["pending"]) if row else (Decimal(0), Decimal(0))
        self.cache.keep_balance(profile_id, balance)
        return balance

    def rules(self) -> list[dict[str, Any]]:
        self.cursor.execute("SELECT rule_id, version, definition, enabled FROM policy_rules ORDER BY rule_id")
        return list(self.cursor.fetchall())

    def delay_cancel_types(self) -> set[str]:
        """Every event type that cancels some pending delay."""
        self.cursor.execute("SELECT DISTINCT unnest(cancel_if) AS t FROM policy_delays WHERE cancelled_by IS NULL")
        return {row["t"] for row in self.cursor.fetchall()}

    # -- writes (the policy's batch transaction only) -------------------------------------------------

    def remember_event(
        self, profile_id: str, event_type: str, at: datetime, position: int, attributes: Mapping[str, Any]
    ) -> None:
        self._history.append((profile_id, event_type, at, position, _json(dict(attributes))))

    def remember_decision(self, decision: Decision) -> None:
        for firing in decision.firings:
            if firing.profile_id is not None:
                self._firings.append((firing.rule_id, firing.profile_id, firing.at))
            if firing.points or firing.discount:
                used = self._budgets.setdefault(firing.rule_id, [Decimal(0), Decimal(0)])
                used[0] += firing.points
                used[1] += firing.discount
        self._matches.update(decision.matches)

    def keep_session(
        self, session_id: str, profile_id: str | None, before: SessionLedger, after: SessionLedger
    ) -> None:
        self.cache.keep_ledger(session_id, after)
        self._sessions[session_id] = (profile_id, after)
        delta = after.pending_points - before.pending_points
        if profile_id and delta:
            self._add_balance(profile_id, Decimal(0), delta)

    def book(self, entries: Sequence[LedgerEntry]) -> None:
        for entry in entries:
            self._add_balance(entry.profile_id, entry.amount, Decimal(0))

    def _add_balance(self, profile_id: str, active: Decimal, pending: Decimal) -> None:
        # Absolute values, from the cache: the policy is the only writer of these tables (one elected runner).
        now_active, now_pending = self.balance(profile_id)
        self.cache.keep_balance(profile_id, (now_active + active, now_pending + pending))
        self._balances.add(profile_id)

    def keep_delay(self, delay: PendingDelay) -> None:
        self.cursor.execute(
            "INSERT INTO policy_delays (delay_id, rule_id, rule_version, due_at, cancel_if, event_type, attributes, "
            "profile_id, session_id, session_stream) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (delay_id) DO NOTHING",
            (delay.delay_id, delay.rule_id, delay.rule_version, delay.due_at, sorted(delay.cancel_if),
             delay.event_type, _json(dict(delay.attributes)), delay.profile_id, delay.session_id,
             delay.session_stream),
        )  # fmt: skip

    def cancel_delays(self, event_type: str, profile_id: str | None, session_id: str | None, position: int) -> None:
        """Cancel the pending delays this event cancels (``PendingDelay.cancelled_by_event``, in SQL)."""
        reason = f"{event_type}@{position}"
        if session_id is not None:
            self.cursor.execute(
                "UPDATE policy_delays SET cancelled_by = %s WHERE session_id = %s AND cancelled_by IS NULL "
                "AND %s = ANY(cancel_if)",
                (reason, session_id, event_type),
            )
        if profile_id is not None:
            self.cursor.execute(
                "UPDATE policy_delays SET cancelled_by = %s WHERE session_id IS NULL AND profile_id = %s "
                "AND cancelled_by IS NULL AND %s = ANY(cancel_if)",
                (reason, profile_id, event_type),
            )

    def take_delay(self, delay_id: Any) -> PendingDelay | None:
        """The delay that came due, no longer pending."""
        self.cursor.execute("DELETE FROM policy_delays WHERE delay_id = %s RETURNING *", (delay_id,))
        row = self.cursor.fetchone()
        if row is None:
            return None
        return PendingDelay(
            delay_id=row["delay_id"], rule_id=row["rule_id"], rule_version=row["rule_version"],
            due_at=row["due_at"], cancel_if=frozenset(row["cancel_if"]), event_type=row["event_type"],
            attributes=row["attributes"], profile_id=row["profile_id"], session_id=row["session_id"],
            session_stream=row["session_stream"], cancelled_by=row["cancelled_by"],
        )  # fmt: skip

    def keep_rule(self, rule_id: int, version: int, definition: Mapping[str, Any], enabled: bool) -> None:
        self.cursor.execute(
            "INSERT INTO policy_rules (rule_id, version, definition, enabled) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (rule_id) DO UPDATE SET version = EXCLUDED.version, definition = EXCLUDED.definition, "
            "enabled = EXCLUDED.enabled",
            (rule_id, version, Jsonb(dict(definition)), enabled),
        )
