"""``dockd ledger backup`` and ``restore``: a verified copy of the ledger, and putting one back.

SQLite is copied with its online backup API in one step: the copy is one consistent
snapshot of what was committed, taken under a read lock that in WAL mode blocks no
writer, so it is safe while ``dockd run`` docks. PostgreSQL is dumped with
``pg_dump`` in custom format from a snapshot this module exports, and the audit trail
is verified inside that same snapshot: the dump holds exactly the rows that checked
out. A scratch restore of every dump would double the database's disk and time, so
the dump itself is only checked to read (``pg_restore --list``, with the audit table's
data in it); the password goes to ``pg_dump`` through its environment, never its
command line, where every user of the machine could read it.

A copy is written under a temporary name beside it, fsynced, verified, then named
(never over a file unless forced), the directory fsynced: a crash leaves a whole backup
or none. Mode 0600, or 0640 in group ``dockd-audit`` if it exists (R15). A copy that does
not verify is kept (it is all there is of that ledger), but the command fails.

A restore (SQLite only; PostgreSQL: ``pg_restore``, see docs/operations.md) verifies the
backup first, refuses while ``dockd run`` holds the daemon lock or another process
writes the ledger, keeps the ledger it replaces beside it as
``<ledger>.before-restore-<time>``, and writes the backup into the ledger through the
backup API, one transaction: a reader sees the old ledger or the new one.
"""

from __future__ import annotations

import contextlib
import grp
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dockd.config.backup import BackupConfig
from dockd.errors import AlreadyRunning, DockdError, LedgerError, NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.db import head_revision, make_engine, revision_of
from dockd.ledger.permissions import DEFAULT_GROUP, secure_sqlite_path, sqlite_path
from dockd.runtime import FileLock

log = structlog.get_logger("dockd.ledger.backup")

AUDIT_GROUP = "dockd-audit"  # may read backups, when it exists
SUFFIXES = {"sqlite": ".sqlite3", "postgresql": ".pgdump"}
_STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(DockdError):
    """A backup or restore was refused (a file in the way, a daemon running, no ledger)."""


class BackupBroken(DockdError):
    """A backup does not verify: its audit trail or file rows do not check out."""

    exit_code = 65  # EX_DATAERR, as `dockd audit verify`


@dataclass(frozen=True)
class Checked:
    """What the verification of a copy found."""

    events: int
    files: int
    head: str  # the last audit hash (audit.GENESIS when there are no events)
    problems: tuple[str, ...]
    how: str  # how the copy was checked, for the operator

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    checked: Checked

    def as_dict(self) -> dict[str, object]:
        return {
            "file": str(self.path),
            "size_bytes": self.size_bytes,
            "events_verified": self.checked.events,
            "files_verified": self.checked.files,
            "last_audit_hash": self.checked.head,
            "verified": self.checked.how,
        }


@dataclass(frozen=True)
class RestoreResult:
    ledger: Path
    backup: Path
    kept: Path | None  # the replaced ledger, beside it
    checked: Checked

    def as_dict(self) -> dict[str, object]:
        return {
            "ledger": str(self.ledger),
            "backup": str(self.backup),
            "kept": str(self.kept) if self.kept is not None else None,
            "events_verified": self.checked.events,
            "files_verified": self.checked.files,
            "last_audit_hash": self.checked.head,
        }


def backend_of(url: str) -> str:
    return "postgresql" if make_url(url).get_backend_name() == "postgresql" else "sqlite"


def backup_name(station: str, at: datetime, backend: str) -> str:
    """``ledger-<station>-<UTC time>.sqlite3`` (or ``.pgdump``): sorts by time."""
    return f"ledger-{station}-{at.astimezone(UTC).strftime(_STAMP)}{SUFFIXES[backend]}"


def target(dest: Path, *, station: str, at: datetime, backend: str) -> Path:
    """The file a backup to ``dest`` writes: ``dest`` itself, or a timed name in it."""
    if dest.is_dir():
        return dest / backup_name(station, at, backend)
    if not dest.parent.is_dir():
        raise NotFound(f"backup destination {dest}: no directory {dest.parent}; create it first")
    return dest


# ------------------------------------------------------------------------------- files


