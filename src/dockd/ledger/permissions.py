"""Who may read an SQLite ledger on disk (R15: officers' names, source paths and hashes).

A new SQLite ledger is created 0640 in a 0750 directory owned by the ``[ledger] group``
(default ``dockd-audit``; :func:`secure_sqlite_path`); an existing one loses any
permission for "other" when it is opened. Failing to chmod or chgrp is a warning (once
per file), never an error.

Auditors read it with plain ``sqlite3 -readonly`` while dockd writes, without being
able to write it. SQLite (3.22 and later) reads a WAL database it may not write as long
as its ``-wal`` and ``-shm`` files exist and are readable: the reader then builds the
WAL index in its own memory instead of taking part in the shared one (see "Read-Only
Databases" in https://www.sqlite.org/wal.html). What fails is a reader that finds them
missing, since it may not create them in a directory it cannot write ("attempt to write
a readonly database"). So, decided:

- the ``-wal`` and ``-shm`` have the database file's group and mode (0640): the group
  reads them, nobody but dockd writes them. A group-writable ``-shm`` would be faster
  for readers, but any member could then rewrite the WAL index that dockd's own
  connections trust, and with it what a checkpoint copies into the ledger;
- they are always there: dockd creates missing ones, empty (an empty ``-wal`` is an
  empty log), when it opens the ledger and again when it closes it (SQLite deletes
  both with the last connection; ``Ledger.close`` puts them back, never replacing one
  that exists). A checkpoint truncates or rewrites them in place,
  so their owner and mode stay; files SQLite creates itself take the database file's
  mode and, when dockd runs as root, its group;
- a directory open to "other" only for traversal (``--x``, such as a 0751 state
  directory) is left as it is: it shows no names and lets the group reach the file.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import URL, make_url

from dockd.errors import LedgerError

log = structlog.get_logger("dockd.ledger")

LEDGER_FILE_MODE = 0o640
LEDGER_DIR_MODE = 0o750
DEFAULT_GROUP = "dockd-audit"
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_WAL_FILES = ("-wal", "-shm")  # what a read-only reader of a WAL ledger needs present
_WAL_HEADER_BYTES = (2, 2)  # bytes 18 and 19 of the database header in WAL mode
_warned: set[tuple[str, str]] = set()


def _warn_once(key: str, subject: str, message: str, **fields: Any) -> None:
    if (key, subject) in _warned:
        return
    _warned.add((key, subject))
    log.warning(message, **fields)


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
    keep_wal_files(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        own = {path.name + suffix for suffix in ("", *_SQLITE_SIDE_FILES)}
        dedicated = set(os.listdir(directory)) <= own
        mode = stat.S_IMODE(os.stat(directory).st_mode)
    except OSError:
        return
    # Never a directory anyone may write to (/tmp and the like: sticky or world-
    # writable), whatever it holds right now: other programs depend on its mode. "Other"
    # traversal alone (0751) is kept: it shows no names, and the group gets through it.
    if not mode & 0o006:
        return
    if dedicated and not mode & (stat.S_ISVTX | 0o002):
        _tighten(directory, "the ledger directory")
    else:
        _warn_once(
            "shared-dir",
            str(directory),
            f"the ledger's directory {directory} is open to every user (mode {mode:04o}) and "
            "shared with other files, so dockd leaves it as it is; the ledger file itself is "
            "0640 or tighter. Better: keep the ledger in a directory of its own, mode 0750",
            path=str(directory),
        )


def _in_wal_mode(path: Path) -> bool:
    """Whether the database at ``path`` is in WAL mode (bytes 18 and 19 of its header)."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return False
    return len(header) == 20 and (header[18], header[19]) == _WAL_HEADER_BYTES


def keep_wal_files(path: Path) -> None:
    """Make the ``-wal`` and ``-shm`` of the WAL ledger at ``path`` exist, with its group and mode.

    A missing one is created empty (an empty ``-wal`` is an empty log, an empty
    ``-shm`` is rebuilt by the next writer), so that a reader who may not write the
    directory can open the ledger. An existing one gets the database file's group,
    and its mode without any "other" bit, so the group reads it and never writes it
    unless the admin made the database itself group-writable. Only the database
    file's owner (or root) does this; anyone else leaves the files to SQLite.
    """
    try:
        db = os.stat(path)
    except OSError:
        return
    if os.geteuid() not in (0, db.st_uid) or not _in_wal_mode(path):
        return
    mode = stat.S_IMODE(db.st_mode) & 0o770
    for suffix in _WAL_FILES:
        side = path.with_name(path.name + suffix)
        try:
            fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except FileExistsError:
            _align(side, db.st_gid, mode)
            continue
        except OSError as exc:
            _warn_once(
                "side-file",
                str(side),
                f"cannot create {side} beside the ledger: {exc.strerror}; readers who may "
                f"not write {path.parent} cannot open the ledger until dockd runs",
                path=str(side),
            )
            continue
        try:
            os.fchmod(fd, mode)
            _chgrp(side, fd, db.st_gid, str(db.st_gid))
        finally:
            os.close(fd)


def _align(side: Path, gid: int, mode: int) -> None:
    try:
        st = os.stat(side)
    except OSError:
        return
    if st.st_gid != gid:
        _chgrp(side, None, gid, str(gid))
    if stat.S_IMODE(st.st_mode) != mode:
        try:
            os.chmod(side, mode)
        except OSError as exc:
            _warn_once(
                "chmod-failed",
                str(side),
                f"cannot give {side} the ledger's mode {mode:04o}: {exc.strerror}; run "
                f"`chmod {mode:o} {side}` as its owner",
                path=str(side),
            )
