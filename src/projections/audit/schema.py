"""What PostgreSQL itself enforces on the event log, installed at start-up by the configured (privileged)
user.

- **Append-only**: a statement trigger refuses UPDATE, DELETE and TRUNCATE on the events table, for every
  role, superusers included (only disabling the trigger, which needs the table's owner, gets past it).
- **Tamper evidence**: a ``BEFORE INSERT`` trigger fills ``hash`` = SHA-256 over the previous event's hash of
  the same stream (32 zero bytes for the first) and the event's stored identity and bytes (see
  ``chain.event_hash``, which computes the same in Python for ``verify``). Rows recorded before the trigger
  existed are chained once, when it is installed.
- **The writer role**: ``rulestream_writer`` (NOLOGIN) may only SELECT and INSERT on the events table (and on
  the audit snapshots); it may do everything on the other tables (tracking, read models), and create tables.
  The server's pool connections take that role (``-c role=...`` at connect, i.e. ``SET ROLE``), so a bug in
  the server cannot rewrite history (injected SQL could ``RESET ROLE``: the triggers are the second wall).
  PostgreSQL lets only roles with UPDATE, DELETE or TRUNCATE take the ``EXCLUSIVE`` lock that the library's
  writers serialise on, so the writer takes the very same lock through ``rulestream_events_lock()``, a
  ``SECURITY DEFINER`` function of the table's owner; writers of both kinds exclude each other and positions
  still commit in order.

When the configured user may not create roles, the server warns and keeps writing as that user; the triggers
still hold. A role created beforehand by an administrator (and granted to the configured user) is used as is.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from eventsourcing.utils import get_topic
from psycopg import sql

from domain.application import Rulestream
from domain.delays import Delay

log = logging.getLogger("rulestream.audit")

WRITER_ROLE = "rulestream_writer"
VERSION = "rulestream audit schema 2"
"""Stored as the comment of the chain trigger's function: an installed schema of this version is left
alone."""
SNAPSHOTS_PURPOSE = "audit_snapshots"
GENESIS = b"\x00" * 32
"""The "previous hash" of the first event of every stream."""


def names(app: Rulestream) -> dict[str, sql.Composable]:
    recorder: Any = app.recorder
    schema = recorder.datastore.schema
    table = recorder.events_table_name

    def qualified(name: str) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))

    return {
        "schema": sql.Identifier(schema),
        "events": qualified(table),
        "sequence": qualified(f"{table}_notification_id_seq"),
        "tracking": qualified(recorder.tracking_table_name),
        "snapshots": qualified(f"{app.name}_{SNAPSHOTS_PURPOSE}"),
        "chain_fn": qualified(f"{table}_chain"),
        "refuse_fn": qualified(f"{table}_refuse_change"),
        "lock_fn": qualified(f"{table}_lock"),
        "chain_trigger": sql.Identifier(f"{table}_chain"),
        "append_only_trigger": sql.Identifier(f"{table}_append_only"),
        "writer": sql.Identifier(WRITER_ROLE),
        "writer_name": sql.Literal(WRITER_ROLE),
        "events_name": sql.Literal(f'"{schema}"."{table}"'),
        "snapshots_name": sql.Literal(f'"{schema}"."{app.name}_{SNAPSHOTS_PURPOSE}"'),
        "schema_name": sql.Literal(schema),
        "version": sql.Literal(VERSION),
        "genesis": sql.Literal(GENESIS),
        "delay_topic": sql.Literal(get_topic(Delay.DelayScheduled)),
        "delay_profile_fn": qualified(f"{table}_delay_profile"),
        "delay_profile_index": sql.Identifier(f"{table}_delay_profile"),
        "delay_profile_index_name": sql.Literal(f'"{schema}"."{table}_delay_profile"'),
    }


FUNCTIONS = """
CREATE OR REPLACE FUNCTION {chain_fn}() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE previous bytea;
BEGIN
    IF NEW.originator_version > 1 THEN  -- a stream's first event chains from the genesis hash
        SELECT e.hash INTO previous FROM {events} e
         WHERE e.originator_id = NEW.originator_id AND e.originator_version < NEW.originator_version
         ORDER BY e.originator_version DESC LIMIT 1;
    END IF;
    NEW.hash := sha256(coalesce(previous, {genesis}::bytea)
        || convert_to(NEW.originator_id::text || E'\\n' || NEW.originator_version::text || E'\\n'
                      || NEW.topic || E'\\n', 'UTF8')
        || NEW.state);
    RETURN NEW;
