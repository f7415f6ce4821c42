"""``rulestream audit verify`` and ``rulestream audit export``: the audit trail from the command line.

    rulestream audit verify                                 recompute every hash chain (exit 1 if one is
    broken) rulestream audit export --session ID | --profile ID | --since T [--until T]  [--out FILE]

Exports are NDJSON, one stored event per line with its hash and stored bytes (base64), written as they are
read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.bootstrap import open_application
from api.settings import Settings
from api.wire.json import dumps
from domain.application import session_id
from projections.audit import chain, export
from projections.audit.log import AuditLog

console = Console(stderr=True)


def add_commands(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``audit verify`` and ``audit export`` on the root parser's subcommands."""
    audit = commands.add_parser(
        "audit", help="verify the log's hash chains, export histories as NDJSON", parents=parents
    )
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser(
        "verify", help="recompute every stream's hash chain; report the first broken link", parents=parents
    )
    out = audit_commands.add_parser(
        "export", help="write events as NDJSON, one per line, with their hashes", parents=parents
    )
    what = out.add_mutually_exclusive_group(required=True)
    what.add_argument("--session", help="a customer session's integration id")
    what.add_argument(
        "--profile", help="a customer profile's integration id: its stream and all its sessions'"
    )
    what.add_argument("--since", type=datetime.fromisoformat, help="events recorded at or after (ISO 8601)")
    out.add_argument("--until", type=datetime.fromisoformat, help="with --since: recorded before (ISO 8601)")
    out.add_argument("--out", type=Path, help="file to write (default: standard output)")
    audit.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    app = open_application(settings)
    try:
        return verify(app) if args.audit_command == "verify" else export_ndjson(app, args)
    finally:
        app.close()


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def verify(app: Any) -> int:
    with _bar() as progress:
        task = progress.add_task("verifying", total=chain.count(app))
        result = chain.verify(app, lambda n: progress.advance(task, n))
    if result.ok:
        console.print(f"[green]ok[/]: {result.events} events in {result.streams} streams, every chain intact")
        return 0
    for broken in result.broken:
        console.print(
            f"[red]broken[/]: stream {broken.stream_id} version {broken.version} "
            f"(position {broken.position}): {broken.reason}"
        )
    return 1


def export_ndjson(app: Any, args: argparse.Namespace) -> int:
    log = AuditLog(app)
    with _bar() as progress:
        task = progress.add_task("exporting", total=None)

        def advance(n: int) -> None:
            progress.advance(task, n)

        entries: Iterator[dict[str, Any]]
        if args.since is not None:
            progress.update(task, total=chain.count(app))
            entries = export.time_range(log, args.since, args.until, advance)
        else:
            ids = (
                [session_id(args.session)] if args.session else export.profile_and_sessions(log, args.profile)
            )
            total = sum(log.head_version(i) for i in ids)
            if total == 0:  # as the API's history answers 404: an id that names nothing is a mistake, not "0"
                progress.stop()
                what = f"session '{args.session}'" if args.session else f"profile '{args.profile}'"
                console.print(f"[red]error:[/] no {escape(what)}")
                return 1
            progress.update(task, total=total)
            entries = export.streams(log, ids, advance)
        written = _write(entries, args.out)
    console.print(f"exported {written} events" + (f" to {args.out}" if args.out else ""))
    return 0


def _write(entries: Iterator[dict[str, Any]], path: Path | None) -> int:
    target: IO[bytes] = path.open("wb") if path else sys.stdout.buffer
    written = 0
    try:
        for entry in entries:
            target.write(dumps(entry) + b"\n")
            written += 1
    finally:
        if path:
            target.close()
        else:
            target.flush()
    return written
