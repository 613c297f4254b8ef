"""The archive sweep: a verified second copy of every held (and chosen evidence) file (R8).

For each configured target ``run_archive`` does::

    present? (directory there, mounted when it must be, writable)  -- else alert, skip
    -> files to copy: covered by an active hold, or in an included category,
       and without a copy on this target yet
    -> one batch: <target>/<station>/<batch>/ as a BagIt bag (data/ + manifests)
    -> per file: copy while hashing (SHA-256 + BLAKE3), source hash must match the
       ledger, fsync, read the copy back from disk and hash it again, then record
       an ArchiveCopy row and an audit event
    -> manifest-sha256.txt and manifest-blake3.txt for what was verified

A missing or full target raises an alert and is skipped; the next sweep catches up,
because "not yet archived" is read from the ledger every time.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import blake3
import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dockd import store
from dockd.config.policy import ArchiveTarget
from dockd.context import Context, Stopped
from dockd.ledger import audit
from dockd.ledger.models import ArchiveCopy, Case, Hold, Recording
from dockd.policy import adapter as pledger
from dockd.sweeps import locations as loc
from dockd.sweeps.runs import Run, alert_once, sweep_run

log = structlog.get_logger("dockd.sweeps.archive")

CHUNK = 1 << 20
MB = 1_000_000


class TargetFull(Exception):
    pass


class CopyFailed(Exception):
    pass


@dataclass
class ArchiveItem:
    target: str
    file_id: int
    store_path: str
    path: str = ""  # relative to the target root
    size_bytes: int = 0
    sha256: str = ""
    blake3: str = ""
    status: str = "copied"  # copied | would-copy | failed
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TargetResult:
    name: str
    path: str
    status: str = "ok"  # ok | missing | full | failed | interrupted
    batch: str | None = None
    items: list[ArchiveItem] = field(default_factory=list)
    pending: int = 0  # still to copy after this run
    note: str = ""

    @property
    def copied(self) -> list[ArchiveItem]:
        return [i for i in self.items if i.status == "copied"]


@dataclass
class ArchiveReport:
    run_id: int
    dry_run: bool
    status: str = "running"
    targets: list[TargetResult] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            t.name: {
                "status": t.status,
                "batch": t.batch,
                "copied": len(t.copied),
                "failed": sum(1 for i in t.items if i.status == "failed"),
                "pending": t.pending,
            }
            for t in self.targets
        }

    def items(self) -> list[ArchiveItem]:
        return [i for t in self.targets for i in t.items]


# ------------------------------------------------------------------------- selection


def files_to_archive(s: Session, ctx: Context, target: str) -> list[int]:
    """Ids of stored files that must be on ``target`` and are not yet: held first."""
    station = ctx.config.station.id
    wanted: set[int] = set()
    for hold in s.scalars(select(Hold).where(Hold.released_at.is_(None))):
        covered = pledger.covered_files(s, hold, states=("stored",))
        wanted.update(r.id for r in covered if r.station == station)
    cats = list(ctx.config.archive.include_categories)
    if cats:
        arms = [
            Recording.category.in_(cats),
            Recording.case_number.in_(select(Case.case_number).where(Case.category.in_(cats))),
        ]
        if ctx.config.retention.case_category in cats:
            arms.append(Recording.case_number.is_not(None))
        wanted.update(
            s.scalars(
                select(Recording.id).where(
                    Recording.state == "stored", Recording.station == station, or_(*arms)
                )
            )
        )
    if not wanted:
        return []
    done: set[int] = set()
    ids = sorted(wanted)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        done.update(
            s.scalars(
                select(ArchiveCopy.file_id).where(
                    ArchiveCopy.target == target, ArchiveCopy.file_id.in_(chunk)
                )
            )
        )
    return [i for i in ids if i not in done]


# ---------------------------------------------------------------------------- the sweep


def run_archive(ctx: Context, *, dry_run: bool = False) -> ArchiveReport:
    with sweep_run(ctx, "archive", dry_run=dry_run) as run:
        report = ArchiveReport(run.id, dry_run)
        try:
            for target in ctx.config.archive.targets:
                result = TargetResult(target.name, str(target.path))
                report.targets.append(result)
                _one_target(ctx, run, target, result)
        finally:
            run.summary = report.counts()
    report.status = run.status
    return report


def target_problem(target: ArchiveTarget) -> str | None:
    """Why ``target`` cannot take copies now, or None when it can."""
    p = target.path
    if not p.is_dir():
        return f"{p} is not there (unplugged, not mounted, or never created)"
    if target.must_be_mounted and not os.path.ismount(p):
        return f"{p} is not a mount point: the {target.kind} medium is not mounted"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} is not writable by dockd"
    return None


def _one_target(ctx: Context, run: Run, target: ArchiveTarget, result: TargetResult) -> None:
    problem = target_problem(target)
    with ctx.ledger.read() as s:
        ids = files_to_archive(s, ctx, target.name)
    result.pending = len(ids)
    if problem is not None:
        result.status, result.note = "missing", problem
        if not run.dry_run:
            alert_once(
                ctx,
                "archive.target_missing",
                target.name,
                f"archive target {target.name!r}: {problem}. {len(ids)} file(s) wait to be "
                "archived; plug in / mount it and the next archive sweep catches up",
                severity="warning",
                details={"path": str(target.path), "pending": len(ids)},
            )
        return
    ids = ids[: ctx.config.archive.batch_max_files]
    if not ids:
        return
    if run.dry_run:
        with ctx.ledger.read() as s:
            for row in s.scalars(select(Recording).where(Recording.id.in_(ids))):
                result.items.append(
                    ArchiveItem(
                        target.name,
                        row.id,
                        row.store_path,
                        size_bytes=row.size_bytes,
                        status="would-copy",
                    )
                )
        return
    batch = f"{ctx.clock.now():%Y%m%dT%H%M%SZ}-r{run.id}"
    bag_rel = PurePosixPath(ctx.config.station.id) / batch
    bag = target.path / bag_rel
    result.batch = batch
    used = _bytes_on(ctx, target.name)
    try:
        loc.makedirs(target.path, bag_rel / "data")
        for file_id in ids:
            ctx.check_stop()
            item = _archive_one(ctx, target, bag, bag_rel, batch, file_id, used)
            if item is None:
                continue
            result.items.append(item)
            used += item.size_bytes if item.status == "copied" else 0
            run.heartbeat(target=target.name, copied=len(result.copied))
    except TargetFull as exc:
        result.status, result.note = "full", str(exc)
        alert_once(
            ctx,
            "archive.target_full",
            target.name,
            f"archive target {target.name!r} is full: {exc}. Replace or empty the medium; the "
            "next archive sweep catches up",
            severity="warning",
            details={"path": str(target.path)},
        )
    except Stopped:
        result.status = "interrupted"
        raise
    except OSError as exc:
        result.status, result.note = "failed", f"{exc.strerror or exc} ({exc.filename or bag})"
        alert_once(
            ctx,
            "archive.target_failed",
            target.name,
            f"archive target {target.name!r} failed: {result.note}",
            severity="warning",
        )
    finally:
        copied = result.copied
        result.pending = max(0, result.pending - len(copied))
        if copied:
            write_manifests(ctx, bag, batch, target, copied)
        else:
            with contextlib.suppress(OSError):
                loc.prune_emptied(target.path, bag / "data")


def _bytes_on(ctx: Context, target: str) -> int:
    with ctx.ledger.read() as s:
        total = s.scalar(
            select(func.coalesce(func.sum(Recording.size_bytes), 0))
            .select_from(ArchiveCopy)
            .join(Recording, Recording.id == ArchiveCopy.file_id)
            .where(ArchiveCopy.target == target)
        )
    return int(total or 0)


def _check_room(target: ArchiveTarget, size: int, used: int) -> None:
    if target.capacity_mb is not None and used + size > target.capacity_mb * MB:
        raise TargetFull(
            f"{used / MB:.0f} MB staged and the next file needs {size / MB:.1f} MB more than "
            f"its capacity_mb = {target.capacity_mb}"
        )
    st = os.statvfs(target.path)
    free = st.f_bavail * st.f_frsize
    if free - size < target.reserve_mb * MB:
        raise TargetFull(
            f"{free / MB:.0f} MB free, the next file needs {size / MB:.1f} MB and "
            f"reserve_mb = {target.reserve_mb} must stay free"
        )


def _archive_one(
    ctx: Context,
    target: ArchiveTarget,
    bag: Path,
    bag_rel: PurePosixPath,
    batch: str,
    file_id: int,
    used: int,
) -> ArchiveItem | None:
    with ctx.ledger.read() as s:
        row = s.get(Recording, file_id)
        if row is None or row.state != "stored":
            return None
        src = loc.stored_path(ctx.config, row)
        rel = PurePosixPath("data") / loc.rel_path(row)
        expected, size, store_path = row.blake3, row.size_bytes, row.store_path
    item = ArchiveItem(target.name, file_id, store_path, (bag_rel / rel).as_posix(), size)
    _check_room(target, size, used)
    dst = bag / rel
    loc.makedirs(bag, rel.parent)
    try:
        sha, b3 = copy_hashing(src, dst, expected)
        check = verify_copy(dst)
        if check != (sha, b3):
            with contextlib.suppress(OSError):
                dst.unlink()
            raise CopyFailed(
                f"the copy at {dst} read back as SHA-256 {check[0]} / BLAKE3 {check[1]}, "
                f"written as {sha} / {b3}: the target medium may be failing"
            )
    except FileNotFoundError as exc:
        if str(exc.filename) == str(src):
            with ctx.ledger.read() as s:
                now_stored = s.scalar(select(Recording.state).where(Recording.id == file_id))
            if now_stored != "stored":
                return None  # trashed by the retention sweep meanwhile
            item.status, item.note = "failed", f"not in the store at {src}"
            alert_once(
                ctx,
                "fixity.missing",
                store_path,
                f"file {file_id} ({store_path}, BLAKE3 {expected}) should be archived but is "
                f"not in the store at {src}",
            )
            return item
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TargetFull(f"no space left while copying {store_path}") from exc
        raise
    except CopyFailed as exc:
        item.status, item.note = "failed", str(exc)
        alert_once(ctx, "archive.copy_failed", f"{target.name}:{store_path}", str(exc))
        return item
    now = ctx.clock.now()
    item.sha256, item.blake3 = sha, b3
    with ctx.ledger.session() as s:
        s.add(
            ArchiveCopy(
                file_id=file_id,
                target=target.name,
                batch=batch,
                path=item.path,
                blake3=b3,
                sha256=sha,
                copied_at=now,
                verified_at=now,
            )
        )
        row = s.get_one(Recording, file_id)
        audit.record(
            s,
            at=now,
            station=row.station,
            actor=ctx.actor,
            action="file.archive",
            subject_type="file",
            subject_id=file_id,
            details={
                "target": target.name,
                "batch": batch,
                "path": item.path,
                "hash": {"blake3": b3, "sha256": sha},
                "verified": True,
            },
        )
    return item


def copy_hashing(src: Path, dst: Path, expected_blake3: str) -> tuple[str, str]:
    """Copy ``src`` to ``dst`` (never over an existing file) hashing once; (sha256, blake3).

    The source must hash to the ledger's BLAKE3, or nothing is kept: a modified
    original is never archived as if it were the recording.
    """
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "already exists", str(dst))
    tmp = dst.with_name(dst.name + ".part")
    sha, b3 = hashlib.sha256(), blake3.blake3()
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            while chunk := os.read(fin, CHUNK):
                sha.update(chunk)
                b3.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
            os.fsync(out)
        finally:
            os.close(out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        os.close(fin)
    if b3.hexdigest() != expected_blake3:
        tmp.unlink()
        raise CopyFailed(
            f"{src} hashes to BLAKE3 {b3.hexdigest()} but the ledger says {expected_blake3}: "
            "the original has changed; it was not archived (run `dockd sweep fixity`)"
        )
    os.chmod(tmp, store.FILE_MODE)
    os.rename(tmp, dst)
    loc.fsync_dir(dst.parent)
    return sha.hexdigest(), b3.hexdigest()


def verify_copy(path: Path) -> tuple[str, str]:
    """(sha256, blake3) of a copy read back from the medium, not from the page cache."""
    sha, b3 = hashlib.sha256(), blake3.blake3()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while chunk := os.read(fd, CHUNK):
            sha.update(chunk)
            b3.update(chunk)
    finally:
        os.close(fd)
    return sha.hexdigest(), b3.hexdigest()


def write_manifests(
    ctx: Context, bag: Path, batch: str, target: ArchiveTarget, items: list[ArchiveItem]
) -> None:
    """Make the batch a BagIt bag: bagit.txt, bag-info.txt, payload and tag manifests.

    ``manifest-sha256.txt`` is what BagIt tools check; ``manifest-blake3.txt`` carries
    the hashes the ledger keeps, so a copy can be matched to its ledger row directly.
    """
    prefix = len(bag.relative_to(target.path).as_posix()) + 1
    payload = [(i, i.path[prefix:]) for i in items]
    total = sum(i.size_bytes for i in items)
    files = {
        "bagit.txt": "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": (
            f"Source-Organization: {ctx.config.station.unit}\n"
            f"Internal-Sender-Identifier: {ctx.config.station.id}\n"
            f"External-Identifier: {batch}\n"
            f"Bagging-Date: {_date(ctx.clock.now())}\n"
            f"Payload-Oxum: {total}.{len(items)}\n"
            f"Dockd-Archive-Target: {target.name}\n"
        ),
        "manifest-sha256.txt": "".join(f"{i.sha256}  {p}\n" for i, p in payload),
        "manifest-blake3.txt": "".join(f"{i.blake3}  {p}\n" for i, p in payload),
    }
    for name, body in files.items():
        _write_file(bag / name, body.encode("utf-8"))
    tags = "".join(
        f"{hashlib.sha256(body.encode('utf-8')).hexdigest()}  {name}\n"
        for name, body in files.items()
    )
    _write_file(bag / "tagmanifest-sha256.txt", tags.encode("utf-8"))
    loc.fsync_dir(bag)


def _date(at: datetime) -> str:
    return at.date().isoformat()


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