END $fn$;

CREATE OR REPLACE FUNCTION {refuse_fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'the event log %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $fn$;

CREATE OR REPLACE FUNCTION {lock_fn}() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    LOCK TABLE {events} IN EXCLUSIVE MODE;
END $fn$;
REVOKE ALL ON FUNCTION {lock_fn}() FROM PUBLIC;
"""

BACKFILL = """
DO $do$
DECLARE r record; previous bytea; stream uuid;
BEGIN
    FOR r IN SELECT originator_id, originator_version, topic, state FROM {events}
             ORDER BY originator_id, originator_version LOOP
        IF stream IS DISTINCT FROM r.originator_id THEN
            previous := {genesis}::bytea;
            stream := r.originator_id;
        END IF;
        previous := sha256(previous || convert_to(r.originator_id::text || E'\\n' ||
                    r.originator_version::text || E'\\n' || r.topic || E'\\n', 'UTF8') || r.state);
        UPDATE {events} SET hash = previous
         WHERE originator_id = r.originator_id AND originator_version = r.originator_version;
    END LOOP;
END $do$;
"""

TRIGGERS = """
DROP TRIGGER IF EXISTS {chain_trigger} ON {events};
CREATE TRIGGER {chain_trigger} BEFORE INSERT ON {events} FOR EACH ROW EXECUTE FUNCTION {chain_fn}();
DROP TRIGGER IF EXISTS {append_only_trigger} ON {events};
CREATE TRIGGER {append_only_trigger} BEFORE UPDATE OR DELETE OR TRUNCATE ON {events}
    FOR EACH STATEMENT EXECUTE FUNCTION {refuse_fn}();
COMMENT ON FUNCTION {chain_fn}() IS {version};
"""

DELAYS_BY_PROFILE = """
CREATE OR REPLACE FUNCTION {delay_profile_fn}(state bytea) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT convert_from(state, 'UTF8')::jsonb #>> '{{cause,profileId}}' $fn$;
CREATE INDEX IF NOT EXISTS {delay_profile_index} ON {events} ({delay_profile_fn}(state), notification_id)
    WHERE topic = {delay_topic};
"""
"""The delays a profile's events scheduled, for its history: a delay's stream is named after its trigger and
rule, not its profile, so the profile is found in the stored ``cause`` (plain JSON: never sealed).
``convert_from`` is only stable in general; the log is UTF-8 JSON whatever the server's settings, which makes
this use immutable."""

CREATE_ROLE = """
DO $do$ BEGIN
    CREATE ROLE {writer} NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- roles are per cluster: another database won
END $do$;
"""

GRANTS = """
GRANT USAGE, CREATE ON SCHEMA {schema} TO {writer};
GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {writer};
GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {writer};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT ALL ON TABLES TO {writer};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT ALL ON SEQUENCES TO {writer};
REVOKE ALL ON {events}, {snapshots} FROM {writer};
GRANT SELECT, INSERT ON {events}, {snapshots} TO {writer};
REVOKE ALL ON SEQUENCE {sequence} FROM {writer};
GRANT USAGE ON SEQUENCE {sequence} TO {writer};
GRANT EXECUTE ON FUNCTION {lock_fn}() TO {writer};
DO $do$
DECLARE r record;
BEGIN  -- tables and views made before the role existed (an upgrade): the server's role owns what it rebuilds
    FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
              WHERE c.relnamespace = {schema_name}::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
                AND pg_get_userbyid(c.relowner) = current_user
                AND c.oid NOT IN ({events_name}::regclass, {snapshots_name}::regclass) LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I',
                       CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                       r.name, {writer_name});
    END LOOP;
