"""``rulestream projections rebuild NAME`` and ``rulestream projections status``.

    rulestream projections rebuild events_log      rebuild beside the live copy, then switch readers over
    rulestream projections status                  checkpoint, head, lag and state of every read model

The rebuild shows a progress bar (log positions done / total, rate, ETA) on stderr; the API keeps answering
from the live copy meanwhile, wherever it runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.bootstrap import open_application
from api.settings import Settings
from projections import status
from projections.rebuild import Rebuild
from projections.registry import READ_MODELS

console = Console(stderr=True)


class RateColumn(TextColumn):
    """Events per second, from rich's own speed estimate."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:
        speed = task.finished_speed or task.speed
        return console.render_str(f"{speed:,.0f} ev/s" if speed else "– ev/s", style="progress.data.speed")


def add_commands(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``projections rebuild`` and ``projections status`` on the root parser's subcommands."""
    cmd = commands.add_parser("projections", help="rebuild read models from the log; show their status",
                              parents=parents)  # fmt: skip
    sub = cmd.add_subparsers(dest="projections_command", required=True)
    rebuild = sub.add_parser("rebuild", help="rebuild a read model beside the live one, then switch readers",
                             parents=parents)  # fmt: skip
    rebuild.add_argument("name", choices=sorted(READ_MODELS))
    sub.add_parser("status", help="checkpoint, head, lag and state of every read model", parents=parents)
    cmd.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    app = open_application(settings)
    try:
        if args.projections_command == "status":
            table = Table("name", "state", "checkpoint", "head", "lag (events)", "lag (s)", "error")
            for p in status.status(app):
                table.add_row(p["name"], p["state"], str(p["checkpoint"]), str(p["head"]), str(p["lagEvents"]),
                              f"{p['lagSeconds']:.1f}", p["error"] or "")  # fmt: skip
            Console().print(table)
            return 0
        status.ensure(app)
        columns = (
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        )  # fmt: skip
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"rebuild {args.name}", total=None)
            done = Rebuild(app, args.name).run(lambda position, head: bar.update(task, completed=position, total=head))
        console.print(
            f"{done.name}: generation {done.generation} serves now, at position {done.position} "
            f"({done.events} events applied)"
        )
        return 0
    finally:
        app.close()
