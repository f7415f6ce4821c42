"""Read models: followers that keep tables, in generations, behind views that readers query.

Each read model owns a few logical tables (``events_log``, ``events_log_streams``, ...). Their rows live in
physical tables of one *generation* (``rs_events_log_g3``); readers never name a generation, they query the view
``rs_events_log``. The pointer table ``rulestream_projections`` says which generation is live. A rebuild
(``projections.rebuild``) fills generation N+1 beside the live one under its own tracking name, then, in one
transaction, points the views and the live follower at it: readers switch atomically and never see a half-built
model.

The live follower reads its generation from the pointer row in every batch, so a switch made by another process
takes effect at its next batch; the runner's checkpoint lock (``projections.follower``) orders the two.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from domain.application import Rulestream
from projections.follower import GATHER_SECONDS, Follower, Recorded

POINTERS = "rulestream_projections"
DDL_LOCK = (7_002, 1)
"""Advisory lock that serialises DDL of read models (two processes starting at once)."""
REBUILD_SUFFIX = ":rebuild"


MAX_PARAMETERS = 65_535
"""PostgreSQL's limit of parameters in one statement."""


def insert_rows(
    cursor: psycopg.Cursor[DictRow], into: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """``INSERT INTO <into> (columns) VALUES (...), (...), ... <tail>``: one statement for a batch of rows.

    ``executemany`` runs one statement per row (each parsed into its own execution by PostgreSQL, each dumped on
    its own here); a multi-row ``VALUES`` is one, its values coerced to the target columns' types as in the
    single-row form. ``tail`` is e.g. the ``ON CONFLICT`` clause (no placeholders); rows must not repeat a
    conflict key.

    The statement is written with PostgreSQL's own ``$n`` placeholders and sent through a ``RawCursor`` of the
    same connection (so in the same transaction): psycopg caches its conversion of ``%s`` placeholders only for
    statements up to 4 kB, and split a batch's longer one with a regular expression every time, a fifth of the
    read models' process CPU under B1's load (py-spy)."""
    width = len(columns)
    per = max(1, MAX_PARAMETERS // width)
    with psycopg.RawCursor(cursor.connection) as raw:
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            raw.execute(
                f"INSERT INTO {into} ({', '.join(columns)}) VALUES {_placeholders(width, len(chunk))} {tail}",
                [value for values in chunk for value in values],
            )


@functools.lru_cache(maxsize=256)
def _placeholders(width: int, count: int) -> str:
    """``($1, $2), ($3, $4)`` for ``count`` rows of ``width`` values."""
    return ", ".join(
        "(" + ", ".join(f"${row * width + column + 1}" for column in range(width)) + ")" for row in range(count)
    )


@dataclass(frozen=True)
class Table:
    """A logical table: its columns (SQL) and its secondary indexes (suffix → index definition after ``ON t``)."""

    name: str
    columns: str
    indexes: dict[str, str] = field(default_factory=dict)

    def physical(self, generation: int) -> str:
        return f"rs_{self.name}_g{generation}"

    @property
    def view(self) -> str:
        return f"rs_{self.name}"


class ReadModel(Follower):
    """A follower that keeps tables. Subclasses declare ``model`` and ``tables`` and implement ``apply_batch``.

    ``generation=None`` follows the live generation (the serving follower); an integer pins the follower to that
    generation under the tracking name ``<model>:rebuild`` (the copy a rebuild fills).
    """

    model: ClassVar[str]
    tables: ClassVar[Sequence[Table]]
    batch_size = 1000
    gather_seconds = GATHER_SECONDS
    hurried = True
    durable = False  # rebuilt from the log at will: a batch lost in a crash is applied again

    def __init__(self, app: Rulestream, *, generation: int | None = None) -> None:
        self.app = app
        self.pinned = generation
        self.generation = generation or 1
        self.name = self.model if generation is None else self.model + REBUILD_SUFFIX

    # -- the tables of the generation in use ----------------------------------------------------------

    def t(self, logical: str) -> str:
        """The physical table of ``logical`` in the generation this follower writes, quoted for SQL."""
        return f'"rs_{logical}_g{self.generation}"'

    # -- Follower -------------------------------------------------------------------------------------

    def setup(self, cursor: psycopg.Cursor[DictRow]) -> None:
        ensure_pointers(cursor)
        if self.pinned is None:
            self.generation = live_generation(cursor, self.model)
            create_tables(cursor, self, self.generation, views=True)
        else:
            create_tables(cursor, self, self.generation, views=False)

    def apply(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        if self.pinned is None:
            cursor.execute(
                f"UPDATE {POINTERS} SET applied_at = now(), error = NULL WHERE name = %s RETURNING generation",
                (self.model,),
                prepare=True,
            )
            row = cursor.fetchone()
            self.generation = int(row["generation"]) if row else self.generation
        self.apply_batch(cursor, batch)

    def failed(self, error: BaseException) -> None:
        if self.pinned is not None:
            return
        with self.app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            conn.execute(
                f"UPDATE {POINTERS} SET error = %s, failed_at = now() WHERE name = %s",
                (f"{type(error).__name__}: {error}"[:2000], self.model),
            )

    @abstractmethod
    def apply_batch(self, cursor: psycopg.Cursor[DictRow], batch: Sequence[Recorded]) -> None:
        """Write the batch into this follower's generation (``self.t(...)``)."""


# -- schema -------------------------------------------------------------------------------------------


def ensure_pointers(cursor: psycopg.Cursor[Any]) -> None:
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {POINTERS} (name text PRIMARY KEY, generation int NOT NULL DEFAULT 1, "
        "applied_at timestamptz, error text, failed_at timestamptz)"
    )


def live_generation(cursor: psycopg.Cursor[Any], model: str) -> int:
    cursor.execute(f"INSERT INTO {POINTERS} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (model,))
    cursor.execute(f"SELECT generation FROM {POINTERS} WHERE name = %s", (model,))
    row = cursor.fetchone()
    assert row is not None
    return int(row["generation"] if isinstance(row, dict) else row[0])


def create_tables(cursor: psycopg.Cursor[Any], model: ReadModel, generation: int, *, views: bool) -> None:
    """Create the generation's tables and indexes if missing and, for the live one, the views onto them."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", DDL_LOCK)
    for table in model.tables:
        physical = table.physical(generation)
        cursor.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                sql.Identifier(physical), sql.SQL(table.columns)
            )
        )
        for suffix, definition in table.indexes.items():
            cursor.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} {}").format(
                    sql.Identifier(f"{physical}_{suffix}"), sql.Identifier(physical), sql.SQL(definition)
                )
            )
        if views:
            cursor.execute(
                "SELECT 1 FROM pg_views WHERE schemaname = current_schema() AND viewname = %s", (table.view,)
            )
            if cursor.fetchone() is None:
                point_view(cursor, table, generation)


def point_view(cursor: psycopg.Cursor[Any], table: Table, generation: int) -> None:
    """Point the view of ``table`` at ``generation``; inside a transaction, readers switch atomically.

    ``CREATE OR REPLACE`` keeps the view's identity, so a reader waiting on it reads the new generation; a model
    whose columns changed (a rebuild after an upgrade) needs the view dropped and created instead.
    """
    view, physical = sql.Identifier(table.view), sql.Identifier(table.physical(generation))
    try:
        with cursor.connection.transaction():
            cursor.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT * FROM {}").format(view, physical))
    except psycopg.errors.InvalidTableDefinition:
        cursor.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
        cursor.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(view, physical))


def drop_tables(cursor: psycopg.Cursor[Any], model: ReadModel, generation: int) -> None:
    for table in model.tables:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table.physical(generation))))


def ensure_schema(app: Rulestream, models: Sequence[ReadModel]) -> None:
    """Make every read model's live tables and views exist (an API process may start before any worker)."""
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
        ensure_pointers(cursor)
        for model in models:
            create_tables(cursor, model, live_generation(cursor, model.model), views=True)
