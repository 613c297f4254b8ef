"""``dockd trash list|restore``: files the retention sweep took, before they are purged."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.common import Format, app_of, render
from dockd.policy.holds import HoldReason
from dockd.sweeps import trash
from dockd.sweeps.listings import trash_list

app = typer.Typer(
    help="The trash: expired files wait here for the grace period.", no_args_is_help=True
)


@app.command("list")
def list_(
    ctx: typer.Context, fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table
) -> None:
    """Files in the trash and when each is purged."""
    state = app_of(ctx)
    render(
        trash_list(state.context()),
        fmt,
        title="trash",
    )


@app.command("restore")
def restore(
    ctx: typer.Context,
    file_ids: Annotated[list[int], typer.Argument(help="File id(s) (`dockd trash list`).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it comes back.")],
    hold: Annotated[
        str | None,
        typer.Option(
            "--hold",
            help=f"Also place a hold ({', '.join(HoldReason)}): needed when the file is still "
            "expired, or the next sweep would take it again.",
        ),
    ] = None,
    text: Annotated[str | None, typer.Option("--text", help="The hold's text.")] = None,
) -> None:
    """Put files back in the store; each restore is an audit event."""
    state = app_of(ctx)
    account = state.account()
    who = account.login
    sctx = state.context(account)
    for file_id in file_ids:
        item = trash.restore(sctx, file_id, by=who, reason=reason, hold_reason=hold, hold_text=text)
        typer.echo(f"restored file {item.file_id} to {item.store_path}")
