"""``rulestream audit verify`` and ``rulestream audit export``, run as an operator runs them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg

from domain.application import Rulestream, session_id
from projections.audit.chain import event_hash
from tests.builders import session_changes


def rulestream(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_exported_profile_holds_its_sessions_and_its_chains_check_without_the_database(
    app: Rulestream, audit_url: str, tmp_path: Path
) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    sessions = [f"{pid}-s{n}" for n in range(2)]
    for sid in sessions:
        app.update_session(sid, session_changes(profile=pid), "closed")
    out = tmp_path / "profile.ndjson"

    done = rulestream(audit_url, "audit", "export", "--profile", pid, "--out", str(out))

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    streams = list(dict.fromkeys(line["streamId"] for line in lines))
    assert streams[1:] == [str(session_id(s)) for s in sessions] and len(lines) == 5 + 2 * 2
    previous: dict[str, bytes] = {}
    for line in lines:  # what an external auditor can do with the file alone
        stored = base64.b64decode(line["stored"])
        digest = event_hash(
            previous.get(line["streamId"]),
            uuid.UUID(line["streamId"]),
            line["version"],
            line["topic"],
            stored,
        )
        assert digest.hex() == line["hash"]
        previous[line["streamId"]] = digest


def test_verify_reports_the_altered_event_by_stream_and_version(
    app: Rulestream, audit_url: str, superuser: psycopg.Connection[Any]
) -> None:
    sid = f"s-{uuid.uuid4().hex[:8]}"
    app.update_session(sid, session_changes(profile=None), "closed")
    assert rulestream(audit_url, "audit", "verify").returncode == 0
    stream = session_id(sid)
    where = "WHERE originator_id = %s AND originator_version = 1"
    with superuser.transaction():
        superuser.execute("ALTER TABLE rulestream_events DISABLE TRIGGER USER")
        superuser.execute(
            f"UPDATE rulestream_events SET topic = 'domain.session:CustomerSession.Updated' {where}",
            (stream,),
        )
        superuser.execute("ALTER TABLE rulestream_events ENABLE TRIGGER USER")

    done = rulestream(audit_url, "audit", "verify")

    assert done.returncode == 1
    assert f"stream {stream} version 1" in done.stderr.replace("\n", " ")


def test_a_database_that_is_away_or_a_wrong_url_is_one_line_not_a_traceback() -> None:
    for url, args in [("postgresql://postgres@127.0.0.1:1/nowhere", ("keys", "list")),
                      ("postgresql://postgres@127.0.0.1:1/nowhere", ("audit", "verify"))]:  # fmt: skip
        done = rulestream(url, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.startswith("error: the database: ") and "Traceback" not in done.stderr, done.stderr
    wrong = rulestream("not a url", "db", "url")  # a setting that is not one: refused as settings are
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: database_url: "), wrong.stderr


def test_exporting_a_session_or_profile_that_does_not_exist_is_an_error(audit_url: str) -> None:
    for flag in ("--session", "--profile"):
        done = rulestream(audit_url, "audit", "export", flag, "no-such-id")
        assert done.returncode == 1 and "no-such-id" in done.stderr and "Traceback" not in done.stderr, done.stderr