END $do$;
"""


def _run(cursor: psycopg.Cursor[Any], template: str, n: dict[str, sql.Composable]) -> None:
    cursor.execute(sql.SQL(template).format(**n))  # built from the constants above


def install(app: Rulestream) -> bool:
    """Install (or upgrade) triggers, functions, the snapshot table and grants; answer if the writer role is
    usable.

    Idempotent and safe to run from many processes at once: installers of one database queue on an advisory
    lock.
    """
    from projections.audit.asof import snapshot_recorder  # the snapshot table is the library's own DDL

    snapshot_recorder(app).create_table()
    n = names(app)
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
        cursor.execute(
            "SET LOCAL lock_timeout = '30s'"
        )  # fail start-up rather than wait forever behind a lock
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('rulestream-audit-schema'))")
        cursor.execute(
            sql.SQL("SELECT obj_description(to_regprocedure({}), 'pg_proc') AS v").format(
                sql.Literal(n["chain_fn"].as_string(conn) + "()")
            )
        )
        row = cursor.fetchone()
        if (row["v"] if row else None) != VERSION:
            _install_log_guards(cursor, n)
            log.info("installed the audit schema (%s)", VERSION)
        _run(cursor, "SELECT to_regclass({delay_profile_index_name}) AS found", n)
        row = cursor.fetchone()
        if not (row and row["found"]):  # left alone when it exists: CREATE IF NOT EXISTS would lock the log
            _run(cursor, DELAYS_BY_PROFILE, n)
        return _prepare_writer(cursor, n)


def _install_log_guards(cursor: psycopg.Cursor[Any], n: dict[str, sql.Composable]) -> None:
    # Writers wait while the column, the back-filled hashes and the triggers appear together.
    _run(cursor, "LOCK TABLE {events} IN EXCLUSIVE MODE", n)
    _run(cursor, "ALTER TABLE {events} ADD COLUMN IF NOT EXISTS hash bytea", n)
    _run(cursor, FUNCTIONS, n)
    _run(cursor, "DROP TRIGGER IF EXISTS {append_only_trigger} ON {events}", n)
    _run(cursor, "SELECT 1 FROM {events} WHERE hash IS NULL LIMIT 1", n)
    if cursor.fetchone():
        _run(cursor, BACKFILL, n)
    _run(cursor, TRIGGERS, n)


def _prepare_writer(cursor: psycopg.Cursor[Any], n: dict[str, sql.Composable]) -> bool:
    """Create the writer role if allowed, grant it its rights, and answer whether this user may take it."""
    cursor.execute("SAVEPOINT writer_role")
    try:
        _run(cursor, CREATE_ROLE, n)
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
        if not (row and row["rolsuper"]):
            _run(cursor, "GRANT {writer} TO CURRENT_USER", n)
        _run(cursor, GRANTS, n)
    except psycopg.errors.InsufficientPrivilege as error:
        cursor.execute("ROLLBACK TO SAVEPOINT writer_role")
        log.warning(
            "cannot prepare the role %s (%s): the server writes as the configured user; the append-only and "
            "hash-chain triggers still hold",
            WRITER_ROLE,
            str(error).strip(),
        )
        return False
    cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER') AS member", (WRITER_ROLE,))
    row = cursor.fetchone()
    return bool(row and row["member"])


def secure(app: Rulestream) -> Rulestream:
    """Install the audit schema, then let the app's connections write as the writer role; answer the app."""
    if install(app):
        use_writer_role(app)
    return app


def use_writer_role(app: Rulestream) -> None:
    """Make every connection of the app's pool (and the followers' own connections) take the writer role."""
    recorder: Any = app.recorder
    datastore = recorder.datastore
    n = names(app)
    # The writer may not LOCK the events table itself: it takes the same lock through the owner's function.
    recorder.lock_table_statements = [
        recorder.lock_table_statements[0],  # SET LOCAL lock_timeout
        sql.SQL("SELECT {}()").format(n["lock_fn"]),
    ]
    kwargs = datastore.pool.kwargs
    kwargs["options"] = f"{kwargs.get('options', '')} -c role={WRITER_ROLE}".strip()
    datastore.pool.drain()
