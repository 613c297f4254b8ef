"""``dockd health``: is this station fit to take footage? Exit 0 when so, 1 when not.

For monitoring (a Nagios check, a systemd timer, a load balancer): one JSON object
on stdout whatever happens, each check (:mod:`dockd.daemon.health`) named with ``ok``
and a reason a person can act on. A config that cannot be loaded is one failed
``config`` check. The command only reads: an SQLite ledger that is not there is
reported, not created.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from dockd.cli.common import App, app_of
from dockd.daemon.health import health, local_time
from dockd.errors import DockdError


def report(state: App) -> tuple[bool, dict[str, Any]]:
    """(healthy, the JSON object) for this station."""
    now = state.clock.now()
    try:
        config = state.config
    except DockdError as exc:
        return False, {
            "healthy": False,
            "at": now.isoformat(),
            "checks": {"config": {"ok": False, "reason": str(exc)}},
        }
    checks = health(config, now)
    healthy = all(c.ok for c in checks.values())
    return healthy, {
        "healthy": healthy,
        "station": config.station.id,
        "at": local_time(config, now),
        "checks": {name: {"ok": c.ok, "reason": c.reason} for name, c in checks.items()},
    }


def health_cmd(ctx: typer.Context) -> None:
    """Check this station for monitoring: JSON on stdout; exit 0 healthy, 1 not."""
    healthy, out = report(app_of(ctx))
    sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    if not healthy:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("health")(health_cmd)
