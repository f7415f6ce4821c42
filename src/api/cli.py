"""The ``rulestream`` command line.

    rulestream serve [--host H] [--port P]      API, policy and projections in one process (--split: in three)
    rulestream api [--host H] [--port P]        the API alone (production: any number of these)
    rulestream worker policy|projections        followers of the log, as their own process
    rulestream keys create --role R --name N    print a new key, and nothing else
    rulestream keys list | keys revoke NAME
    rulestream db url                           the connection URL of the database in use
    rulestream audit verify | audit export ...  hash chains of the log; NDJSON exports (see ``api.audit_cli``)

The database is ``DATABASE_URL`` (or ``POSTGRES_*``); without either, an embedded PostgreSQL in the data
directory (``--data-dir``, ``RULESTREAM_DATA_DIR``; see ``api.embedded``). ``api.settings.Settings`` lists
every setting.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import psycopg
import uvicorn
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api import audit_cli, embedded, gc_tuning, projections_cli
from api.app import create_app
from api.bootstrap import open_application, start
from api.settings import Settings
from api.supervisor import Supervisor, tell_ready, watch_parent
from domain.errors import DomainError
from domain.keys import ROLES
from projections import registry
from projections.follower import FollowerRunner

console = Console(stderr=True)

KEEP_ALIVE_SECONDS = 75
"""How long an idle client connection stays open (uvicorn's default is 5 s). Clients keep connections in pools
and reuse them after pauses; a server that closes first races their next request, which then fails with a reset
(the soak saw one such failure in 21k requests). Longer than the usual 60 s idle timeout of load balancers."""


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    host = args.host or settings.host
    port = args.port or settings.port
    started = start(settings)
    console.print(f"[bold]Rulestream[/] on {settings.url(password=False)}", soft_wrap=True)
    if started.new_keys:
        out = Console()
        out.print("Development keys, shown once (store them now):")
        for name, key in started.new_keys.items():
            out.print(f"  {name}: {key}", soft_wrap=True)
    runners = []
    children = None
    app = None
    try:
        if args.command == "serve" and not args.split:
            groups = (registry.POLICY, registry.PROJECTIONS)
            runners = [FollowerRunner(started.rulestream, f) for f in registry.followers(started.rulestream, *groups)]
            for runner in runners:
                runner.thread()
        elif args.command == "serve":
            children = Supervisor(WORKER_GROUPS, settings.url())
            children.start()  # the API listens once the policy runs: the first command gets its effects
            pids = ", ".join(f"{c.group} {c.process.pid}" for c in children.children if c.process)
            console.print(f"Workers (their own processes): {pids}")
        console.print(f"Listening on http://{host}:{port}  (docs at /docs)")
        gc_tuning.settle()
        if args.command == "api" and args.workers > 1:
            # Several API processes on one port (the API is stateless): each builds its own app from the same
            # settings, which the environment carries (an embedded database's URL included).
            os.environ["DATABASE_URL"] = settings.url()
            os.environ["RULESTREAM_SOLE_WRITER"] = "n"  # each worker's cache may miss the others' writes
            uvicorn.run("api.app:from_environment", factory=True, workers=args.workers, host=host, port=port,
                        log_level="warning", access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS)  # fmt: skip
        else:
            app = create_app(settings, started.rulestream)
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                        timeout_keep_alive=KEEP_ALIVE_SECONDS)  # fmt: skip
    finally:
        # In order, before the database goes (the embedded one stops when this returns): a thread still using it
        # would log its connection's end as an error.
        for runner in runners:
            runner.stop()
        for runner in runners:
            runner.shut_down(SHUTDOWN_SECONDS)
        if children is not None:
            children.stop()
        if app is not None:
            app.state.effects.stop(SHUTDOWN_SECONDS)
    return 0


SHUTDOWN_SECONDS = 10.0
"""How long a stopping process waits for each of its threads to finish what it is doing."""


def _port(text: str) -> int:
    """A TCP port (argparse answers a bad one with a usage line and exit 2)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535)")
    return port


