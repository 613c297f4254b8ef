"""Open the ledger: engine, sessions, schema version.

SQLite runs in WAL mode with foreign keys on and ``BEGIN IMMEDIATE`` for every
transaction, so concurrent writers queue instead of failing half-way. A brand-new
ledger is created at the current schema; an existing one at an older version is
refused until ``dockd ledger migrate`` is run.

An SQLite ledger's files are made confidential before it is first opened
(:mod:`dockd.ledger.permissions`); a database failure that would reach a person is
turned into one :class:`LedgerError` naming the ledger and what to do
(:mod:`dockd.ledger.failures`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dockd.errors import LedgerError, LedgerMissing
from dockd.ledger import leads, zone
from dockd.ledger.failures import OutcomeUnknown, describe_failure, shown_url
from dockd.ledger.permissions import (
    DEFAULT_GROUP,
    keep_wal_files,
    secure_sqlite_path,
    sqlite_path,
)
from dockd.runtime import BOOT_ID, MACHINE_ID, UNKNOWN, process_start

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

PG_CONNECT_TIMEOUT_S = 10
#: The schema this dockd reads and writes: the newest of ledger/migrations/versions.
#: Written here so that opening the ledger (every command, every ingest) does not load
#: alembic and every migration script, several MB of a process that should stay small
#: (issue 16); tests/unit/test_schema_head.py checks it is alembic's head.
SCHEMA_HEAD = "0021"
#: Where alembic keeps the version a ledger is at (its default name, one row).
VERSION_TABLE = "alembic_version"


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("dockd.ledger") / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The schema version this dockd needs (:data:`SCHEMA_HEAD`)."""
    return SCHEMA_HEAD


def migrations_head() -> str | None:
    """The newest migration as alembic reads the scripts (what :data:`SCHEMA_HEAD` names)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(
        _alembic_config(create_engine("sqlite://"))
    ).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The schema version of the ledger behind ``engine``; None before the first migration."""
    with engine.connect() as conn:
        return revision_of(conn)


