"""A database failure, told to a person: which ledger, what went wrong, what to do.

:func:`describe_failure` turns any SQLAlchemy, sqlite3 or psycopg error into one
:class:`LedgerError` (exit 75) whose advice fits the cause where it can be told;
:func:`shown_url` is the ledger URL as it may be shown (any password hidden).
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from dockd.errors import LedgerError
from dockd.ledger.permissions import sqlite_path


def shown_url(url: str | URL | None) -> str:
    """The ledger URL as it may be shown to a person: any password replaced by ``***``."""
    if url is None:
        return "(the configured ledger)"
    text = str(url)
    if text.count("@") > 1:  # an unescaped "@" in the password: hide up to the last one
        return re.sub(r"(://[^:/@]*:).*@", r"\1***@", text)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)


def _is_driver_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.split(".")[0] in (
        "psycopg",
        "psycopg2",
    )


class OutcomeUnknown(SQLAlchemyError):
    """A unit of work lost its connection and its server process could not be ended:
    it may still commit, so what the ledger says now is not final."""


def is_ledger_failure(exc: BaseException) -> bool:
    """A database failure (not a dockd bug such as a misused session): a DB-API error
    as SQLAlchemy wraps it, a raw sqlite3/psycopg one, or :class:`OutcomeUnknown`."""
    return isinstance(exc, DBAPIError | OutcomeUnknown) or _is_driver_error(exc)


def _driver_error(exc: BaseException) -> BaseException | None:
    """The DB-API exception (sqlite3, psycopg) behind ``exc``, if any."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if _is_driver_error(cur):
            return cur
        orig = getattr(cur, "orig", None)
        if isinstance(orig, BaseException) and _is_driver_error(orig):
            return orig
        cur = cur.__cause__ or cur.__context__
    return None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).strip().splitlines()[:1]).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