WORKER_GROUPS = ("policy", "projections")
ELECTION_WAIT_SECONDS = 10.0
"""How long a worker waits for its followers' elections before it reports ready anyway: another process may
hold them (a second ``serve`` on the same database), and this one then stands by."""


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run one group of followers (``policy`` or ``projections``) until interrupted."""
    # It writes no session, profile or catalog; and it prints no keys: the API process makes the development pair.
    app = start(settings.model_copy(update={"sole_writer": False}), development_keys=False).rulestream
    group = registry.POLICY if args.group == "policy" else registry.PROJECTIONS
    runners = [FollowerRunner(app, f) for f in registry.followers(app, group)]
    for runner in runners:
        runner.thread()
    console.print(f"worker {args.group}: {', '.join(r.follower.name for r in runners) or 'nothing to run'}")
    stop = threading.Event()
    watch_parent(stop)
    try:
        deadline = time.monotonic() + ELECTION_WAIT_SECONDS
        for runner in runners:
            runner.elected.wait(max(0.0, deadline - time.monotonic()))
        gc_tuning.settle()
        tell_ready()
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for runner in runners:
            runner.stop()
        for runner in runners:  # each finishes the batch it is applying
            runner.shut_down(SHUTDOWN_SECONDS)
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    app = open_application(settings)
    if args.keys_command == "create":
        sys.stdout.write(app.issue_key(args.name, args.role) + "\n")
    elif args.keys_command == "revoke":
        app.revoke_key(args.name)
        console.print(f"revoked {args.name}")
    else:
        rows = [(k.name, k.role, k.created.isoformat(), k.revoked.isoformat() if k.revoked else "") for k in app.keys()]
        if sys.stdout.isatty():
            table = Table("name", "role", "created", "revoked")
            for row in rows:
                table.add_row(*row)
            Console().print(table)
        else:  # to a pipe or a file: whole values, a line each, tab-separated (a table would be cut to 80 columns)
            sys.stdout.writelines("\t".join(row) + "\n" for row in [("name", "role", "created", "revoked"), *rows])
    return 0


def _db(settings: Settings, _: argparse.Namespace) -> int:
    """Print the URL of the database in use; the embedded one only while a Rulestream process runs it."""
    if settings.has_database:
        sys.stdout.write(settings.url() + "\n")
        return 0
    url = embedded.running_url(settings)
    if url is None:
        where = embedded.cluster_dir(settings)
        console.print(f"The embedded PostgreSQL in {where} is not running: it runs while Rulestream does "
                      "(rulestream serve).", soft_wrap=True)
        return 1
    sys.stdout.write(url + "\n")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="rulestream", description=__doc__.split("\n\n")[0].replace("``", ""))
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                          help="where the embedded PostgreSQL keeps its data, when no DATABASE_URL is set "
                               "(RULESTREAM_DATA_DIR, default: the user data directory)")
    root.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    commands = root.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run the API, the policy and the projections"), ("api", "run the API only")):
        cmd = commands.add_parser(name, help=text, parents=[data_dir])
        cmd.add_argument("--host", help="address to listen on (RULESTREAM_HOST, default 127.0.0.1)")
        cmd.add_argument("--port", type=_port, help="port to listen on (RULESTREAM_PORT, default 8000)")
        if name == "api":
            cmd.add_argument("--workers", type=int, default=1, help="API processes sharing the port (default 1)")
        else:
            cmd.add_argument(
                "--split",
                action="store_true",
                help="run the policy and the projections as two supervised child processes instead of as "
                "threads of this one (production's shape on one machine: on two cores about 1.5-1.9x the "
                "requests per second)",
            )
        cmd.set_defaults(run=_serve)
    worker = commands.add_parser(
        "worker", help="run followers of the log: the rule policy or the projections", parents=[data_dir]
    )
    worker.add_argument("group", choices=["policy", "projections"])
    worker.set_defaults(run=_worker)
    keys = commands.add_parser("keys", help="create, list and revoke API keys", parents=[data_dir])
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key and print it", parents=[data_dir])
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True)
    key_commands.add_parser("list", help="list keys (never their secrets)", parents=[data_dir])
    revoke = key_commands.add_parser("revoke", help="revoke a key by name", parents=[data_dir])
    revoke.add_argument("name")
    keys.set_defaults(run=_keys)
    db = commands.add_parser("db", help="database helpers", parents=[data_dir])
    db.add_argument("db_command", choices=["url"], help="url: print the connection URL of the database in use")
    db.set_defaults(run=_db)
    audit_cli.add_commands(commands, parents=[data_dir])
    projections_cli.add_commands(commands, parents=[data_dir])
    return root


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SIGTERM stops like Ctrl+C, so that cleanup runs (threads, the embedded server): by default it ends the
    # process on the spot, and uvicorn re-raises it after its own graceful shutdown.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    except ValidationError as invalid:  # one line each, without the values (they may be secrets)
        for problem in invalid.errors():
            field = ".".join(str(part) for part in problem["loc"]) or "settings"
            console.print(f"[red]error:[/] {escape(field)}: {escape(problem['msg'])}", soft_wrap=True, highlight=False)
        return 2
    try:
        if args.command == "db":
            return _db(settings, args)
        if not settings.has_database and args.command in ("serve", "api", "worker"):
            where = embedded.cluster_dir(settings)
            console.print(f"Embedded PostgreSQL (no DATABASE_URL): data in {where}", soft_wrap=True)
        with embedded.database(settings) as settings:
            return int(args.run(settings, args))
    except DomainError as error:
        console.print(f"[red]error:[/] {error.message}")
        return 2
    except (psycopg.OperationalError, psycopg.InterfaceError, StoreOperationalError, StoreInterfaceError) as error:
        # The database is away, refuses us, or is not where the URL says: one line, no traceback (a bug's
        # error, e.g. a ProgrammingError, still shows its traceback).
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        console.print(f"[red]error:[/] the database: {escape(reason)}", soft_wrap=True, highlight=False)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
