"""The archive sweep: a verified second copy of every held (and chosen evidence) file (R8).

For each configured target ``run_archive`` does::

    present? (directory there, mounted when it must be, writable)  -- else alert, skip
    -> files to copy: covered by an active hold, or in an included category,
       and without a copy on this target yet
    -> one batch: <target>/<station>/<batch>/ as a BagIt bag (data/ + manifests)
    -> per file: copy while hashing (SHA-256 + BLAKE3), source hash must match the
       ledger, fsync, read the copy back from disk and hash it again, then record
       an ArchiveCopy row and an audit event
    -> manifest-sha256.txt and manifest-blake3.txt for what was verified, written
       by the bag module shared with evidence export (:mod:`dockd.evidence.bag`)
    -> optical targets: the batch as a verified disc image <batch>.iso beside it,
       then burnt when a burner is configured (:mod:`dockd.sweeps.optical`)

A missing or full target raises an alert and is skipped; the next sweep catches up,
because "not yet archived" is read from the ledger every time.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dockd.config.policy import ArchiveTarget
from dockd.context import Context, Stopped
from dockd.evidence import bag
from dockd.ledger import audit
from dockd.ledger.models import ArchiveCopy, Recording
from dockd.policy import kept
from dockd.sweeps import filing, optical
from dockd.sweeps import locations as loc
from dockd.sweeps.runs import Run, alert_once, sweep_run

log = structlog.get_logger("dockd.sweeps.archive")

MB = 1_000_000
HASHES = ("sha256",)  # the BagIt manifest of a batch; BLAKE3 goes beside it

CopyStatus = Literal["copied", "would-copy", "failed"]
TargetStatus = Literal["ok", "missing", "full", "failed", "interrupted"]


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
    status: CopyStatus = "copied"
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TargetResult:
    name: str
    path: str
    status: TargetStatus = "ok"
    batch: str | None = None
    items: list[ArchiveItem] = field(default_factory=list)
    pending: int = 0  # still to copy after this run
    note: str = ""
    image: str | None = None  # optical targets: the batch's verified disc image

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
                **({"image": t.image} if t.image else {}),
            }
            for t in self.targets
        }

    def items(self) -> list[ArchiveItem]:
        return [i for t in self.targets for i in t.items]


# ------------------------------------------------------------------------- selection


def files_to_archive(s: Session, ctx: Context, target: str) -> list[int]:
    """Ids of stored files that must be on ``target`` and are not yet: held first."""
    wanted = kept.kept_files(
        s,
        station=ctx.config.station.id,
        categories=ctx.config.archive.include_categories,
        case_category=ctx.config.retention.case_category,
        closed_cases=ctx.config.archive.closed_cases,
    )
    if not wanted:
        return []
    done: set[int] = set()
    ids = sorted(wanted)
    for i in range(0, len(ids), 500):
        on_target = ArchiveCopy.file_id.in_(ids[i : i + 500])
        done.update(
            s.scalars(select(ArchiveCopy.file_id).where(ArchiveCopy.target == target, on_target))
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
            if not dry_run:
                filing.unfiled_cases(ctx)
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
    bag_dir = target.path / bag_rel
    result.batch = batch
    used = _bytes_on(ctx, target.name)
    ctx.progress.begin(f"archive {target.name}", len(ids))
    try:
        loc.makedirs(target.path, bag_rel / "data")
        for file_id in ids:
            ctx.check_stop()
            item = _archive_one(ctx, target, bag_dir, bag_rel, batch, file_id, used)
            ctx.progress.step(item.size_bytes if item is not None else 0)
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
        result.status, result.note = "failed", f"{exc.strerror or exc} ({exc.filename or bag_dir})"
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
        if not copied:
            with contextlib.suppress(OSError):
                loc.prune_emptied(target.path, bag_dir / "data")
        elif _bag_batch(ctx, bag_dir, batch, target, copied) and target.kind == "optical":
            result.image = optical.disc_image(ctx, bag_dir, batch, target, copied)


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
    bag_dir: Path,
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
        rel = loc.rel_path(row)
        expected, size, store_path = row.blake3, row.size_bytes, row.store_path
    path = (bag_rel / "data" / rel).as_posix()
    item = ArchiveItem(target.name, file_id, store_path, path, size)
    _check_room(target, size, used)
    try:
        copied = _copy_verified(src, bag_dir, rel, expected)
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
    item.sha256, item.blake3 = copied.hashes["sha256"], copied.blake3
    _record(ctx, item, batch)
    return item


def _copy_verified(src: Path, bag_dir: Path, rel: PurePosixPath, expected: str) -> bag.Payload:
    """Copy into the batch (the source must hash to the ledger's BLAKE3, or nothing is
    kept: a modified original is never archived as if it were the recording), then
    read the copy back from the medium: it must hash the same."""

    def matches_ledger(copied: bag.Payload) -> None:
        if copied.blake3 != expected:
            raise CopyFailed(
                f"{src} hashes to BLAKE3 {copied.blake3} but the ledger says {expected}: "
                "the original has changed; it was not archived (run `dockd sweep fixity`)"
            )

    copied = bag.copy_in(src, bag_dir, rel, HASHES, check=matches_ledger)
    again = bag.read_back(bag_dir, rel, HASHES)
    if again != copied:
        dst = bag_dir / "data" / rel
        with contextlib.suppress(OSError):
            dst.unlink()
        raise CopyFailed(
            f"the copy at {dst} read back as SHA-256 {again.hashes['sha256']} / BLAKE3 "
            f"{again.blake3}, written as {copied.hashes['sha256']} / {copied.blake3}: the "
            "target medium may be failing"
        )
    return copied


def _record(ctx: Context, item: ArchiveItem, batch: str) -> None:
    """The verified copy's ArchiveCopy row and its ``file.archive`` audit event."""
    now = ctx.clock.now()
    where = {"target": item.target, "batch": batch, "path": item.path}
    with ctx.ledger.session() as s:
        s.add(
            ArchiveCopy(
                file_id=item.file_id,
                **where,
                blake3=item.blake3,
                sha256=item.sha256,
                copied_at=now,
                verified_at=now,
            )
        )
        row = s.get_one(Recording, item.file_id)
        hashes = {"blake3": item.blake3, "sha256": item.sha256}
        details = {**where, "hash": hashes, "verified": True}
        audit.record(
            s,
            at=now,
            station=row.station,
            actor=ctx.actor,
            action="file.archive",
            subject_type="file",
            subject_id=item.file_id,
            details=details,
        )


