"""Open the ledger: engine, sessions, schema version, file permissions, failures.

SQLite runs in WAL mode with foreign keys on and ``BEGIN IMMEDIATE`` for every
transaction, so concurrent writers queue instead of failing half-way. A brand-new
ledger is created at the current schema; an existing one at an older version is
refused until ``dockd ledger migrate`` is run.

The ledger holds officers' names, source paths and hashes (R15): an SQLite ledger
is created 0640 in a 0750 directory owned by the ``[ledger] group``
(:func:`secure_sqlite_path`). A database failure that would reach a person is turned
into one :class:`LedgerError` naming the ledger and what to do (:func:`describe_failure`).
"""

from __future__ import annotations

import grp
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, create_engine, event, inspect, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dockd.errors import LedgerError

log = structlog.get_logger("dockd.ledger")

LEDGER_FILE_MODE = 0o640
LEDGER_DIR_MODE = 0o750
DEFAULT_GROUP = "dockd"
PG_CONNECT_TIMEOUT_S = 10
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_warned: set[tuple[str, str]] = set()


def _warn_once(key: str, subject: str, message: str, **fields: Any) -> None:
    if (key, subject) in _warned:
        return
    _warned.add((key, subject))
    log.warning(message, **fields)


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("dockd.ledger") / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest version; return (before, after).

    A database failure is raised as :class:`LedgerError` (:func:`describe_failure`).
    """
    try:
        before = current_revision(engine)
        cfg = _alembic_config(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise describe_failure(engine.url, exc) from exc
    return before, head_revision()


def optimize(engine: Engine) -> None:
    """Refresh the planner's statistics (ANALYZE) so queries keep using the right index."""
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front so they queue (busy_timeout) instead of
        # failing when upgrading a read lock; readers never block anyone in WAL mode.
        read_only = conn.get_execution_options().get("dockd_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def sqlite_path(url: str | URL) -> Path | None:
    """The database file of an SQLite URL (``None`` for memory, URI filenames, other DBs)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if str(parsed.query.get("uri", "")).lower() in ("true", "1"):
        return None
    return Path(database)


def make_engine(url: str, *, group: str | None = DEFAULT_GROUP) -> Engine:
    """An engine for ``url``.

    For SQLite the database's directory and file are created confidential first
    (:func:`secure_sqlite_path`, ``group`` is the ``[ledger] group``; ``None`` leaves
    the group alone). PostgreSQL gets a connect timeout (unless the URL sets one), so
    an unreachable server fails within seconds instead of hanging.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is no number
        raise LedgerError(
            f"[ledger] url {shown_url(url)} is not a database URL; "
            "use sqlite:////var/lib/dockd/ledger.sqlite3 or postgresql+psycopg://USER@HOST/DB"
        ) from exc
    path = sqlite_path(parsed)
    if path is not None:
        secure_sqlite_path(path, group)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    try:
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except ImportError as exc:
        raise LedgerError(
            f"ledger {shown_url(parsed)}: the database driver is not installed ({exc}); "
            "for PostgreSQL install dockd with its extra: pip install 'dockd[postgres]'"
        ) from exc
    except SQLAlchemyError as exc:
        raise describe_failure(parsed, exc) from exc
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    return engine


# --- permissions (R15: officers' names, source paths and hashes are confidential) ---


def _group_id(group: str | None) -> int | None:
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        _warn_once(
            "no-group",
            group,
            f"ledger group {group!r} does not exist, so the ledger keeps the group of the "
            f"user that created it; create it with `groupadd {group}` (and add the "
            "accounts that may read the ledger), or set [ledger] group",
            group=group,
        )
        return None


def _chgrp(path: Path, fd: int | None, gid: int | None, group: str | None) -> None:
    if gid is None:
        return
    try:
        if fd is not None:
            os.fchown(fd, -1, gid)
        else:
            os.chown(path, -1, gid, follow_symlinks=False)
    except OSError as exc:
        _warn_once(
            "chgrp",
            str(path),
            f"cannot give {path} to group {group!r}: {exc.strerror}; run dockd as root or as "
            f"a member of {group!r}, or `chgrp {group} {path}` as its owner",
            path=str(path),
            group=group,
        )


def _make_dirs(directory: Path, gid: int | None, group: str | None) -> None:
    missing: list[Path] = []
    d = directory
    while not os.path.lexists(d) and d != d.parent:
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, LEDGER_DIR_MODE)
        except FileExistsError:
            continue  # another process made it just now
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger directory {d}: {exc.strerror}; "
                "check [ledger] url and the ownership and mode of its parent directory"
            ) from exc
        os.chmod(d, LEDGER_DIR_MODE)  # exact, whatever the umask
        _chgrp(d, None, gid, group)


