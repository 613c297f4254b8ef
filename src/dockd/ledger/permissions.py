"""Who may read an SQLite ledger on disk (R15: officers' names, source paths and hashes).

A new SQLite ledger is created 0640 in a 0750 directory owned by the ``[ledger] group``
(:func:`secure_sqlite_path`); an existing one loses any permission for "other" when it
is opened. Failing to chmod or chgrp is a warning (once per file), never an error.
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
DEFAULT_GROUP = "dockd"
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
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
