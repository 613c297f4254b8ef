"""The per-case view of each day (R4: "stored per day and per case").

Beside the store (default ``<store.root>/../by-case``, or ``[reports] by_case_root``)
dockd keeps a tree ``<case>/<YYYY>/<MM>/<DD>/<file name>`` of *hard links* to the
originals of every stored, tagged file, the day being the recording day in the
station's time zone. A hard link is the same inode as the original: the same
bytes, the same read-only mode (0440); nothing is copied and nothing is moved. Its
directories are 0750 (:func:`dockd.store.mkdirs`, whatever the umask) in dockd's own
group, never the ``[ledger] group``: people see footage through dockd, under a grant.

:func:`rebuild` makes the tree match the ledger: it adds missing links, replaces
links that point at the wrong inode and removes links of files that are no longer
tagged with that case (or were trashed or purged). Removing a link never touches
the original in the store. It is idempotent, so it runs after every tag change
(``dockd tag``, ``dockd cases import``) and can run any time as
``dockd cases links``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.ledger.models import Recording
from dockd.store import mkdirs
from dockd.store.paths import safe_component


def by_case_root(config: Config) -> Path:
    """Where the per-case tree lives."""
    return config.reports.by_case_root or config.store.root.parent / "by-case"


def original_path(config: Config, row: Recording) -> Path:
    """The absolute path of a stored original (quarantined recorders live in quarantine)."""
    root = config.store.quarantine_root if row.in_quarantine else config.store.root
    return root / row.store_path


@dataclass
class LinkResult:
    linked: int = 0
    kept: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)


def desired_links(session: Session, config: Config) -> dict[PurePosixPath, Path]:
    """The tree the ledger asks for: link path (relative to the root) -> original."""
    tz = config.station.tz
    rows = session.scalars(
        select(Recording)
        .where(
            Recording.state == "stored",
            Recording.case_number.is_not(None),
            Recording.station == config.station.id,
        )
        .order_by(Recording.id)
    )
    out: dict[PurePosixPath, Path] = {}
    for row in rows:
        assert row.case_number is not None
        day = row.recorded_start.astimezone(tz)
        folder = PurePosixPath(
            safe_component(row.case_number, fallback="case"),
            f"{day.year:04d}",
            f"{day.month:02d}",
            f"{day.day:02d}",
        )
        name = PurePosixPath(row.store_path).name
        rel = folder / name
        if rel in out:  # two recorders wrote the same name on the same day
            stem, dot, ext = name.rpartition(".")
            rel = folder / (f"{stem}~{row.id}.{ext}" if dot else f"{name}~{row.id}")
        out[rel] = original_path(config, row)
    return out


def _existing(root: Path) -> dict[PurePosixPath, os.stat_result]:
    found: dict[PurePosixPath, os.stat_result] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                found[PurePosixPath(path.relative_to(root).as_posix())] = st
    return found


def _prune_empty(root: Path) -> None:
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        if Path(dirpath) != root:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)  # only succeeds when empty


def rebuild(session: Session, config: Config) -> LinkResult:
    """Make the per-case tree match the ledger; never moves or changes an original."""
    root = by_case_root(config)
    result = LinkResult()
    want = desired_links(session, config)
    try:
        mkdirs(root)
        have = _existing(root)
    except OSError as exc:
        result.errors.append(f"cannot use the per-case tree {root}: {exc.strerror or exc}")
        return result
    for rel, st in have.items():
        target = want.get(rel)
        if target is not None and stat.S_ISREG(st.st_mode):
            try:
                orig = target.stat()
            except OSError:
                orig = None
            if orig is not None and (orig.st_dev, orig.st_ino) == (st.st_dev, st.st_ino):
                result.kept += 1
                continue
        try:
            (root / rel).unlink()  # a link of ours: the original keeps its own name
            result.removed += 1
        except OSError as exc:
            result.errors.append(f"cannot remove {root / rel}: {exc.strerror or exc}")
    for rel, target in want.items():
        link = root / rel
        if link.exists():
            continue
        try:
            mkdirs(link.parent)
            os.link(target, link, follow_symlinks=False)
            result.linked += 1
        except FileNotFoundError:
            result.errors.append(
                f"{target} is missing from the store; run a fixity check (`dockd` alerts follow)"
            )
        except OSError as exc:
            result.errors.append(f"cannot link {target} as {link}: {exc.strerror or exc}")
    _prune_empty(root)
    return result


def _case_day_folder(config: Config, row: Recording) -> Path:
    assert row.case_number is not None
    day = row.recorded_start.astimezone(config.station.tz)
    return (
        by_case_root(config)
        / safe_component(row.case_number, fallback="case")
        / f"{day.year:04d}"
        / f"{day.month:02d}"
        / f"{day.day:02d}"
    )


def link_file(config: Config, row: Recording) -> Path | None:
    """Add the per-case link of one just-tagged file (cheap: no walk of the tree).

    Used by ingest when a file is tagged on arrival; :func:`rebuild` stays the way
    to reconcile the whole tree. Returns the link, or None when the file has no case.
    """
    if row.case_number is None or row.state != "stored" or row.station != config.station.id:
        return None
    original = original_path(config, row)
    orig = original.stat()
    folder = _case_day_folder(config, row)
    mkdirs(folder)
    name = PurePosixPath(row.store_path).name
    stem, dot, ext = name.rpartition(".")
    for candidate in (name, f"{stem}~{row.id}.{ext}" if dot else f"{name}~{row.id}"):
        link = folder / candidate
        try:
            st = link.lstat()
        except FileNotFoundError:
            os.link(original, link, follow_symlinks=False)
            return link
        if (st.st_dev, st.st_ino) == (orig.st_dev, orig.st_ino):
            return link
    raise FileExistsError(f"{folder} already holds two other files named {name}")


def unlink_file(config: Config, row: Recording) -> int:
    """Remove the per-case links of one file (before it goes to trash or is re-tagged).

    A hard link keeps the bytes alive: a file leaving the store must leave this
    tree too, or purging it would not free it. Looks where the file's current case
    puts it (the tree is rebuilt on every re-tag). Returns how many links went.
    """
    original = original_path(config, row)
    try:
        orig = original.stat()
    except FileNotFoundError:
        return 0
    if row.case_number is None:
        return 0
    folder = _case_day_folder(config, row)
    name = PurePosixPath(row.store_path).name
    stem, dot, ext = name.rpartition(".")
    removed = 0
    for candidate in (name, f"{stem}~{row.id}.{ext}" if dot else f"{name}~{row.id}"):
        link = folder / candidate
        with contextlib.suppress(FileNotFoundError):
            st = link.lstat()
            if (st.st_dev, st.st_ino) == (orig.st_dev, orig.st_ino):
                link.unlink()
                removed += 1
    return removed