def revision_of(conn: Connection) -> str | None:
    """The schema version of the database behind ``conn`` (:func:`current_revision`).

    Read from alembic's version table with one query, as alembic reads it, without
    importing alembic. More than one row (a branched history, which dockd never makes)
    is refused, as alembic refuses it.
    """
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    if len(versions) > 1:
        raise LedgerError(
            f"the ledger at {shown_url(conn.engine.url)} names {len(versions)} schema "
            f"versions ({', '.join(map(str, versions))}) in {VERSION_TABLE}; dockd makes one. "
            "Restore it from a backup (`dockd ledger restore`)"
        )
    return str(versions[0]) if versions else None


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest version; return (before, after).

    A database failure is raised as :class:`LedgerError` (:func:`describe_failure`).
    """
    from alembic import command  # here: only a new or older ledger needs alembic

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
    """Keep the planner choosing the right index after large imports.

    On PostgreSQL this is ``VACUUM (ANALYZE)``: ANALYZE alone refreshes the statistics,
    but an index-only scan (the reports' covering indexes) also needs the visibility
    map, which only VACUUM maintains. VACUUM may not run inside a transaction, so the
    connection is in autocommit. On SQLite it is ``ANALYZE``, which rebuilds every
    table's statistics (``PRAGMA optimize`` would only analyze some of them again);
    SQLite has no visibility map, and its VACUUM rewrites the whole file, which
    dockd has no need for.

    A database failure is raised as :class:`LedgerError` (:func:`describe_failure`).
    """
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE)")
        else:
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
    except SQLAlchemyError as exc:
        raise describe_failure(engine.url, exc) from exc


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


#: Where a PostgreSQL connection keeps (pid, backend_start) of its server process.
_BACKEND = "dockd_backend"
#: How long a lost connection's server process is waited for once told to end.
BACKEND_END_WAIT_MS = 10_000
#: The oldest PostgreSQL dockd runs on: ``pg_terminate_backend(pid, timeout)`` is 14's.
MIN_POSTGRESQL = (14,)

# Ends a server process, guarded by its start (its number may be another's by now).
_END = text(
    "SELECT pg_terminate_backend(pid, :wait) FROM pg_stat_activity "
    "WHERE pid = :pid AND backend_start = :started"
)
_DOCKD_PROCESSES = text(
    "SELECT pid, backend_start, application_name, usename FROM pg_stat_activity "
    "WHERE application_name LIKE 'dockd %' AND datname = current_database() "
    "AND pid <> pg_backend_pid()"
)


def _end(conn: Connection, pid: int, started: datetime | None) -> bool | None:
    """End server process ``pid`` (if it is the one started then) and wait for it, up to
    :data:`BACKEND_END_WAIT_MS`: True when it has ended, None when it was gone, False
    when it could not be: not in time (a role's ``statement_timeout`` may cut the wait
    too), or not by this account (a process of another role, whose start the server
    does not even show it: ``started`` None)."""
    if started is None:
        return False
    params = {"pid": pid, "started": started, "wait": BACKEND_END_WAIT_MS}
    try:
        ended = conn.scalar(_END, params)
    except SQLAlchemyError:  # not this role's to end, or cancelled: it may still run
        ended = False
    with contextlib.suppress(SQLAlchemyError):
        conn.rollback()
    return None if ended is None else bool(ended)


def application_name(
    pid: int | None = None,
    start: int | None = None,
    *,
    station: str | None = None,
    boot: str = BOOT_ID,
    machine: str = MACHINE_ID,
) -> str:
    """What a PostgreSQL connection of process ``pid`` (this one), started at ``start``
    (clock ticks since boot), of this boot and machine, is called on the server:
    ``dockd <machine> <boot> <station> <pid> <start>``, so that what a dead process left
    there is known for what it is (:meth:`Ledger.end_dead`).

    The machine's id, not its host name: stations cloned from one image share a host
    name. The station (:func:`station_tag`; ``-`` for a ledger opened for none): an
    image may carry one machine id to many hosts, each with boots of its own, but no
    two stations share an id, and a station's recovery is about its own store alone.
    """
    if pid is None:  # asked at each connection: a forked child is a process of its own
        pid = os.getpid()
        start = process_start(pid)
    return f"dockd {machine[:8]} {boot[:8]} {station_tag(station)} {pid} {start}"


def station_tag(station: str | None) -> str:
    """A station's mark in its connections' names: 32 bits of a hash, short enough for
    PostgreSQL's 63 bytes whatever the id (a thousand stations on one ledger: about one
    chance in ten thousand that two share one); ``-`` for none."""
    if station is None:
        return "-"
    return hashlib.sha256(station.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _of_a_dead_process(name: str, station: str) -> bool:
    """Is ``name`` (:func:`application_name`) that of a dockd process of this machine
    and ``station`` that is gone: of an earlier boot, or whose PID is gone or now
    another process's? A name without a station is an older dockd's (a process killed
    before an upgrade): judged by its machine alone, as that dockd judged it."""
    parts = name.split(" ")
    if len(parts) == 5:
        parts.insert(3, station_tag(station))
    if MACHINE_ID == UNKNOWN or len(parts) != 6 or parts[0] != "dockd":
        return False  # a machine without an id (a container) cannot tell its own
    _, machine, boot, tag, pid, start = parts
    if machine != MACHINE_ID[:8] or tag != station_tag(station):
        return False  # another machine's or station's (or a ledger tool's, of none)
    if not (pid.isdigit() and start.isdigit()):
        return False
    if boot != BOOT_ID[:8]:
        return True  # no process of an earlier boot runs
    return process_start(int(pid)) != int(start)


def check_server(version: tuple[int | str, ...] | None, url: str | URL) -> None:
    """Refuse a PostgreSQL older than :data:`MIN_POSTGRESQL` with what to do."""
    if version and isinstance(version[0], int) and version[0] < MIN_POSTGRESQL[0]:
        shown = ".".join(map(str, version))
        raise LedgerError(
            f"the ledger at {shown_url(url)} is on PostgreSQL {shown}; dockd needs "
            f"{MIN_POSTGRESQL[0]} or later (it ends a lost connection's server process "
            "and waits for it: pg_terminate_backend(pid, timeout)); upgrade the server"
        )


def _postgresql_setup(engine: Engine, station: str | None) -> None:
    @event.listens_for(engine, "do_connect")
    def _on_do_connect(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        params["application_name"] = application_name(station=station)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Once per connection: which server process it is, and since when (a number
        # alone may belong to another process by the time it is asked about).
        cur = dbapi_conn.cursor()
        cur.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        record.info[_BACKEND] = cur.fetchone()
        cur.close()
        dbapi_conn.rollback()


def make_engine(
    url: str, *, group: str | None = DEFAULT_GROUP, station: str | None = None
) -> Engine:
    """An engine for ``url``; on PostgreSQL its connections are named for this process
    and ``station`` (:func:`application_name`).

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
    # A server may drop an idle connection, so PostgreSQL's are tested on checkout; a
    # SQLite file cannot go away under its connection, and the test (a ``SELECT 1``
    # per session, several per ingested file) would only cost time.
    ping = parsed.get_backend_name() != "sqlite"
    try:
        engine = create_engine(parsed, pool_pre_ping=ping, connect_args=connect_args)
    except ImportError as exc:
        raise LedgerError(
            f"ledger {shown_url(parsed)}: the database driver is not installed ({exc}); "
            "for PostgreSQL install dockd with its extra: pip install 'dockd[postgres]'"
        ) from exc
    except SQLAlchemyError as exc:
        raise describe_failure(parsed, exc) from exc
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    elif engine.dialect.name == "postgresql":
        _postgresql_setup(engine, station)
    return engine


