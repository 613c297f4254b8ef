"""Serving the web view: uvicorn, one worker, on ``[web] listen`` (the only uvicorn import).

One worker because the sessions live in this process's memory
(:mod:`dockd.web.sessions`). The listen address is the loopback by default: TLS and
the network belong to a reverse proxy in front (docs/web.md), whose
``X-Forwarded-For`` is believed from the loopback only, so the login rate limit
counts the real client's address.
"""

from __future__ import annotations

import uvicorn

from dockd.config import Config
from dockd.ledger.db import Ledger
from dockd.web.app import create_app


def serve(config: Config, ledger: Ledger, *, host: str, port: int) -> None:
    """Run the web view until SIGTERM or SIGINT (uvicorn stops it gracefully)."""
    app = create_app(config, ledger, status_file=config.dock.status_file)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            workers=1,
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1,::1",
            server_header=False,
            date_header=True,
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    )
    server.run()
