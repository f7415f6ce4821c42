"""The log cannot be altered unseen: PostgreSQL refuses changes, and a change forced past it breaks a hash
chain."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from api.settings import Settings
from domain.application import Rulestream, session_id
from projections.audit import chain
from projections.audit.schema import WRITER_ROLE
from tests.builders import session_changes

CHANGES = {
    "UPDATE": "UPDATE rulestream_events SET topic = topic",
    "DELETE": "DELETE FROM rulestream_events",
    "TRUNCATE": "TRUNCATE rulestream_events",
}


def new_session(app: Rulestream) -> str:
    sid = f"s-{uuid.uuid4().hex[:10]}"
    app.update_session(sid, session_changes(profile=None), None)
    app.update_session(sid, {}, "closed")
    return sid


def test_the_server_writes_as_the_writer_role_which_may_only_insert_and_select_events(
    app: Rulestream,
) -> None:
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            "SELECT current_user AS who, has_table_privilege('rulestream_events', 'INSERT') AS i, "
            "has_table_privilege('rulestream_events', 'SELECT') AS s, "
            "has_table_privilege('rulestream_events', 'UPDATE') AS u, "
            "has_table_privilege('rulestream_events', 'DELETE') AS d, "
            "has_table_privilege('rulestream_events', 'TRUNCATE') AS t"
        ).fetchone()
    assert row == {"who": WRITER_ROLE, "i": True, "s": True, "u": False, "d": False, "t": False}
    new_session(app)  # and it writes (taking the writers' lock through the owner's function)


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_writer_role_is_refused_every_change_of_stored_events(app: Rulestream, change: str) -> None:
    new_session(app)
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(CHANGES[change])


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_trigger_refuses_every_change_even_to_a_superuser(
    app: Rulestream, superuser: psycopg.Connection[Any], change: str
) -> None:
    new_session(app)
    before = superuser.execute("SELECT count(*) FROM rulestream_events").fetchone()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"append-only: {change} refused"):
        superuser.execute(CHANGES[change])
    assert superuser.execute("SELECT count(*) FROM rulestream_events").fetchone() == before


def test_every_event_is_chained_and_the_chains_verify(app: Rulestream) -> None:
    new_session(app)
    result = chain.verify(app)
    assert result.ok and result.events >= 2 and result.streams >= 1


def test_a_schema_installed_by_an_earlier_version_is_upgraded_and_chains_as_before(
    app: Rulestream, superuser: psycopg.Connection[Any], audit_settings: Settings
) -> None:
    from api.bootstrap import open_application
    from projections.audit import schema

    function = "rulestream_events_chain()"
    superuser.execute(f"COMMENT ON FUNCTION {function} IS 'rulestream audit schema 1'")
    open_application(audit_settings).close()  # a server's start installs what is not of its version
    comment = superuser.execute(f"SELECT obj_description(to_regprocedure('{function}'), 'pg_proc')").fetchone()
    assert comment == (schema.VERSION,)
    body = superuser.execute(f"SELECT pg_get_functiondef(to_regprocedure('{function}'))").fetchone()
    assert body is not None and "NEW.originator_version > 1" in str(body[0])  # this version's function
    sid = new_session(app)  # a first event (no lookup) and a later one (chained on it)
    rows = superuser.execute(
        "SELECT originator_id, originator_version, topic, state, hash FROM rulestream_events "
        "WHERE originator_id = %s ORDER BY originator_version",
        (session_id(sid),),
    ).fetchall()
    assert [r[1] for r in rows] == [1, 2]
    previous = None
    for stream, version, topic, state, stored in rows:
        assert stored == chain.event_hash(previous, stream, version, topic, state)
        previous = stored
    assert chain.verify(app).ok


def test_a_row_altered_past_the_trigger_is_reported_as_the_first_broken_link(
    app: Rulestream, superuser: psycopg.Connection[Any]
) -> None:
    sid = new_session(app)
    stream = session_id(sid)
    original = superuser.execute(
        "SELECT state FROM rulestream_events WHERE originator_id = %s AND originator_version = 2", (stream,)
    ).fetchone()
    assert original is not None
    forged = bytes(original[0]).replace(b'"changes"', b'"chaNges"')
    _as_superuser_bypassing_the_guard(
        superuser,
        "UPDATE rulestream_events SET state = %s WHERE originator_id = %s AND originator_version = 2",
        (forged, stream),
    )
    try:
        result = chain.verify(app)
        assert not result.ok
        assert [(b.stream_id, b.version) for b in result.broken] == [(stream, 2)]
        assert "hash mismatch" in result.broken[0].reason
    finally:
        _as_superuser_bypassing_the_guard(
            superuser,
            "UPDATE rulestream_events SET state = %s WHERE originator_id = %s AND originator_version = 2",
            (bytes(original[0]), stream),
        )
    assert chain.verify(app).ok


def test_a_deleted_event_breaks_the_chain_at_the_next_one(
    app: Rulestream, superuser: psycopg.Connection[Any]
) -> None:
    sid = f"s-{uuid.uuid4().hex[:10]}"
    app.update_session(sid, session_changes(profile=None), None)
    app.update_session(sid, {"cartItems": []}, None)
    app.update_session(sid, {}, "closed")
    stream = session_id(sid)
    row = superuser.execute(
        "SELECT * FROM rulestream_events WHERE originator_id = %s AND originator_version = 2", (stream,)
    ).fetchone()
    assert row is not None
    _as_superuser_bypassing_the_guard(
        superuser,
        "DELETE FROM rulestream_events WHERE originator_id = %s AND originator_version = 2",
        (stream,),
    )
    try:
        broken = chain.verify(app).broken
        assert [(b.stream_id, b.version) for b in broken] == [(stream, 3)]
        assert "missing" in broken[0].reason
    finally:
        with superuser.transaction():
            superuser.execute("ALTER TABLE rulestream_events DISABLE TRIGGER USER")
            superuser.execute("INSERT INTO rulestream_events VALUES (%s, %s, %s, %s, %s, %s)", row)
            superuser.execute("ALTER TABLE rulestream_events ENABLE TRIGGER USER")
    assert chain.verify(app).ok


def _as_superuser_bypassing_the_guard(
    conn: psycopg.Connection[Any], statement: str, params: tuple[Any, ...]
) -> None:
    with conn.transaction():
        conn.execute("ALTER TABLE rulestream_events DISABLE TRIGGER rulestream_events_append_only")
        conn.execute(statement, params)
        conn.execute("ALTER TABLE rulestream_events ENABLE TRIGGER rulestream_events_append_only")
