"""``dockd run``: the long-running dock daemon (what systemd starts)."""

from __future__ import annotations

import typer

from dockd.cli.common import app_of
from dockd.daemon import service


def run(ctx: typer.Context) -> None:
    """Watch for recorders docking; ingest each one; stop cleanly on SIGTERM."""
    state = app_of(ctx)
    code = service.run(state.config, clock=state.clock)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
