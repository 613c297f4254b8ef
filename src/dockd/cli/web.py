"""``dockd web``: serve the web view (issue 13) on ``[web] listen``, 127.0.0.1:8470 by
default, until stopped. ``dockd-web.service`` runs it; TLS is a reverse proxy's job
(docs/web.md). Run as root without sudo, it is the ``system`` account (an admin), as
the service is.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.common import app_of
from dockd.errors import UsageError


def web(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: the one of [web] listen).")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (default: the one of [web] listen)."),
    ] = None,
) -> None:
    """Serve the web view: search, recordings, approvals, reports, exports, the station."""
    # Imported here: the web framework is for this command only, not for every dockd
    # command (an ingest runs in under 100 MB, issue 16).
    from dockd.web.server import serve

    state = app_of(ctx)
    cfg = state.config
    default_host, default_port = cfg.web.address
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port: give a number from 1 to 65535")
    chosen_host, chosen_port = host or default_host, port or default_port
    typer.echo(f"dockd web: serving http://{chosen_host}:{chosen_port}/ (Ctrl-C stops)", err=True)
    serve(cfg, state.ledger, host=chosen_host, port=chosen_port)


def register(app: typer.Typer) -> None:
    app.command("web")(web)
