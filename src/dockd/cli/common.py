"""What every command shares: the loaded config, the open ledger, output and time parsing.

Commands stay thin: they parse arguments, call one function of the core, and
render its result. Errors are raised as :class:`DockdError` and turned into a
message and exit code in one place (``dockd.cli.main``).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dockd.alerts import AlertSink
from dockd.auth.actor import process_identity, resolve_actor, unreadable_ledger
from dockd.auth.permissions import require
from dockd.auth.roles import Actor
from dockd.clock import SystemClock
from dockd.config import Config, load_config
from dockd.context import Context
from dockd.errors import LedgerError, LedgerMissing, UsageError
from dockd.ledger.db import Ledger, open_ledger
from dockd.logs import setup_logging

DAEMON_ACTOR = "dockd"  # the daemon (`dockd run`, its scheduler and dock sessions)

# Commands root runs without sudo (as ``system``, an admin) before the ledger can be
# opened, so nobody is looked up in it: checking the config and the station's health
# (which reports a missing ledger, never creates one), the dock's status (read from the
# daemon's file, not the ledger), bringing the schema up, backing up and restoring.
BEFORE_LEDGER = frozenset(
    {"config check", "health", "status", "ledger migrate", "ledger backup", "ledger restore"}
)


# The commands that may create a missing ledger (at the current schema): bringing the
# schema up, the daemon and an ingest, and the first registrations of a new station.
# Every other command only reads it, or changes rows that cannot exist without one:
# against a missing ledger it is refused, naming the path and `dockd ledger migrate`.
CREATES_LEDGER = frozenset(
    {
        "ledger migrate",
        "run",
        "ingest",
        "devices add",
        "officers add",
        "assign set",
        "users add",
        "cases import",
    }
)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@dataclass
class App:
    """Lazily built shared state of one CLI invocation."""

    config_path: Path | None = None
    _config: Config | None = None
    _ledger: Ledger | None = None
    _actor: Actor | None = None
    action: str | None = None  # the command running (``"ledger query"``), set by check()
    clock: SystemClock = field(default_factory=SystemClock)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            setup_logging(self._config.logging.level, self._config.logging.format)
        return self._config

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            cfg = self.config.ledger
            create = self.action is None or self.action in CREATES_LEDGER
            self._ledger = open_ledger(cfg.url, create=create, group=cfg.group)
        return self._ledger

    @property
    def ledger_url(self) -> str | None:
        """The configured ledger URL, if the config has been loaded (for error messages)."""
        return self._config.ledger.url if self._config is not None else None

    @property
    def alerts(self) -> AlertSink:
        return AlertSink(self.ledger, self.config.station.id, self.clock, self.config.alerts)

    def account(self) -> Actor:
        """Who runs this command: the account of ``SUDO_UID`` under sudo, ``system`` for
        root without sudo, else the user's own (:func:`resolve_actor`); resolved once
        per invocation. An unknown or disabled user is refused (exit 77)."""
        if self._actor is None:
            identity = process_identity()
            try:
                ledger = self.ledger
            except LedgerError as exc:
                if identity["uid"] == 0 or isinstance(exc, LedgerMissing):
                    raise
                raise unreadable_ledger(identity["uid"]) from exc
            with ledger.read() as s:
                self._actor = resolve_actor(s, **identity)
        return self._actor

    def require(self, action: str) -> Actor:
        """The account running ``dockd ACTION``, refused unless the permission table
        (:mod:`dockd.auth.permissions`) lets one of its roles run it."""
        actor = self.account()
        require(actor, action)
        return actor

    def check(self, action: str) -> None:
        """The check every command passes before it runs (``dockd.cli.CheckedCommand``).

        Root without sudo is the ``system`` account, which is always an admin and never
        disabled; for the commands that must work while the ledger cannot be opened
        (:data:`BEFORE_LEDGER`: a fresh or old schema, a restore) it is not looked up.
        """
        self.action = action
        if action in BEFORE_LEDGER:
            identity = process_identity()
            if identity["uid"] == 0 and not identity["sudo_uid"]:
                return
        self.require(action)

    def context(self, account: Actor | None = None) -> Context:
        """The Context a command hands to a stage: its events name ``account``'s login
        (none: ``dockd``, the daemon itself)."""
        actor = account.login if account is not None else DAEMON_ACTOR
        return Context(self.config, self.ledger, self.clock, self.alerts, actor=actor)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


def app_of(ctx: typer.Context) -> App:
    obj = ctx.find_root().obj
    assert isinstance(obj, App)
    return obj


def parse_time(value: str | None, cfg: Config, *, end: bool = False) -> datetime | None:
    """ISO date or date-time; without an offset it is read in the station's time zone.

    A bare date as an end bound (``end=True``) means the whole of that day is
    included: the bound returned is the next midnight, used exclusively.
    """
    if value is None:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            start = datetime.combine(d, time.min, tzinfo=cfg.station.tz)
            return (
                datetime.combine(d + timedelta(days=1), time.min, tzinfo=cfg.station.tz)
                if end
                else start
            )
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not a date or time; use e.g. 2026-03-15 or 2026-03-15T08:30+08:00"
        ) from None
    return ts.replace(tzinfo=cfg.station.tz) if ts.tzinfo is None else ts


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def render(
    rows: Sequence[dict[str, Any]],
    fmt: Format,
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Print rows as a rich table, JSON (a list of objects) or CSV on stdout."""
    cols = list(columns or (rows[0].keys() if rows else []))
    if fmt is Format.json:
        sys.stdout.write(json.dumps(list(rows), ensure_ascii=False, indent=2) + "\n")
        return
    if fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(r.get(k)) for k in cols})
        sys.stdout.write(buf.getvalue())
        return
    table = Table(title=title, show_lines=False)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in cols))
    Console(soft_wrap=False).print(table)
    if not rows:
        Console(stderr=True).print("(no rows)")
