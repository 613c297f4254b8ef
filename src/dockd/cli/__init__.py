"""The ``dockd`` command line: one module per command group, all thin.

``main`` is the only place that turns a :class:`DockdError` into a message on
stderr and an exit code, and :class:`CheckedCommand` the only place that checks who
may run a command (the permission table, :mod:`dockd.auth.permissions`).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from datetime import tzinfo
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperCommand

from dockd import __version__
from dockd.cli.common import App, app_of
from dockd.errors import DockdError, UsageError
from dockd.ledger.failures import describe_failure, is_ledger_failure
from dockd.reports.output import Encoding, localize_times

# A usage error of the command line (an unknown option, a missing argument, a bad value)
# exits 64 (EX_USAGE) like dockd's own UsageError: click's 2 is dockd's "the recorder
# was refused". Set on the class, so click still prints its message and the usage line.
ClickUsageError.exit_code = UsageError.exit_code


def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default: $DOCKD_CONFIG or /etc/dockd/dockd.toml)",
            envvar="DOCKD_CONFIG",
            dir_okay=False,
        ),
    ] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Tables show every column, however wide.")
    ] = False,
    encoding: Annotated[
        Encoding,
        typer.Option(
            "--encoding",
            help="Of --format csv: utf-8-sig (Excel; default), utf-8, gb18030.",
            envvar="DOCKD_CSV_ENCODING",
        ),
    ] = Encoding.utf8_bom,
) -> None:
    if version:
        typer.echo(f"dockd {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    if isinstance(ctx.obj, App):  # made by main(), which reports ledger failures with it
        ctx.obj.config_path = config
    else:
        ctx.obj = App(config_path=config)
    ctx.obj.wide = wide
    ctx.obj.encoding = encoding
    ctx.call_on_close(ctx.obj.close)


# In the order `dockd --help` lists them. A module without a group name registers
# its own top-level commands (`dockd ingest`, `dockd devices ...`); the others are
# groups of subcommands under that name (`dockd ledger migrate`).
COMMANDS: tuple[tuple[str | None, str], ...] = (
    (None, "ingest"),
    (None, "run"),
    (None, "health"),
    (None, "status"),
    (None, "registry"),
    (None, "devicelife"),
    ("config", "config_cmd"),
    ("ledger", "ledger"),
    ("alerts", "alerts"),
    (None, "tag"),
    (None, "report"),
    (None, "access"),
    ("explain", "explain"),
    ("inspection", "inspection"),
    ("cases", "cases"),
    ("audit", "audit"),
    ("hold", "hold"),
    ("sweep", "sweep"),
    ("trash", "trash"),
    ("quarantine", "quarantine"),
    ("recordings", "recordings"),
    ("handover", "handover"),
    (None, "users"),
    (None, "web"),
)
# Commands whose module registers nothing else: `dockd ingest ...` builds a command line
# of that module alone, so it does not import the code of every other command (reports,
# sweeps, exports, access): an ingest stays small (issue 16: peak RSS under 100 MB).
_ALONE = {"ingest": "ingest"}
# Options of the root that take a value (the word after them is not the command).
_ROOT_VALUES = frozenset({"--config", "-c", "--encoding"})


class CheckedCommand(TyperCommand):
    """Every command of dockd: before it runs, the account running it is checked against
    its row of the permission table (refused with exit 77, naming the missing role).

    The row is the command as typed after ``dockd`` (``"hold add"``); a command without
    a row is a bug (``KeyError``; tests/unit/test_permissions_table.py finds it first).
    ``--help`` is answered before this, for anyone.
    """

    # ctx: typer's own (vendored) click Context, which typer does not export by name
    def invoke(self, ctx: Any) -> Any:
        words: list[str] = []
        at = ctx
        while at is not None and at.parent is not None:
            words.insert(0, at.info_name or "")
            at = at.parent
        app_of(ctx).check(" ".join(words))
        return super().invoke(ctx)


def _check_every_command(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = CheckedCommand
    for group_info in typer_app.registered_groups:
        if group_info.typer_instance is not None:
            _check_every_command(group_info.typer_instance)


def _build(commands: Sequence[tuple[str | None, str]]) -> typer.Typer:
    """The ``dockd`` command line with ``commands`` (modules of this package) in it."""
    built = typer.Typer(
        name="dockd",
        help="Take footage off body-worn recorders into a verified, audited store.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    built.callback(invoke_without_command=True)(_root)
    for group, name in commands:
        module = importlib.import_module(f"dockd.cli.{name}")
        if group is None:
            module.register(built)
        else:
            built.add_typer(module.app, name=group)
    _check_every_command(built)
    return built


@cache
def full_app() -> typer.Typer:
    """Every command (``dockd --help`` lists them all); built once."""
    return _build(COMMANDS)


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # `from dockd.cli import app`: every command
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _app_for(args: Sequence[str]) -> typer.Typer:
    """The command line to run ``args`` with: one command's module alone when it is a
    command of :data:`_ALONE` (``--help`` before it lists every command: all of them)."""
    words = iter(args)
    for word in words:
        if word == "--help":
            break
        if word in _ROOT_VALUES:
            next(words, None)
        elif not word.startswith("-"):
            alone = _ALONE.get(word)
            return _build(((None, alone),)) if alone is not None else full_app()
    return full_app()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of exiting (tests call this).

    The umask is 027 while a command runs, so nothing dockd creates (ledger, its
    -wal/-shm, store directories, exports) is readable by every user (R15). A
    database failure that no command turned into a :class:`DockdError` is reported
    here as one (exit 75, the ledger named, what to do), never as a traceback.
    """
    old_umask = os.umask(0o027)
    state = App()
    try:
        args = list(argv) if argv is not None else sys.argv[1:]
        _app_for(args)(args=args, prog_name="dockd", obj=state)
    except DockdError as exc:
        return _report(exc, state.station_tz)
    except SystemExit as exc:  # typer/click end every run this way
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:
        if not is_ledger_failure(exc):
            raise
        return _report(describe_failure(state.ledger_url, exc), state.station_tz)
    finally:
        os.umask(old_umask)
    return 0


def _report(exc: DockdError, tz: tzinfo | None) -> int:
    """The refusal as a person reads it: times the lower layers wrote in UTC (or another
    offset) are given in station time, once the config is known."""
    text = localize_times(str(exc), tz) if tz is not None else str(exc)
    print(f"dockd: {text}", file=sys.stderr)
    return exc.exit_code
