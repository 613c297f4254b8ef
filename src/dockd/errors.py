"""Errors a person can act on.

Every failure that reaches a user is a :class:`DockdError` whose message names the
thing (a file, a config key, a device) and says what to do. Only ``dockd.cli``
turns these into exit codes.
"""

from __future__ import annotations


class DockdError(Exception):
    """Base of all errors dockd reports to a person."""

    exit_code = 1


class ConfigError(DockdError):
    """The configuration cannot be used; the message lists every problem."""

    exit_code = 78  # EX_CONFIG

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: configuration has {len(problems)} error(s):\n{lines}")


class LedgerError(DockdError):
    """The ledger is unreachable, out of date, or refused a change."""

    exit_code = 75  # EX_TEMPFAIL


class LedgerMissing(LedgerError):
    """There is no ledger yet, and the command only reads one: nothing was created."""


class NotFound(DockdError):
    """A device, officer, file or alert named on the command line does not exist."""

    exit_code = 66  # EX_NOINPUT


class UsageError(DockdError):
    """The request does not make sense (e.g. an assignment that ends before it starts)."""

    exit_code = 64  # EX_USAGE


class NotPermitted(DockdError):
    """The person running the command has no account, a disabled one, or lacks a role."""

    exit_code = 77  # EX_NOPERM


class SourceError(DockdError):
    """A recorder or source directory cannot be read at all."""

    exit_code = 66


class RecorderBusy(DockdError):
    """Another process is ingesting the same recorder right now."""

    exit_code = 73


class AlreadyRunning(DockdError):
    """Another ``dockd run`` holds this machine's daemon lock."""

    exit_code = 69  # EX_UNAVAILABLE