class Ledger:
    """An open ledger: hands out sessions; knows its engine for migrations and locks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory = sessionmaker(engine, expire_on_commit=False)
        leads.track(self._factory)  # the clips' leads kept right at every flush
        read_options: dict[str, Any] = {"dockd_read_only": True}
        if engine.dialect.name == "postgresql":
            # one snapshot for the whole unit of work, as SQLite's BEGIN gives it
            # (PostgreSQL's default takes one per statement): a report of several
            # statements never counts a file twice nor misses one committed meanwhile
            read_options["isolation_level"] = "REPEATABLE READ"
        self._read_engine = engine.execution_options(**read_options)
        self._read_factory = sessionmaker(self._read_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on error.

        On PostgreSQL a unit of work whose connection is lost (its COMMIT sent, the
        answer never read) may still be committing on the server: its process is
        ended, and waited for, before the error is raised, so that whatever is asked
        of the ledger next sees the outcome for good. Where that cannot be done the
        error is :class:`OutcomeUnknown`.
        """
        with self._factory() as session:
            backend = None
            try:
                with session.begin():
                    if self.dialect == "postgresql":
                        backend = session.connection().info.get(_BACKEND)
                    yield session
            except DBAPIError as exc:
                if backend is not None and exc.connection_invalidated:
                    self._end_backend(backend, exc)
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work: sees one consistent snapshot, blocks no writer."""
        with self._read_factory() as session, session.begin():
            yield session

    @contextmanager
    def read_rows(self) -> Iterator[Connection]:
        """A read-only unit of work without an ORM session, for a few Core statements
        built once: the per-file checks of an ingest, where the session's own set-up
        costs more than the indexed read."""
        with self._read_engine.connect() as conn, conn.begin():
            yield conn

    def _end_backend(self, backend: tuple[int, datetime], lost: DBAPIError) -> None:
        """End the server process of a lost connection, and wait until it has gone (or
        :class:`OutcomeUnknown`). Ended while committing, it finishes the commit
        first; ended before, its transaction is rolled back: either way, for good."""
        pid, started = backend
        why = str(lost.orig).strip().partition("\n")[0]
        unknown = (
            "whether the ledger's last commit landed is not known yet: its connection was "
            f"lost ({why}) and its server process {pid} "
        )
        try:
            with self.engine.connect() as conn:
                ended = _end(conn, pid, started)
        except SQLAlchemyError as exc:
            raise OutcomeUnknown(f"{unknown}cannot be asked about ({exc})") from lost
        if ended is False:  # (None: it was gone already)
            raise OutcomeUnknown(
                f"{unknown}did not end within {BACKEND_END_WAIT_MS} ms of being told to, "
                "or may not be ended by this account; what it published stays for the next "
                "run's recovery"
            ) from lost

    def end_dead(self, station: str) -> list[str]:
        """The server processes a dead dockd process of this machine and ``station``
        left on PostgreSQL (a crash does not end them: one may still be committing, and
        would land its rows after recovery has asked about them), each ended and waited
        for. Those that could not be ended, each named for a person (PID, name, role).
        Nothing to do on SQLite (no server)."""
        if self.dialect != "postgresql":
            return []
        left: list[str] = []
        with self.engine.connect() as conn:
            for pid, started, name, role in conn.execute(_DOCKD_PROCESSES).all():
                if _of_a_dead_process(name, station) and _end(conn, pid, started) is False:
                    left.append(f"{pid} ({name!r}, role {role or '?'})")
        return left

    def close(self) -> None:
        self.engine.dispose()
        # SQLite deleted the -wal and -shm with the last connection: put them back
        # (empty, never over one that exists), so that readers who may not write the
        # directory, the [ledger] group's auditors, can open the ledger while it is shut.
        path = sqlite_path(self.engine.url)
        if path is not None:
            keep_wal_files(path)


def open_ledger(
    url: str,
    *,
    create: bool = True,
    group: str | None = DEFAULT_GROUP,
    station_zone: tuple[str, str] | None = None,
) -> Ledger:
    """Open the ledger at ``url``, creating an empty one at the current schema.

    ``group`` is the ``[ledger] group`` a new SQLite ledger is given (see
    :func:`secure_sqlite_path`). ``station_zone``: ``(station id, IANA zone)`` of the
    config opening it, written into the ledger for the SQL views' local times when it
    is not there yet (:mod:`dockd.ledger.zone`); the station names the connections.
    Raises :class:`LedgerError` if the database cannot be reached or written (see
    :func:`describe_failure`) or its schema is older (or newer) than this version of
    dockd. With ``create=False`` (every command that only reads) a missing SQLite file
    or an empty database is :class:`LedgerMissing`, and nothing is created: not the
    file, not its directory, not a table.
    """
    if not create:
        path = sqlite_path(url) if _is_url(url) else None
        try:
            if path is not None:
                path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise missing_ledger(str(path)) from None
        except OSError:
            pass  # there, but this user may not see it: the open below says so
    engine = make_engine(url, group=group, station=station_zone[0] if station_zone else None)
    try:
        has_tables = bool(inspect(engine).get_table_names())
        if engine.dialect.name == "postgresql":
            check_server(engine.dialect.server_version_info, engine.url)
        current = current_revision(engine)
        head = head_revision()
        if current is None and not has_tables and not create:
            raise missing_ledger(shown_url(engine.url))
        if current is None and not has_tables:
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
    ledger = Ledger(engine)
    if station_zone is not None:
        zone.record_station_zone(ledger, *station_zone, datetime.now(UTC))
    return ledger


def _is_url(url: str) -> bool:
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        return False  # make_engine names the bad URL
    return True


def missing_ledger(where: str) -> LedgerMissing:
    """The refusal of a command that reads a ledger that is not there yet."""
    return LedgerMissing(
        f"no ledger at {where}, and this command only reads one (nothing was created); "
        "create it with `sudo dockd ledger migrate`, or check [ledger] url in the config"
    )