def _bag_batch(
    ctx: Context, bag_dir: Path, batch: str, target: ArchiveTarget, items: list[ArchiveItem]
) -> bool:
    """Write the batch's bag after its copies, whatever ended them: a bag that cannot be
    made is an alert, never an exception that would hide why the copying stopped."""
    try:
        write_manifests(ctx, bag_dir, batch, target, items)
        return True
    except (OSError, bag.BagFailed) as exc:
        alert_once(
            ctx,
            "archive.bag_failed",
            target.name,
            f"archive batch {batch} on target {target.name!r} is not a valid bag: {exc}. "
            "Its copies are recorded and verified; check the medium, then run "
            "`dockd sweep archive` again",
            severity="warning",
            details={"path": str(bag_dir)},
        )
        return False


def write_manifests(
    ctx: Context, bag_dir: Path, batch: str, target: ArchiveTarget, items: list[ArchiveItem]
) -> None:
    """Make the batch a BagIt bag of the verified copies (:func:`dockd.evidence.bag.write_bag`).

    ``manifest-sha256.txt`` is what BagIt tools check; ``manifest-blake3.txt`` carries
    the hashes the ledger keeps, so a copy can be matched to its ledger row directly.
    """
    data = bag_dir.relative_to(target.path) / "data"
    files = [
        bag.Payload(
            PurePosixPath(i.path).relative_to(data.as_posix()),
            i.size_bytes,
            i.blake3,
            {"sha256": i.sha256},
        )
        for i in items
    ]
    info = {
        "Source-Organization": ctx.config.station.unit,
        "Internal-Sender-Identifier": ctx.config.station.id,
        "External-Identifier": batch,
        "Bagging-Date": ctx.clock.now().date().isoformat(),
        "Dockd-Archive-Target": target.name,
    }
    bag.write_bag(bag_dir, files, info, algorithms=HASHES, blake3_name="manifest-blake3.txt")
