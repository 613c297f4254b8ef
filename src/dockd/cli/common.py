"""What every command shares: the loaded config, the open ledger, output and time parsing.

Commands stay thin: they parse arguments, call one function of the core, and
render its result. Errors are raised as :class:`DockdError` and turned into a
message and exit code in one place (``dockd.cli.main``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dockd.alerts import AlertSink
from dockd.auth.actor import process_identity, resolve_actor, unreadable_ledger
from dockd.auth.permissions import require
from dockd.auth.roles import Actor
from dockd.cli.table import layout, wrap
from dockd.clock import SystemClock
from dockd.config import Config, load_config
from dockd.config.station import Language
from dockd.context import Context
from dockd.errors import LedgerError, LedgerMissing, UsageError
from dockd.ledger.db import Ledger, open_ledger
from dockd.logs import setup_logging
from dockd.reports.output import Encoding, cell, csv_bytes, header_row, local_iso, mb, parse_iso

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
    wide: bool = False  # ``dockd --wide``: every column, however wide the table
    encoding: Encoding = Encoding.utf8_bom  # ``dockd --encoding``: of ``--format csv``
    _config: Config | None = None
    _ledger: Ledger | None = None
    _actor: Actor | None = None
    action: str | None = None  # the command running (``"ledger query"``), set by check()
    clock: SystemClock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        _current.set(self)  # what render() writes with: this invocation's station

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            station = self._config.station
            setup_logging(self._config.logging.level, self._config.logging.format, tz=station.tz)
        return self._config

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            cfg = self.config
            create = self.action is None or self.action in CREATES_LEDGER
            # The SQL views' local times follow the station's zone (ledger/zone.py).
            self._ledger = open_ledger(
                cfg.ledger.url,
                create=create,
                group=cfg.ledger.group,
                station_zone=(cfg.station.id, cfg.station.timezone),
            )
        return self._ledger

    @property
    def station_tz(self) -> tzinfo | None:
        """The station's zone, if the config has been loaded (for messages)."""
        return self._config.station.tz if self._config is not None else None

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


_current: ContextVar[App | None] = ContextVar("dockd_cli_app", default=None)


@dataclass(frozen=True)
class _Out:
    """How this invocation writes for people: its station's zone and language, the
    CSV encoding and whether tables may be wider than the terminal."""

    tz: tzinfo = UTC
    language: Language = Language.en
    encoding: Encoding = Encoding.utf8_bom
    wide: bool = False


def _out() -> _Out:
    state = _current.get()
    if state is None or state._config is None:  # no command ran (a test of render)
        return _Out() if state is None else _Out(encoding=state.encoding, wide=state.wide)
    station = state._config.station
    return _Out(station.tz, station.language, state.encoding, state.wide)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return local_iso(value, _out().tz)
    return str(value)


def _has_seconds(values: Sequence[Any]) -> bool:
    """Whether a column of times needs its seconds (two in the same minute would
    otherwise look the same): only when one of them is not on a whole minute."""
    for v in values:
        at = parse_iso(v) if isinstance(v, str) else v
        if isinstance(at, datetime) and (at.second or at.microsecond):
            return True
    return False


def _table_cell(column: str, value: Any, out: _Out, seconds: bool) -> str:
    if column == "size_bytes" and isinstance(value, int):
        return mb(value)
    return cell(value, out.tz, seconds=seconds)


def render(
    rows: Sequence[dict[str, Any]],
    fmt: Format,
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Print rows on stdout as a table for people, JSON (a list of objects) or CSV.

    Tables and CSV show times in station time (``2026-03-15 06:30``); JSON keeps ISO
    8601 with the station's offset. Tables fit the terminal (:mod:`dockd.cli.table`)
    unless ``--wide``; CSV is written in ``--encoding`` (UTF-8 with a byte order mark
    by default) with Chinese headers when ``[station] language = "zh"``.
    """
    out = _out()
    cols = list(columns or (rows[0].keys() if rows else []))
    if fmt is Format.json:
        text = json.dumps(list(rows), ensure_ascii=False, indent=2, default=_json_default)
        sys.stdout.write(text + "\n")
        return
    if fmt is Format.csv:
        data = csv_bytes(
            rows, cols, tz=out.tz, encoding=out.encoding, headers=header_row(cols, out.language)
        )
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text-only stdout (an embedding caller): same characters
            sys.stdout.write(data.decode(out.encoding.value, "replace"))
            return
        binary.write(data)
        binary.flush()
        return
    _table(rows, cols, title, out)


def _table(rows: Sequence[dict[str, Any]], cols: list[str], title: str | None, out: _Out) -> None:
    seconds = {c: _has_seconds([r.get(c) for r in rows]) for c in cols}
    cells = [[_table_cell(c, r.get(c), out, seconds[c]) for c in cols] for r in rows]
    names = ["size" if c == "size_bytes" else c for c in cols]
    heads = header_row(names, out.language)
    console = Console(soft_wrap=False)
    fit = layout(cols, heads, cells, console.width, wide=out.wide)
    if out.wide:
        console = Console(soft_wrap=False, width=max(console.width, sum(fit.widths) + 80))
    table = Table(title=title, show_lines=False)
    index = {c: i for i, c in enumerate(cols)}
    for c, w in zip(fit.columns, fit.widths, strict=True):
        table.add_column(Text(wrap(heads[index[c]], w)), width=w, overflow="fold")
    for row in cells:
        shown = zip(fit.columns, fit.widths, strict=True)
        table.add_row(*(Text(wrap(row[index[c]], w)) for c, w in shown))
    console.print(table)
    if fit.hidden:
        Console(stderr=True).print(
            f"({len(fit.hidden)} column(s) left out to fit {console.width} columns: "
            f"{', '.join(fit.hidden)}; `dockd --wide ...` shows them)",
            highlight=False,
        )
    if not rows:
        Console(stderr=True).print("(no rows)")
