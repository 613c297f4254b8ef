"""``dockd config check``: validate the configuration and say exactly what is wrong."""

from __future__ import annotations

import typer

from dockd.cli.common import app_of

app = typer.Typer(help="Check the configuration.", no_args_is_help=True)


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Print OK, or every error with its key path and line (exit 78)."""
    state = app_of(ctx)
    cfg = state.config  # raises ConfigError listing every problem
    where = str(cfg.source) if cfg.source else "built-in defaults (no config file)"
    typer.echo(f"OK: {where}")
    typer.echo(f"  station {cfg.station.id} ({cfg.station.unit}), time zone {cfg.station.timezone}")
    typer.echo(f"  store   {cfg.store.root}  template {cfg.store.path_template}")
    typer.echo(f"  ledger  {cfg.ledger.url}")
    typer.echo(f"  naming  {', '.join(r.name for r in cfg.naming) or '(none)'}")