def _tighten(path: Path, what: str) -> None:
    """Take every permission for "other" away from ``path``, keeping the rest."""
    try:
        st = os.stat(path)
    except OSError:
        return
    old = stat.S_IMODE(st.st_mode)
    if not old & 0o007:
        return
    new = old & ~0o007
    try:
        os.chmod(path, new)
    except OSError as exc:
        _warn_once(
            "chmod-failed",
            str(path),
            f"{what} {path} is open to every user (mode {old:04o}) and cannot be "
            f"tightened: {exc.strerror}; run `chmod o-rwx {path}` as its owner",
            path=str(path),
        )
    else:
        _warn_once(
            "chmod",
            str(path),
            f"{what} {path} was open to every user (mode {old:04o}); tightened to {new:04o} "
            "because the ledger is confidential",
            path=str(path),
        )


def secure_sqlite_path(path: Path, group: str | None = DEFAULT_GROUP) -> None:
    """Make sure the SQLite ledger at ``path`` is not readable by every user.

    Created by dockd: every missing directory gets mode 0750 and the database file
    0640 (exactly, whatever the umask), all owned by ``group`` (the ``[ledger] group``:
    the accounts that may read the ledger). The file is created empty here, before
    SQLite first opens it, so it is never world-readable even for a moment; SQLite
    gives the ``-wal`` and ``-shm`` files it creates beside it the database file's
    mode (and, running as root, its owner and group). A group that does not exist
    leaves the creator's group, with one warning saying how to create it.

    An existing ledger, decided: its owner, group and owner/group bits are the
    admin's and are kept, but any permission for "other" on the file or its
    ``-wal``/``-shm``/``-journal`` is taken away at open, with a warning, because R15
    makes its content confidential. Its directory is tightened the same way only when
    it holds nothing but the ledger; a shared directory (such as ``/var/lib`` or
    ``/tmp``) is left as it is, with a warning, since the file's own mode already
    protects the content and other programs may need that directory. Failing to
    chmod or chgrp (dockd is not the owner) is a warning, never an error.
    """
    gid = _group_id(group) if not os.path.lexists(path) else None
    _make_dirs(path.parent, gid, group)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, LEDGER_FILE_MODE)
    except FileExistsError:
        pass  # an existing ledger (or one another process just created): tighten below
    except OSError as exc:
        raise LedgerError(
            f"cannot create the ledger file {path}: {exc.strerror}; check the ownership "
            f"and mode of {path.parent} (the user running dockd must be able to write it)"
        ) from exc
    else:
        try:
            os.fchmod(fd, LEDGER_FILE_MODE)
            _chgrp(path, fd, gid, group)
        finally:
            os.close(fd)
    for suffix in ("", *_SQLITE_SIDE_FILES):
        _tighten(path.with_name(path.name + suffix), "the ledger file")
    directory = path.parent if str(path.parent) else Path(".")
    try:
        own = {path.name + suffix for suffix in ("", *_SQLITE_SIDE_FILES)}
        dedicated = set(os.listdir(directory)) <= own
        mode = stat.S_IMODE(os.stat(directory).st_mode)
    except OSError:
        return
    # Never a directory anyone may write to (/tmp and the like: sticky or world-
    # writable), whatever it holds right now: other programs depend on its mode.
    if dedicated and not mode & (stat.S_ISVTX | 0o002):
        _tighten(directory, "the ledger directory")
    elif mode & 0o007:
        _warn_once(
            "shared-dir",
            str(directory),
            f"the ledger's directory {directory} is open to every user (mode {mode:04o}) and "
            "shared with other files, so dockd leaves it as it is; the ledger file itself is "
            "0640 or tighter. Better: keep the ledger in a directory of its own, mode 0750",
            path=str(directory),
        )


