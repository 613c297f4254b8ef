"""``[web]``: the web view ``dockd web`` serves (issue 13).

``listen`` is ``HOST:PORT``, by default the loopback only: TLS is a reverse proxy's
job (docs/web.md), so the plain-HTTP port is never on the network. Sessions live in
the web process's memory and end after ``idle_timeout_minutes`` without a request;
``login_attempts`` failed logins per login name, or per client address, within
``login_window_minutes`` make further attempts wait (429). ``cookie_secure = false``
drops the cookie's Secure flag, for a browser on the station itself over plain
HTTP only. ``exports`` is where the web view keeps the export packages it makes
(copies of originals, so never inside the store; default beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from dockd.config.base import AbsolutePath, Section
from dockd.config.metrics import split_listen

DEFAULT_PORT = 8470
EXPORTS_BESIDE_STORE = "web-exports"  # the default [web] exports: <store.root>/../web-exports


class WebConfig(Section):
    """Where ``dockd web`` listens, and how long its sessions and login attempts last."""

    # HOST:PORT; TLS in front of it is a reverse proxy's (nginx; docs/web.md).
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    # A session ends after this many minutes without a request.
    idle_timeout_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    # Failed logins allowed per login name and per client address within the window.
    login_attempts: Annotated[int, Field(ge=1, le=1000)] = 5
    login_window_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    # The session cookie's Secure flag (sent over HTTPS only): keep it behind TLS.
    cookie_secure: bool = True
    # Where made export packages are kept for download (0700; each zip 0600).
    exports: AbsolutePath | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        value = value.strip()
        try:
            split_listen(value)
        except ValueError as exc:
            text = str(exc).replace(', or "" for no metrics', "").replace("9470", "8470")
            raise ValueError(text) from None
        return value

    def exports_root(self, store_root: Path) -> Path:
        """Where export packages are kept: ``exports``, or beside ``store_root``."""
        return self.exports or store_root.parent / EXPORTS_BESIDE_STORE

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to listen on."""
        return split_listen(self.listen)
