"""The fixity sweep's repairs: each copy of a recording restored from the other (issue 15).

:func:`guard_copies` is what :func:`dockd.sweeps.fixity.run_fixity` calls after the store::

    the archive copies checked (:mod:`dockd.sweeps.copies`)
    -> with [fixity] repair: each store file this run found missing or modified restored
       from the first copy (on a present target) that hashes to the ledger's BLAKE3
       (``file.repaired``, with the hash found, the one restored and the source copy);
       the per-case view re-linked to the restored file (a new inode)
    -> each bad copy made again from the store file, when that hashes right
       (``archive.copy_repaired``); an optical target's image written again
    -> no copy verifies, or the store file does not when a copy is bad: nothing is
       overwritten, a critical ``fixity.unrepairable`` alert names the file, both
       paths and both hashes
    -> the alerts (:func:`dockd.sweeps.copies.alerts`)

A dry run hashes each repair's source and says what it would repair. How a file is
rewritten so that a crash leaves the old or the new one is :mod:`dockd.sweeps.rewrite`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import select

from dockd.config.policy import ArchiveTarget
from dockd.context import Context
from dockd.errors import DockdError
from dockd.evidence import bycase
from dockd.ledger import audit
from dockd.ledger.models import ArchiveCopy, FileState, Recording
from dockd.sweeps import copies, rewrite
from dockd.sweeps import locations as loc
from dockd.sweeps.copies import (
    ALGORITHM,
    MB,
    Action,
    CopyFinding,
    CopyReport,
    CopyStatus,
    StoreFinding,
    audit_copy,
)
from dockd.sweeps.runs import Run, Throttle

log = structlog.get_logger("dockd.sweeps.repair")


def guard_copies(
    ctx: Context, run: Run, now: datetime, findings: Sequence[StoreFinding], *, full: bool
) -> CopyReport:
    """Check the archive copies, repair each copy from the other, raise the alerts."""
    report = copies.check_copies(ctx, run, now, full=full)
    if ctx.config.fixity.repair:
        repair_all(ctx, run, now, report, findings)
    if not run.dry_run:
        copies.alerts(ctx, report)
    return report


def repair_all(
    ctx: Context, run: Run, now: datetime, report: CopyReport, findings: Sequence[StoreFinding]
) -> None:
    """Store files first (a bad copy can then be made again from the restored file)."""
    throttle = Throttle(ctx.config.fixity.rate_mb_s * MB, ctx.stop)
    present = report.present
    relink = False
    for sf in findings:
        if sf.kind in (CopyStatus.MISSING, CopyStatus.MODIFIED) and sf.file_id is not None:
            relink |= _restore(ctx, run, now, report, present, sf, throttle)
    if relink:
        with ctx.ledger.read() as s:
            links = bycase.rebuild(s, ctx.config)
        for error in links.errors:
            log.warning("fixity.relink_failed", error=error)
    by_name = {t.name: t for t in present}
    images: set[Path] = set()  # remade this run: once for all its copies
    for cf in report.findings:
        _remake(ctx, run, now, report, by_name[cf.target], cf, throttle, images)


def _restore(
    ctx: Context,
    run: Run,
    now: datetime,
    report: CopyReport,
    present: list[ArchiveTarget],
    sf: StoreFinding,
    throttle: Throttle,
) -> bool:
    """Restore one store file from the first copy that verifies; True if it has a case."""
    assert sf.file_id is not None
    with ctx.ledger.read() as s:
        row = s.get(Recording, sf.file_id)
        if row is None or row.state != FileState.STORED:
            return False
        dest, root = loc.stored_path(ctx.config, row), loc.root_of(ctx.config, row)
        expected, case = row.blake3, row.case_number
        copies = list(s.scalars(select(ArchiveCopy).where(ArchiveCopy.file_id == row.id)))
    bad = {f.copy_id: f for f in report.findings if f.file_id == sf.file_id}
    tried: list[str] = []
    for target in present:
        for c in (c for c in copies if c.target == target.name):
            place = rewrite.place_of(target, c.path)
            if c.id in bad and place.image is None:  # (a bad image may hold a good file)
                b = bad[c.id]
                tried.append(f"{place.shown} ({b.status}, {ALGORITHM} {b.found or '-'})")
                continue
            shown = _restore_from(ctx, run, place, root, dest, expected, throttle, tried)
            if shown is None:
                continue
            verb = "would be restored" if run.dry_run else "restored"
            sf.note = f"{sf.note}; {verb} from {target.name}: {shown}".lstrip("; ")
            report.restored[sf.file_id] = (
                f"{sf.path} was {sf.kind.upper()} in the store ({ALGORITHM} found "
                f"{sf.found or '-'}, expected {expected}) and is {verb} from {target.name}: "
                f"{shown}"
            )
            if not run.dry_run:
                source = {"target": target.name, "path": c.path, "where": shown}
                if not _record_restore(ctx, run, now, sf, source, dest):
                    del report.restored[sf.file_id]
                    sf.note += " (then taken back: the file was trashed meanwhile)"
                    return False
            return case is not None and not run.dry_run
    away = sorted({c.target for c in copies} - {t.name for t in present})
    if away:
        sf.note += f"; archive copies on {', '.join(away)}, not present now"
    if not tried:
        if not copies:
            sf.note += "; no archive copy to restore it from"
        return False
    report.unrepairable[sf.file_id] = (
        f"file {sf.file_id} {sf.path} is {sf.kind.upper()} in the store at {dest} "
        f"({ALGORITHM} expected {expected}, found {sf.found or '-'}) and no archive copy "
        f"verifies: {'; '.join(tried)}. Nothing was overwritten: restore it by hand from "
        "another copy (a copy handed over, a burnt disc) and run `dockd sweep fixity --all`"
    )
    return False


def _restore_from(
    ctx: Context,
    run: Run,
    place: rewrite.Place,
    root: Path,
    dest: Path,
    expected: str,
    throttle: Throttle,
    tried: list[str],
) -> str | None:
    """Restore (or, in a dry run, check) from the copy at ``place``: its staged file, else
    its disc image. Where it was read, or None (why in ``tried``) when neither verifies."""
    kinds = rewrite.sources(place)
    if not kinds:
        tried.append(f"{place.shown} (not there)")
    for from_image in kinds:
        shown = place.shown if from_image or place.image is None else str(place.staged)
        try:
            with rewrite.copy_source(place, from_image) as src:
                if run.dry_run:
                    rewrite.check_source(src, expected, throttle)
                else:
                    rewrite.restore_store_file(ctx, src, root, dest, expected, throttle)
            return shown
        except rewrite.Mismatch as exc:
            tried.append(f"{shown} ({ALGORITHM} {exc.found or '-'}: {exc})")
        except (OSError, DockdError) as exc:
            tried.append(f"{shown} (could not be read: {exc})")
    return None


def _record_restore(
    ctx: Context, run: Run, now: datetime, sf: StoreFinding, source: dict[str, str], dest: Path
) -> bool:
    """The restored file's status and ``file.repaired`` event; False (and the restored
    file taken away again) when the retention sweep trashed the row meanwhile."""
    with ctx.ledger.session() as s:
        row = s.get_one(Recording, sf.file_id)
        if row.state != FileState.STORED:
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            return False
        previous = row.fixity_status
        row.fixity_status, row.last_fixity_at = CopyStatus.OK, now
        audit.record_file_change(
            s,
            row,
            at=now,
            actor=ctx.actor,
            action="file.repaired",
            changed=("fixity_status",),
            details={
                "path": row.store_path,
                "algorithm": ALGORITHM,
                "was": sf.kind,
                "found": sf.found,
                "restored": row.blake3,
                "previous": previous,
                "source": source,
                "sweep_run": run.id,
            },
        )
    return True


def _remake(
    ctx: Context,
    run: Run,
    now: datetime,
    report: CopyReport,
    target: ArchiveTarget,
    cf: CopyFinding,
    throttle: Throttle,
    images: set[Path],
) -> None:
    """Make one bad copy again from the store file, when that verifies."""
    with ctx.ledger.read() as s:
        row = s.get(Recording, cf.file_id)
        c = s.get(ArchiveCopy, cf.copy_id)
        if row is None or c is None or row.state != FileState.STORED:
            cf.note += "; the store no longer holds the file: nothing to make it again from"
            return
        src, sha256, store_path = loc.stored_path(ctx.config, row), c.sha256, row.store_path
    place = rewrite.place_of(target, c.path)
    try:
        if run.dry_run and cf.file_id not in report.restored:
            rewrite.check_source(src, cf.expected, throttle)
        elif run.dry_run:
            pass  # the store file would be restored first, from another copy
        else:
            if rewrite.remake_copy(
                ctx,
                target,
                place,
                src,
                cf.expected,
                sha256,
                throttle,
                image=place.image not in images,
            ):
                assert place.image is not None
                images.add(place.image)
    except rewrite.Mismatch as exc:
        cf.action = Action.UNREPAIRABLE
        report.unrepairable.setdefault(
            cf.file_id,
            f"file {cf.file_id} {store_path}: its archive copy {cf.path} on {target.name} is "
            f"{cf.status.upper()} ({ALGORITHM} expected {cf.expected}, found {cf.found or '-'}) "
            f"and the store file {src} does not verify either ({exc}). Nothing was "
            "overwritten: restore it by hand from another copy and run `dockd sweep fixity --all`",
        )
        return
    except (OSError, DockdError) as exc:
        cf.note += f"; could not be made again: {exc}"
        return
    if run.dry_run:
        cf.action, cf.note = Action.WOULD_REPAIR, f"{cf.note}; would be made again from {src}"
        return
    cf.action, cf.note = Action.REPAIRED, f"{cf.note}; made again from {src}"
    with ctx.ledger.session() as s:
        row_c = s.get_one(ArchiveCopy, cf.copy_id)
        more = {
            "restored": row_c.blake3,
            "source": store_path,
            "image": str(place.image) if place.image is not None else None,
        }
        audit_copy(ctx, s, row_c, "archive.copy_repaired", now, run, cf, more)
        row_c.fixity_status, row_c.last_fixity_at, row_c.verified_at = CopyStatus.OK, now, now