# --- failures ------------------------------------------------------------------------


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


def is_ledger_failure(exc: BaseException) -> bool:
    """A database failure (not a dockd bug such as a misused session): a DB-API error
    as SQLAlchemy wraps it, or a raw sqlite3/psycopg one."""
    return isinstance(exc, DBAPIError) or _is_driver_error(exc)


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


def _pg_advice(url: URL | None, driver: BaseException | None, detail: str) -> str:
    host = (url.host if url is not None else None) or "localhost"
    port = (url.port if url is not None else None) or 5432
    at = f"{host}:{port}"
    sqlstate = str(getattr(driver, "sqlstate", None) or "")
    text = detail.lower()
    if sqlstate in ("28P01", "28000") or "authentication failed" in text or "pg_hba" in text:
        return (
            f"PostgreSQL at {at} refused the login ({detail}); check the user and password in "
            "[ledger] url, and that pg_hba.conf on the server admits this host"
        )
    if sqlstate == "3D000" or ("database" in text and "does not exist" in text):
        return (
            f"the database does not exist on {at} ({detail}); create it (`createdb`) or "
            "correct the database name in [ledger] url"
        )
    if sqlstate == "53100" or "no space left" in text or "could not extend file" in text:
        return (
            f"the PostgreSQL server at {at} is out of disk space ({detail}); free space on "
            "the server's data disk, then retry"
        )
    if sqlstate == "53300" or ("too many" in text and "connections" in text):
        return (
            f"PostgreSQL at {at} has too many connections ({detail}); retry later, or raise "
            "max_connections on the server"
        )
    if sqlstate.startswith("57P") or "starting up" in text or "shutting down" in text:
        return f"PostgreSQL at {at} is starting or stopping ({detail}); retry in a moment"
    if sqlstate == "42501" or "permission denied" in text:
        return (
            f"PostgreSQL at {at} refused access ({detail}); grant the [ledger] url's user "
            "the rights on the ledger's database and tables"
        )
    if sqlstate in ("40001", "40P01"):
        return f"a concurrent transaction conflicted ({detail}); run the command again"
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


class Ledger:
    """An open ledger: hands out sessions; knows its engine for migrations and locks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory = sessionmaker(engine, expire_on_commit=False)
        self._read_factory = sessionmaker(
            engine.execution_options(dockd_read_only=True), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on error."""
        with self._factory() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work: sees one consistent snapshot, blocks no writer."""
        with self._read_factory() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()


def open_ledger(url: str, *, create: bool = True, group: str | None = DEFAULT_GROUP) -> Ledger:
    """Open the ledger at ``url``, creating an empty one at the current schema.

    ``group`` is the ``[ledger] group`` a new SQLite ledger is given (see
    :func:`secure_sqlite_path`). Raises :class:`LedgerError` if the database cannot
    be reached or written (see :func:`describe_failure`) or its schema is older (or
    newer) than this version of dockd.
    """
    engine = make_engine(url, group=group)
    try:
        has_tables = bool(inspect(engine).get_table_names())
        current = current_revision(engine)
        head = head_revision()
        if current is None and not has_tables and create:
            migrate(engine)
        elif current != head:
            raise LedgerError(
                f"the ledger at {shown_url(engine.url)} has schema version "
                f"{current or 'none'} but this dockd needs {head}; back it up, then run "
                "`dockd ledger migrate`"
            )
    except SQLAlchemyError as exc:
        engine.dispose()
        raise describe_failure(engine.url, exc) from exc
    except BaseException:
        engine.dispose()
        raise
    return Ledger(engine)
