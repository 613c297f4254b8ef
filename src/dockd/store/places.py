"""Can the daemon use every directory the config names? (``dockd config check``)

For the store, the quarantine, ``.incoming``, the trash, the per-case tree, archive
targets, the web view's export packages, the backup destination and the weekly
report directory: there, or creatable
(its nearest existing parent writable); a directory; writable by this process; not
readable by every user where footage lies (R15); and on the store's filesystem where
files are hard-linked or renamed to (publish, the per-case view, the trash).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dockd.config import Config
from dockd.config.findings import Finding, Level

INCOMING = ".incoming"


@dataclass(frozen=True)
class Place:
    key: str
    path: Path
    footage: bool = False  # holds footage (or links to it): never world-readable
    same_fs: bool = False  # hard-linked or renamed to from the store: must share its disk
    removable: bool = False  # may be unplugged now: missing is a warning
    links: bool = False  # files are hard-linked inside it (publish)
    made: bool = True  # dockd creates it when missing (an archive target it never does)


def places(cfg: Config) -> list[Place]:
    """Every directory of ``cfg`` dockd writes, with what it needs of it."""
    store = cfg.store.root
    found = [
        Place("[store] root", store, footage=True, links=True),
        Place("[store] quarantine", cfg.store.quarantine_root, footage=True, links=True),
        Place("[store] root (.incoming)", store / INCOMING, footage=True, same_fs=True),
        Place(
            "[retention] trash",
            cfg.retention.trash or store.parent / "trash",
            footage=True,
            same_fs=True,
        ),
        Place(
            "[reports] by_case_root",
            cfg.reports.by_case_root or store.parent / "by-case",
            footage=True,
            same_fs=True,
        ),
    ]
    found.append(Place("[web] exports", cfg.web.exports_root(store), footage=True))
    for t in cfg.archive.targets:
        removable = t.kind == "removable" or t.must_be_mounted
        key = f"[[archive.targets]] {t.name}: path"
        found.append(Place(key, t.path, removable=removable, made=False))
    if cfg.backup.dest is not None:
        found.append(Place("[backup] dest", cfg.backup.dest))
    if cfg.schedule.weekly_report_dir is not None:
        found.append(Place("[schedule] weekly_report_dir", cfg.schedule.weekly_report_dir))
    return found


def _existing_parent(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _links_work(directory: Path) -> bool:
    """Can a file be hard-linked in ``directory``? (Tried, then removed.)"""
    with tempfile.TemporaryDirectory(prefix=".dockd-check-", dir=directory) as tmp:
        src = Path(tmp) / "a"
        src.touch()
        try:
            os.link(src, Path(tmp) / "b")
        except OSError:
            return False
    return True


def check_place(place: Place, store_dev: int | None) -> list[Finding]:
    """The findings of one place (none: it is usable as it is)."""
    key, path = place.key, place.path
    err = Level.WARNING if place.removable else Level.ERROR
    if not path.exists():
        if place.removable:
            return [
                Finding(
                    Level.WARNING,
                    key,
                    f"{path} is not there (unplugged?): plug in or "
                    "mount it before the archive sweep",
                )
            ]
        if not place.made:
            return [
                Finding(
                    Level.ERROR,
                    key,
                    f"{path} is not there and the archive sweep does not create it: "
                    f"mkdir -m 0750 {path} (or mount its disk there)",
                )
            ]
        parent = _existing_parent(path)
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return [
                Finding(
                    err,
                    key,
                    f"{path} is not there and cannot be created ({parent} is "
                    f"not a writable directory): create it, or set {key} elsewhere",
                )
            ]
        found = [Finding(Level.OK, key, f"{path} is not there yet; dockd creates it")]
        dev = parent.stat().st_dev
    elif not path.is_dir():
        return [Finding(Level.ERROR, key, f"{path} is not a directory: set {key} to one")]
    else:
        found = []
        st = path.stat()
        dev = st.st_dev
        if not os.access(path, os.W_OK | os.X_OK):
            found.append(
                Finding(
                    err,
                    key,
                    f"{path} is not writable by this process (uid "
                    f"{os.geteuid()}): a read-only filesystem or the wrong owner; "
                    f"`chown` it to the account dockd runs as, or remount it rw",
                )
            )
        elif place.links and not _links_work(path):
            found.append(
                Finding(
                    Level.ERROR,
                    key,
                    f"{path} is on a filesystem without hard "
                    "links, which publishing needs: use ext4, XFS or btrfs",
                )
            )
        if place.footage and st.st_mode & stat.S_IROTH:
            found.append(
                Finding(
                    Level.ERROR,
                    key,
                    f"{path} is readable by every user (mode "
                    f"{stat.S_IMODE(st.st_mode):04o}); footage is confidential "
                    f"(R15): chmod o-rwx {path}",
                )
            )
    if place.same_fs and store_dev is not None and dev != store_dev:
        found.append(
            Finding(
                Level.ERROR,
                key,
                f"{path} is not on the store's filesystem; files "
                f"are hard-linked or renamed there from the store: set {key} to a "
                "directory on the store's disk",
            )
        )
    if not found:
        found.append(Finding(Level.OK, key, f"{path} is a writable directory"))
    return found


def check_places(cfg: Config) -> list[Finding]:
    """Every place of ``cfg`` checked (the store first: the others are compared with it)."""
    store_dev = None
    with contextlib.suppress(OSError):
        store_dev = _existing_parent(cfg.store.root).stat().st_dev
    findings: list[Finding] = []
    for place in places(cfg):
        try:
            findings += check_place(place, store_dev)
        except OSError as exc:
            findings.append(Finding(Level.ERROR, place.key, f"{place.path}: {exc.strerror}"))
    return findings
