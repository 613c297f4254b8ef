"""``dockd run``: the long-running dock daemon (what systemd starts)."""

from __future__ import annotations

import typer

from dockd.cli.common import app_of


def run(ctx: typer.Context) -> None:
    """Watch for recorders docking; ingest each one; stop cleanly on SIGTERM."""
    # Imported here: the daemon (udev, folder watching, metrics, scheduler) is for this
    # command only, not for every dockd command.
    from dockd.daemon import service

    state = app_of(ctx)
    code = service.run(state.config, clock=state.clock)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