_SQLITE_FULL, _SQLITE_READONLY, _SQLITE_PERM, _SQLITE_AUTH = 13, 8, 3, 23
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CANTOPEN, _SQLITE_IOERR = 5, 6, 14, 10
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def _sqlite_advice(path: Path | None, driver: BaseException | None, detail: str) -> str:
    file = path.absolute() if path is not None else Path("(in memory)")
    where = file.parent
    code = getattr(driver, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = detail.lower()

    def is_(number: int, *phrases: str) -> bool:
        return primary == number or any(p in text for p in phrases)

    if is_(_SQLITE_FULL, "database or disk is full") or (
        is_(_SQLITE_IOERR, "disk i/o error") and _no_space(where)
    ):
        return (
            f"the filesystem holding it is full ({detail}); free space on the filesystem "
            f"of {where}, then run the command again"
        )
    if _read_only_fs(where) and (
        is_(_SQLITE_READONLY, "readonly database", "read-only")
        or is_(_SQLITE_CANTOPEN, "unable to open database file")
        or is_(_SQLITE_IOERR, "disk i/o error")
    ):
        return (
            f"it cannot be written ({detail}): the filesystem of {where} is mounted "
            "read-only; remount it read-write (and check the kernel log, `dmesg`, for "
            "why it went read-only), then run the command again"
        )
    if is_(_SQLITE_READONLY, "readonly database", "read-only") or is_(
        _SQLITE_PERM, "permission denied", "access permission"
    ):
        return (
            f"it cannot be written ({detail}); check the ownership and mode of {file} and "
            f"its directory {where}: the user running dockd must be able to write both, "
            "on a filesystem mounted read-write"
        )
    if primary == _SQLITE_AUTH:
        return f"access was refused ({detail}); check the ownership and mode of {file}"
    if is_(_SQLITE_BUSY, "database is locked") or is_(_SQLITE_LOCKED, "table is locked"):
        return (
            f"another process holds it locked ({detail}); wait for that process to finish "
            f"(`fuser -v {file}` names it) and retry"
        )
    if is_(_SQLITE_CANTOPEN, "unable to open database file"):
        return (
            f"it cannot be opened ({detail}); check that {where} exists and that the "
            f"ownership and mode of {file} and its directory let the user running dockd "
            "read and write them"
        )
    if is_(_SQLITE_CORRUPT, "malformed") or is_(_SQLITE_NOTADB, "not a database"):
        return (
            f"it is damaged or not an SQLite database ({detail}); keep a copy of {file} for "
            "investigation and restore the ledger from the backup"
        )
    if is_(_SQLITE_IOERR, "disk i/o error"):
        return (
            f"the disk failed to read or write it ({detail}); check the disk holding {where} "
            "(kernel log: `dmesg`), then retry"
        )
    return f"the database failed ({detail}); check [ledger] url and the file {file}"


def _no_space(directory: Path) -> bool:
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail == 0 or (st.f_files > 0 and st.f_favail == 0)


def _read_only_fs(directory: Path) -> bool:
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return bool(st.f_flag & os.ST_RDONLY)


_PG_UNREACHABLE = (
    "connection refused",
    "timeout expired",
    "timed out",
    "could not translate host name",
    "name or service not known",
    "no route to host",
    "network is unreachable",
    "could not connect",
    "connection failed",
    "server closed the connection",
    "connection is lost",
    "connection is closed",
    "no such file or directory",  # Unix socket missing: the server is not running
)

# The causes a PostgreSQL failure can be told by, in order: its SQLSTATE (a regular
# expression), or else a message holding every word of one of the phrases; and the
# advice for it ({at}: the server, {detail}: the error's first line).
_PG_CAUSES: tuple[tuple[str, tuple[tuple[str, ...], ...], str], ...] = (
    (
        "28P01|28000",
        (("authentication failed",), ("pg_hba",)),
        "PostgreSQL at {at} refused the login ({detail}); check the user and password in "
        "[ledger] url, and that pg_hba.conf on the server admits this host",
    ),
    (
        "3D000",
        (("database", "does not exist"),),
        "the database does not exist on {at} ({detail}); create it (`createdb`) or "
        "correct the database name in [ledger] url",
    ),
    (
        "53100",
        (("no space left",), ("could not extend file",)),
        "the PostgreSQL server at {at} is out of disk space ({detail}); free space on "
        "the server's data disk, then retry",
    ),
    (
        "53300",
        (("too many", "connections"),),
        "PostgreSQL at {at} has too many connections ({detail}); retry later, or raise "
        "max_connections on the server",
    ),
    (
        "57P.*",
        (("starting up",), ("shutting down",)),
        "PostgreSQL at {at} is starting or stopping ({detail}); retry in a moment",
    ),
    (
        "42501",
        (("permission denied",),),
        "PostgreSQL at {at} refused access ({detail}); grant the [ledger] url's user "
        "the rights on the ledger's database and tables",
    ),
    (
        "40001|40P01",
        (),
        "a concurrent transaction conflicted ({detail}); run the command again",
    ),
)


def _pg_advice(url: URL | None, driver: BaseException | None, detail: str) -> str:
    host = (url.host if url is not None else None) or "localhost"
    port = (url.port if url is not None else None) or 5432
    at = f"{host}:{port}"
    sqlstate = str(getattr(driver, "sqlstate", None) or "")
    text = detail.lower()
    for states, phrases, advice in _PG_CAUSES:
        if (sqlstate and re.fullmatch(states, sqlstate)) or any(
            all(word in text for word in phrase) for phrase in phrases
        ):
            return advice.format(at=at, detail=detail)
    if not sqlstate and any(p in text for p in _PG_UNREACHABLE):
        return (
            f"cannot be reached ({detail}); is PostgreSQL running at {at}? "
            "check [ledger] url in the configuration"
        )
    return (
        f"the database failed ({detail}); check that PostgreSQL at {at} is running "
        "and that [ledger] url is right"
    )


def describe_failure(url: str | URL | None, exc: BaseException) -> LedgerError:
    """One :class:`LedgerError` (exit 75) for a database failure, for a person to act on.

    The message names the ledger (``url`` with any password hidden), what went wrong
    and what to do, specific to the cause where it can be told: an SQLite ledger whose
    filesystem is full, that cannot be written (read-only, permissions), that another
    process holds locked, that cannot be opened or is damaged; a PostgreSQL server
    that cannot be reached (refused, timed out, unknown host), refuses the login, lacks
    the database, or is out of space. ``exc`` is any SQLAlchemy error or the sqlite3
    or psycopg error it wraps.
    """
    parsed: URL | None
    try:
        parsed = make_url(url) if url is not None else None
    except ArgumentError:
        parsed = None
    shown = shown_url(url)
    driver = _driver_error(exc)
    detail = _first_line(driver if driver is not None else exc)
    backend = parsed.get_backend_name() if parsed is not None else None
    if isinstance(exc, NoSuchModuleError):
        advice = (
            f"[ledger] url names an unknown database driver ({detail}); use "
            "sqlite:///PATH or postgresql+psycopg://USER@HOST/DATABASE"
        )
    elif backend == "sqlite" or isinstance(driver, sqlite3.Error):
        advice = _sqlite_advice(sqlite_path(parsed) if parsed else None, driver, detail)
    elif backend == "postgresql" or driver is not None:
        advice = _pg_advice(parsed, driver, detail)
    else:
        advice = f"the database failed ({detail}); check [ledger] url and that it is reachable"
    return LedgerError(f"ledger {shown}: {advice}")