def _fsync(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private(path: Path) -> None:
    """0600, or 0640 in group dockd-audit when the machine has it."""
    try:
        os.chown(path, -1, grp.getgrnam(AUDIT_GROUP).gr_gid)
    except (KeyError, OSError):
        os.chmod(path, 0o600)
    else:
        os.chmod(path, 0o640)


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise BackupError(f"{path} already exists; give another name, or --force to replace it")


@contextlib.contextmanager
def _temporary(final: Path) -> Iterator[Path]:
    """A new private file in ``final``'s directory; removed unless it was given its name."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        _private(tmp)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, final: Path, force: bool) -> None:
    """Give the fsynced ``tmp`` its name: a link never replaces a file, a rename may."""
    _fsync(tmp)
    if force:
        os.replace(tmp, final)
    else:
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise BackupError(
                f"{final} appeared while the backup was written; it is left as it is. Run "
                "the backup again, to another name or with --force"
            ) from None
    _fsync(final.parent, directory=True)


def _sqlite_file(url: str) -> Path:
    path = sqlite_path(url)
    if path is None:
        raise UsageError(f"the ledger {make_url(url).render_as_string()} is no SQLite file")
    return path


def _copy_sqlite(source: Path, dest: Path, *, journal: str = "DELETE", timeout: float = 30) -> None:
    """The committed state of ``source`` into the database file ``dest``, in one step
    (one transaction on ``dest``); ``dest`` left in ``journal`` mode (DELETE: one file)."""
    # Read-write, though it only reads: a read-only connection cannot open a WAL
    # database whose -shm file is not there yet (no process has it open).
    src = sqlite3.connect(source, timeout=timeout)
    try:
        dst = sqlite3.connect(dest, timeout=timeout)
        try:
            src.backup(dst)
            dst.execute(f"PRAGMA journal_mode={journal}")
            if journal == "WAL":
                dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            dst.close()
    finally:
        src.close()


# ------------------------------------------------------------------------------ verify


def _check(conn: Connection, how: str) -> Checked:
    """The checks of ``dockd audit verify`` on the database behind ``conn``."""
    try:
        revision = revision_of(conn)
    except LedgerError as exc:  # several schema versions: a problem of this copy
        return Checked(0, 0, audit.GENESIS, (str(exc),), how)
    if revision != head_revision():
        why = f"its schema version is {revision or 'none'}, this dockd reads {head_revision()}"
        return Checked(0, 0, audit.GENESIS, (why + ": use the dockd that wrote it",), how)
    with Session(bind=conn) as s:
        r = audit.verify(s)
    problems = tuple(p.message for p in r.problems)
    return Checked(r.events_checked, r.files_checked, r.head.hash, problems, how)


def verify_sqlite(path: Path) -> Checked:
    """Open a backup read-only and run ``dockd audit verify``'s checks on it."""
    if not path.is_file():
        raise NotFound(f"no backup file {path}")
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with engine.connect() as conn:
            return _check(conn, "audit chain and file rows of the copy")
    except SQLAlchemyError as exc:
        why = getattr(exc, "orig", None) or exc
        raise BackupBroken(f"{path} is not a readable SQLite ledger: {why}") from exc
    finally:
        engine.dispose()


def _broken(path: Path, checked: Checked, what: str) -> BackupBroken:
    first = checked.problems[0]
    return BackupBroken(
        f"{what} {path} does not verify ({len(checked.problems)} problem(s)); first: {first}"
    )


# ------------------------------------------------------------------------------ backup


def backup(
    url: str,
    dest: Path,
    *,
    station: str,
    at: datetime,
    force: bool = False,
    group: str | None = DEFAULT_GROUP,
) -> BackupResult:
    """Copy the ledger at ``url`` to ``dest`` (a file, or a directory to name one in),
    verify the copy, and return what it holds. Raises :class:`BackupBroken` (the copy is
    kept) when the copy's audit trail does not verify."""
    backend = backend_of(url)
    final = target(dest, station=station, at=at, backend=backend)
    _refuse_existing(final, force)
    with _temporary(final) as tmp:
        if backend == "sqlite":
            source = _sqlite_file(url)
            if not source.is_file():
                raise NotFound(f"no ledger at {source}: nothing to back up; check [ledger] url")
            try:
                _copy_sqlite(source, tmp)
            except sqlite3.Error as exc:
                raise LedgerError(f"could not copy the ledger {source}: {exc}") from exc
            checked = verify_sqlite(tmp)
        else:
            checked = _pg_dump(url, tmp, group=group)
        _publish(tmp, final, force)
    result = BackupResult(final, final.stat().st_size, checked)
    log.info("ledger backed up", **result.as_dict())
    if not checked.ok:
        raise _broken(final, checked, "the backup (kept)")
    return result


def _pg_env(url: str) -> dict[str, str]:
    """libpq's environment for the ledger's server: the password never on a command line."""
    u = make_url(url)
    env = dict(os.environ)
    for var, value in (
        ("PGHOST", u.host or u.query.get("host")),
        ("PGPORT", str(u.port) if u.port else None),
        ("PGUSER", u.username),
        ("PGPASSWORD", u.password),
        ("PGDATABASE", u.database),
    ):
        if isinstance(value, str) and value:
            env[var] = value
    return env


def _pg_dump(url: str, tmp: Path, *, group: str | None) -> Checked:
    engine = make_engine(url, group=group)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snapshot = conn.scalar(text("SELECT pg_export_snapshot()"))
                _run(["pg_dump", "--format=custom", f"--snapshot={snapshot}", "-f", str(tmp)], url)
                checked = _check(conn, "audit chain and file rows in the dumped snapshot")
    except SQLAlchemyError as exc:
        raise LedgerError(f"could not back up the ledger: {exc}") from exc
    finally:
        engine.dispose()
    listing = _run(["pg_restore", "--list", str(tmp)], url)
    if "TABLE DATA public audit_events" not in listing:
        problem = "pg_restore --list shows no data of the audit_events table in the dump"
        return replace(checked, problems=(*checked.problems, problem))
    return replace(checked, how=checked.how + "; the archive reads (pg_restore --list)")


def _run(cmd: list[str], url: str) -> str:
    try:
        done = subprocess.run(cmd, env=_pg_env(url), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackupError(
            f"{cmd[0]} is not installed; install PostgreSQL's client (apt install "
            "postgresql-client) of the server's version or newer"
        ) from None
    if done.returncode != 0:
        raise BackupError(f"{cmd[0]} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


# ------------------------------------------------------------------------------- prune


def prune(directory: Path, *, station: str, backend: str, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups of this station's ledger in ``directory``
    (only files named as :func:`backup_name` names them); return the deleted ones."""
    ours = sorted(directory.glob(f"ledger-{station}-*{SUFFIXES[backend]}"))
    gone = ours[:-keep] if keep > 0 else []
    for path in gone:
        path.unlink(missing_ok=True)
    if gone:
        _fsync(directory, directory=True)
    return gone


# ----------------------------------------------------------------------------- restore


def _no_writer(ledger: Path) -> None:
    """Refuse when another process holds the ledger's write lock (an ingest, a sweep)."""
    conn = sqlite3.connect(ledger, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
    except sqlite3.OperationalError as exc:
        raise BackupError(
            f"the ledger {ledger} is being written by another process ({exc}): stop what "
            "writes it (dockd ingest, dockd sweep, dockd run elsewhere) and restore again"
        ) from None
    finally:
        conn.close()


def restore(
    url: str,
    backup_file: Path,
    *,
    daemon_lock: Path,
    at: datetime,
    force: bool = False,
    group: str | None = DEFAULT_GROUP,
) -> RestoreResult:
    """Put a verified SQLite backup in place of the ledger at ``url``.

    ``daemon_lock`` is ``dockd run``'s lock file: held here for the whole restore, so
    no daemon starts half-way and none is running.
    """
    if backend_of(url) == "postgresql":
        raise UsageError(
            "a PostgreSQL ledger is restored with pg_restore into an empty database "
            "(docs/operations.md, Back up and restore), not with dockd ledger restore"
        )
    ledger = _sqlite_file(url)
    checked = verify_sqlite(backup_file)
    if not checked.ok:
        raise _broken(backup_file, checked, "the backup; not restored:")
    lock = FileLock(daemon_lock)
    if not lock.try_acquire("dockd ledger restore"):
        raise AlreadyRunning(
            f"dockd run is running (PID {lock.holder() or '?'} holds {daemon_lock}): stop it "
            "first (systemctl stop dockd), restore, then start it again"
        )
    try:
        kept = None
        if ledger.exists():
            if not force:
                raise BackupError(
                    f"the ledger {ledger} exists; --force replaces it (it is kept beside "
                    "it as <ledger>.before-restore-<time>)"
                )
            _no_writer(ledger)
            kept = ledger.with_name(
                f"{ledger.name}.before-restore-{at.astimezone(UTC).strftime(_STAMP)}"
            )
            _refuse_existing(kept, False)
            with _temporary(kept) as tmp:
                _copy_sqlite(ledger, tmp)
                _publish(tmp, kept, False)
        secure_sqlite_path(ledger, group)
        _copy_sqlite(backup_file, ledger, journal="WAL", timeout=5)
    except sqlite3.Error as exc:
        raise LedgerError(f"could not restore {backup_file} into {ledger}: {exc}") from exc
    finally:
        lock.release()
    result = RestoreResult(ledger, backup_file, kept, checked)
    log.info("ledger restored", **result.as_dict())
    return result


def scheduled(
    url: str, cfg: BackupConfig, *, station: str, at: datetime, group: str | None
) -> tuple[BackupResult, list[Path]]:
    """One run of the ``[backup]`` schedule: a backup into ``cfg.dest`` (made if missing),
    then all but the ``cfg.keep`` newest of this station's backups there deleted. A backup
    that fails, or does not verify, deletes nothing."""
    if cfg.dest is None:
        raise UsageError('[backup] dest is not set: set dest = "/absolute/directory"')
    try:
        cfg.dest.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"[backup] dest {cfg.dest}: cannot create it: {exc.strerror}") from exc
    result = backup(url, cfg.dest, station=station, at=at, group=group)
    pruned = prune(cfg.dest, station=station, backend=backend_of(url), keep=cfg.keep)
    if pruned:
        log.info("old ledger backups deleted", kept=cfg.keep, deleted=[str(p) for p in pruned])
    return result, pruned
