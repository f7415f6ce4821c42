"""The database settings as an operator gives them: a ``DATABASE_URL`` with libpq parameters."""

from __future__ import annotations

import os
import subprocess
import sys

from psycopg.conninfo import conninfo_to_dict

from tests.conftest import drop_database, fresh_database

PROBE = """
from api.bootstrap import open_application
from api.settings import Settings
app = open_application(Settings())
with app.recorder.datastore.get_connection() as conn:
    print(conn.execute("SELECT current_setting('application_name') AS a").fetchone()["a"])
"""


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"DATABASE_URL": url}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)


def test_the_urls_libpq_parameters_reach_every_connection_and_the_printed_url() -> None:
    database = fresh_database("rulestream_settings")
    try:
        url = f"{database}?application_name=rs_probe&connect_timeout=7"
        probed = run(url, "-c", PROBE)
        assert probed.returncode == 0, probed.stderr
        assert probed.stdout.strip() == "rs_probe"  # a connection of the library's pool, not only the first one
        printed = run(url, "-m", "api.cli", "db", "url")
        assert conninfo_to_dict(printed.stdout.strip()) == conninfo_to_dict(url), printed.stderr
    finally:
        drop_database(database)


def test_a_url_parameter_libpq_does_not_know_is_one_line_of_error() -> None:
    done = run("postgresql://postgres@127.0.0.1:5432/x?no_such_thing=1", "-m", "api.cli", "keys", "list")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr  # a setting's error
    assert done.stderr.startswith("error: database_url: ") and "no_such_thing" in done.stderr


def test_a_bad_setting_is_one_line_without_its_value() -> None:
    env = {**os.environ, "RULESTREAM_PORT": "abc", "RULESTREAM_ENV": "production",
           "RULESTREAM_INTEGRATION_KEY": "changeme"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "api.cli", "keys", "list"], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr and "changeme" not in done.stderr, done.stderr
    assert "error: RULESTREAM_PORT" in done.stderr


def test_a_worker_makes_no_development_keys_and_keys_list_to_a_pipe_is_whole() -> None:
    import time

    database = fresh_database("rulestream_worker_keys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {
        "DATABASE_URL": database, "RULESTREAM_INTEGRATION_KEY": "", "RULESTREAM_MANAGEMENT_KEY": ""}
    try:
        worker = subprocess.Popen([sys.executable, "-m", "api.cli", "worker", "projections"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while "worker projections" not in (worker.stdout.readline() if worker.stdout else ""):
                assert time.monotonic() < deadline and worker.poll() is None, "the worker did not start"
        finally:
            worker.terminate()
            worker.communicate(timeout=30)
        listed = subprocess.run([sys.executable, "-m", "api.cli", "keys", "list"], env=env, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
        assert listed.stdout.splitlines() == ["name\trole\tcreated\trevoked"], listed.stdout + listed.stderr
        made = subprocess.run([sys.executable, "-m", "api.cli", "keys", "create", "--role", "auditor", "--name",
                               "a"], env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert made.returncode == 0, made.stderr
        listed = subprocess.run([sys.executable, "-m", "api.cli", "keys", "list"], env=env, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
        name, role, created, revoked = listed.stdout.splitlines()[1].split("\t")
        assert (name, role, revoked) == ("a", "auditor", "") and created.endswith("+00:00")
    finally:
        drop_database(database)


def test_a_port_out_of_range_is_one_line() -> None:
    for env, args in [({}, ["serve", "--port", "99999"]), ({"RULESTREAM_PORT": "-5"}, ["serve"])]:
        done = subprocess.run([sys.executable, "-m", "api.cli", *args], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2 and "Traceback" not in done.stderr and "port" in done.stderr.lower(), done.stderr
