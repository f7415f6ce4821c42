"""An embedded PostgreSQL for when no database is configured: real PostgreSQL from the ``pgserver`` wheel.

With neither ``DATABASE_URL`` nor ``POSTGRES_HOST`` set, Rulestream starts a private PostgreSQL server whose
cluster lives in ``<data dir>/postgres`` and which listens only on a Unix socket in that folder (no TCP
port: nothing to collide with, nothing reachable from the network). For development, demos and one small
node; production points ``DATABASE_URL`` at a server of its own.

Sharing: every process that opens the same data directory registers its pid in ``.handle_pids.json`` in the
cluster folder, under ``pgserver``'s inter-process lock. The first starts the server, the others connect to
it, the last to leave stops it. Pids of processes that died without leaving (``kill -9``) are pruned before
joining, or the server would never be stopped again.

As root, ``pgserver`` runs the server as a system user ``pgserver`` (created when missing: PostgreSQL
refuses to run as root), gives it the cluster folder, and opens read and traverse permission on the folders
above it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from api.settings import Settings

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

CLUSTER = "postgres"
"""The cluster's folder inside the data directory."""


def cluster_dir(settings: Settings) -> Path:
    return settings.data_dir.expanduser().resolve() / CLUSTER


def _pgserver() -> ModuleType:
    # Imported late and quietly: importing it runs platformdirs' runtime-dir lookup, which warns when
    # XDG_RUNTIME_DIR is unset (root shells, containers); the fallback it then uses is fine for its lock file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def _prune_departed(pgdata: Path) -> None:
    """Forget the processes registered on the server that no longer run, so the last one alive stops it."""
    from pgserver.utils import DiskList, process_is_running

    with _pgserver().PostgresServer._lock:  # the lock pgserver itself takes around the same list
        handles = DiskList(pgdata / ".handle_pids.json")
        for pid in handles.get():
            if not process_is_running(pid):
                handles.get_and_remove(pid)


def _start(pgdata: Path) -> PostgresServer:
    pgserver = _pgserver()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _prune_departed(pgdata)
    server: PostgresServer = pgserver.get_server(pgdata, cleanup_mode="stop")
    return server


@contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """The settings on the database in use: the configured one, or an embedded server started meanwhile.

    Leaving stops the embedded server, unless another Rulestream process on the same data directory uses it.
    """
    if settings.has_database:
        yield settings
        return
    pgdata = cluster_dir(settings)
    server = _start(pgdata)
    try:
        yield settings.model_copy(update={"database_url": server.get_uri(settings.conninfo["dbname"])})
    finally:
        if os.name == "posix" and os.geteuid() == 0:
            # pg_ctl stop runs as the pgserver user too: give it back the way in, should something have closed
            # a folder above the cluster since the start (pytest does so to its base temp folder), or the
            # server would be killed instead of stopped.
            from pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(pgdata)
        server.cleanup()


def running_url(settings: Settings) -> str | None:
    """The URL of this data directory's embedded server if it runs now (without starting or joining it)."""
    pgdata = cluster_dir(settings)
    _pgserver()
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    except AssertionError:  # postmaster.pid half-written: the server is starting or stopping
        return None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    url = info.get_uri(database=settings.conninfo["dbname"])
    return settings.model_copy(update={"database_url": url}).url()
