"""The ledger as ``dockd config check`` sees it: there, confidential, reachable, current.

Nothing is created or changed: an SQLite ledger is opened read-only (``mode=ro``), a
PostgreSQL one only read; the schema version is compared with this dockd's head. A
ledger not made yet or at an older schema is a warning, not an error: installing and
upgrading run ``dockd config check && dockd ledger migrate``.
"""

from __future__ import annotations

import grp
import sqlite3
import stat
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from dockd.config.findings import Finding, Level
from dockd.ledger.db import PG_CONNECT_TIMEOUT_S, current_revision, head_revision
from dockd.ledger.failures import describe_failure, shown_url
from dockd.ledger.permissions import sqlite_path

KEY = "[ledger] url"
GROUP_KEY = "[ledger] group"


def _file_findings(path: Path, group: str | None) -> list[Finding]:
    st = path.stat()
    found: list[Finding] = []
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007:
        found.append(
            Finding(
                Level.ERROR,
                KEY,
                f"the ledger {path} is open to every user (mode {mode:04o}); it holds officers' "
                f"names and hashes (R15): chmod o-rwx {path}",
            )
        )
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            found.append(
                Finding(
                    Level.WARNING,
                    GROUP_KEY,
                    f"the group {group!r} does not exist, so auditors cannot read the ledger "
                    f"with sqlite3: `groupadd {group}`, or set [ledger] group",
                )
            )
        else:
            if st.st_gid != gid:
                found.append(
                    Finding(
                        Level.WARNING,
                        GROUP_KEY,
                        f"the ledger {path} is not in the group {group!r}: "
                        f"chgrp {group} {path} (and its -wal and -shm)",
                    )
                )
    return found


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    path = sqlite_path(parsed)
    if path is not None:
        uri = f"file:{path}?mode=ro"
        return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))
    args = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    return create_engine(parsed, connect_args=args)


def check_ledger(url: str, group: str | None) -> list[Finding]:
    """The ledger's findings: missing, mode and group, connection, schema version."""
    try:
        path = sqlite_path(url)
    except (ArgumentError, ValueError):
        return [Finding(Level.ERROR, KEY, f"{shown_url(url)} is not a database URL")]
    found: list[Finding] = []
    if path is not None:
        if not path.exists():  # a new station: `config check && ledger migrate`
            return [
                Finding(
                    Level.WARNING,
                    KEY,
                    f"no ledger at {path} yet: create it with `sudo dockd ledger migrate` "
                    "(or check [ledger] url)",
                )
            ]
        found += _file_findings(path, group)
    try:
        engine = _engine(url)
    except (ImportError, SQLAlchemyError) as exc:
        return [*found, Finding(Level.ERROR, KEY, f"{shown_url(url)}: {exc}")]
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        return [*found, Finding(Level.ERROR, KEY, str(describe_failure(url, exc)))]
    finally:
        engine.dispose()
    head = head_revision()
    if current == head:
        found.append(Finding(Level.OK, KEY, f"{shown_url(url)} opened read-only: schema {head}"))
    elif current is None:
        found.append(
            Finding(
                Level.WARNING,
                KEY,
                f"{shown_url(url)} has no dockd schema yet: `sudo dockd ledger migrate`",
            )
        )
    else:  # an upgrade: `config check && ledger migrate`; every other command refuses it
        found.append(
            Finding(
                Level.WARNING,
                KEY,
                f"{shown_url(url)} has schema {current}, this dockd needs {head}: back it up "
                "(`dockd ledger backup`), then `sudo dockd ledger migrate`",
            )
        )
    return found
