"""Serving the web view: uvicorn, one worker, on ``[web] listen`` (the only uvicorn import).

One worker because the sessions live in this process's memory
(:mod:`dockd.web.sessions`). The listen address is the loopback by default: TLS and
the network belong to a reverse proxy in front (docs/web.md), whose
``X-Forwarded-For`` is believed from the loopback only, so the login rate limit
counts the real client's address.
"""

from __future__ import annotations

import structlog
import uvicorn

from dockd.config import Config
from dockd.ledger.db import Ledger
from dockd.web.app import create_app

log = structlog.get_logger("dockd.web")


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
            # dockd's own structlog events say what matters (logins, refusals, plays,
            # errors); uvicorn configures no logging and keeps no access log.
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    )
    log.info("web.listening", host=host, port=port, idle_minutes=config.web.idle_timeout_minutes)
    server.run()
    log.info("web.stopped", host=host, port=port)
