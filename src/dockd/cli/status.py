"""``dockd status``: what each bay of the dock shows now, read from the daemon's state file.

``dockd run`` writes ``[dock] status_file`` (default ``/run/dockd/status.json``) on
every change (see :mod:`dockd.dock.status`); this command only reads it, so it needs
no ledger and works for any user who may read the file. ``--watch`` redraws the
table until Ctrl-C; ``--format json`` prints the file's content with ``stale``:
true when no ``dockd run`` holds the daemon lock (or the file is from a daemon that
has stopped, or from before this boot), so what it shows is not live.
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dockd.cli.common import app_of
from dockd.daemon.health import read_status
from dockd.errors import DockdError

WATCH_EVERY_S = 0.5


class Shown(StrEnum):
    table = "table"
    json = "json"


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _progress(bay: dict[str, Any]) -> str:
    if bay.get("files_total") is None:
        return ""
    lines = [
        f"{bay.get('files_done', 0)}/{bay['files_total']} files",
        f"{_size(bay.get('bytes_done'))} of {_size(bay.get('bytes_total'))}",
    ]
    rate = bay.get("rate_bytes_s")
    if bay.get("state") == "copying" and rate:
        lines.append(f"{_size(rate)}/s")
        if bay.get("eta_s") is not None:
            lines.append(f"{max(1, round(bay['eta_s'] / 60))} min left")
    return "\n".join(lines)


_STYLE = {"copying": "yellow", "done": "bold green", "failed": "bold red", "docked": "cyan"}


def status_view(doc: dict[str, Any]) -> Group:
    """One table of every bay, under a line saying whose view it is and how fresh."""
    table = Table(expand=True, show_lines=True)
    for col, ratio in (("Bay", 2), ("State", 2), ("Recorder", 3), ("Progress", 3)):
        table.add_column(col, overflow="fold", ratio=ratio)
    table.add_column("What to do", overflow="fold", ratio=5)
    for bay in doc.get("bays", []):
        state = str(bay.get("state"))
        shown = "SAFE TO UNPLUG" if bay.get("safe_to_unplug") else state
        who = bay.get("device") or bay.get("devnode") or ""
        if bay.get("officer"):
            who += f"\nofficer {bay['officer']}"
        next_step = str(bay.get("next") or "")
        for warning in bay.get("warnings") or []:
            next_step += f"\n! {warning}"
        table.add_row(
            str(bay.get("bay")),
            Text(shown, style=_STYLE.get(state, "")),
            who,
            _progress(bay),
            next_step,
        )
    head = Text(f"station {doc.get('station')} · updated {doc.get('updated_at')}")
    if doc.get("stale"):
        head = Text(
            "NOT LIVE: dockd run is not running; this is what it last showed "
            f"({doc.get('updated_at')})",
            style="bold red",
        )
    if not doc.get("bays"):
        return Group(head, Text("no bays: no [[dock.bay]] configured and nothing docked"))
    return Group(head, table)


def status_cmd(
    ctx: typer.Context,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw on every change until Ctrl-C.")
    ] = False,
    fmt: Annotated[Shown, typer.Option("--format", "-f", help="table or json.")] = Shown.table,
) -> None:
    """What each bay of the dock shows now: state, recorder, progress, what to do next."""
    path = app_of(ctx).config.dock.status_file
    if not watch:
        doc = read_status(path)
        if fmt is Shown.json:
            sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        else:
            Console().print(status_view(doc))
        return
    try:
        if fmt is Shown.json:
            _watch_json(path)
        else:
            _watch_table(path)
    except KeyboardInterrupt:
        return


def _watch_json(path: Path) -> None:
    """One line of JSON per change of the file."""
    last = None
    while True:
        doc = read_status(path)
        line = json.dumps(doc, ensure_ascii=False)
        if line != last:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            last = line
        time.sleep(WATCH_EVERY_S)


def _view(path: Path) -> Group | Text:
    """The view, or why there is none yet (the daemon may be starting again)."""
    try:
        return status_view(read_status(path))
    except DockdError as exc:
        return Text(str(exc), style="bold red")


def _watch_table(path: Path) -> None:
    with Live(_view(path), auto_refresh=False) as live:
        while True:
            time.sleep(WATCH_EVERY_S)
            live.update(_view(path), refresh=True)


def register(app: typer.Typer) -> None:
    app.command("status")(status_cmd)
