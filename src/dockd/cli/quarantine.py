"""``dockd quarantine list|release``: footage of recorders unknown when they docked."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.common import Format, app_of, render
from dockd.ingest import quarantine

app = typer.Typer(
    help="The quarantine: footage of unregistered or conflicting recorders.",
    no_args_is_help=True,
)


@app.command("list")
def list_(
    ctx: typer.Context, fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table
) -> None:
    """Files held in the quarantine, with the recorder reference each came under."""
    state = app_of(ctx)
    with state.ledger.read() as s:
        rows = quarantine.listing(s, state.config.station.tz)
    render(rows, fmt, title="quarantine")


@app.command("release")
def release(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="The registered device number they belong to.")],
    reason: Annotated[str, typer.Option("--reason", help="Why they are released (audited).")],
    file_ids: Annotated[
        list[int] | None,
        typer.Option("--file", help="Only this file id (repeatable); resolves a device conflict."),
    ] = None,
    session: Annotated[
        int | None,
        typer.Option("--session", help="Only the files of this dock session."),
    ] = None,
) -> None:
    """Move a registered device's quarantined files to the store, each re-hashed and audited.

    Without --file or --session: every file quarantined under the device's number,
    serial, filesystem UUID or label.
    """
    state = app_of(ctx)
    sctx = state.context(state.account())
    result = quarantine.release(
        sctx, device, reason=reason, file_ids=file_ids or (), session_id=session
    )
    for file_id, path in result.moved:
        typer.echo(f"released file {file_id} to {path}")
    for file_id, why in result.failed:
        typer.echo(f"NOT released: file {file_id}: {why}", err=True)
    typer.echo(f"{len(result.moved)} file(s) released to {device}, {len(result.failed)} not")
    if result.failed:
        raise typer.Exit(1)
