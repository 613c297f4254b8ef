"""Archive copies in the fixity sweep: the second copy checked as the first (issue 15, R8, R9).

:func:`check_copies` runs inside :func:`dockd.sweeps.fixity.run_fixity`, after the store
(through :func:`dockd.sweeps.repair.guard_copies`, which then repairs)::

    each [[archive.targets]] entry that is present (there, and mounted when it must be)
    -> its copies due on its own cycle (fixity_cycle_days, else [fixity] cycle_days):
       never-checked first, then the longest unchecked
    -> each re-hashed under the sweep's rate limit, BLAKE3 against the ledger; on an
       optical target with a disc image, the image read back (each file against the
       bag's SHA-256 in it; xorriso's MD5s in an image xorriso wrote), then the file
       extracted from it and hashed
    -> archive_copies.fixity_status / last_fixity_at; a change is ``archive.copy_fixity``

A target that is absent is skipped and its copies keep their times: they are due, on
its own cycle, when it is back. :func:`alerts`: a copy still bad (critical), a repair
(warning), a file with no good copy left (critical ``fixity.unrepairable``).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import func, select

from dockd.config.policy import ArchiveTarget
from dockd.context import Context
from dockd.errors import DockdError
from dockd.ledger import audit
from dockd.ledger.models import ArchiveCopy, Recording, Severity
from dockd.sweeps import rewrite
from dockd.sweeps.runs import Run, Throttle, alert_once

log = structlog.get_logger("dockd.sweeps.copies")

MB = 1_000_000
ALGORITHM = "BLAKE3"


class CopyStatus(StrEnum):
    """An archive copy's last check (``archive_copies.fixity_status``), as for the store."""

    OK = "ok"
    MISSING = "missing"
    MODIFIED = "modified"


class Action(StrEnum):
    """What the sweep did about a bad copy."""

    REPAIRED = "repaired"
    WOULD_REPAIR = "would-repair"
    UNREPAIRABLE = "unrepairable"


class StoreFinding(Protocol):
    """A store file the fixity sweep found (:class:`dockd.sweeps.fixity.Finding`)."""

    @property
    def kind(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def file_id(self) -> int | None: ...
    @property
    def found(self) -> str | None: ...

    note: str


@dataclass
class CopyFinding:
    target: str
    file_id: int
    path: str  # on the target (a disc image: the image, then the path inside it)
    status: str
    expected: str
    found: str | None = None
    action: str = ""
    note: str = ""
    copy_id: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TargetCheck:
    name: str
    path: str
    status: str = "checked"  # or "absent": skipped, its copies keep their times
    due: int = 0
    ok: int = 0
    note: str = ""


@dataclass
class CopyReport:
    targets: list[TargetCheck] = field(default_factory=list)
    findings: list[CopyFinding] = field(default_factory=list)  # copies found bad
    restored: dict[int, str] = field(default_factory=dict)  # store files (or would be)
    unrepairable: dict[int, str] = field(default_factory=dict)  # file id -> alert text
    present: list[ArchiveTarget] = field(default_factory=list, repr=False)

    @property
    def problems(self) -> list[CopyFinding]:
        return [f for f in self.findings if f.action != Action.REPAIRED]

    def counts(self) -> dict[str, Any]:
        def n(action: str) -> int:
            return sum(1 for f in self.findings if f.action == action)

        return {
            "targets": {
                t.name: {
                    "status": t.status,
                    "due": t.due,
                    "ok": t.ok,
                    **{
                        s: sum(1 for f in self.findings if f.target == t.name and f.status == s)
                        for s in (CopyStatus.MISSING, CopyStatus.MODIFIED)
                    },
                }
                for t in self.targets
            },
            "store_restored": len(self.restored),
            "copies_repaired": n(Action.REPAIRED) + n(Action.WOULD_REPAIR),
            "unrepairable": len(self.unrepairable),
        }


@dataclass(frozen=True)
class _Copy:
    id: int
    file_id: int
    path: str
    size: int
    blake3: str


# ---------------------------------------------------------------------------- the check


def check_copies(ctx: Context, run: Run, now: datetime, *, full: bool) -> CopyReport:
    """Check the due copies on every present target (:mod:`dockd.sweeps.repair` then
    repairs what it can, and :func:`alerts` tells what is left)."""
    report = CopyReport()
    throttle = Throttle(ctx.config.fixity.rate_mb_s * MB, ctx.stop)
    for target in ctx.config.archive.targets:
        tc = TargetCheck(target.name, str(target.path))
        report.targets.append(tc)
        problem = absent(target)
        if problem is not None:
            tc.status, tc.note = "absent", problem
            continue
        report.present.append(target)
        if not run.dry_run:
            rewrite.clean_target(target)
        ids = _due_ids(ctx, target, now, full)
        tc.due = len(ids)
        images: dict[Path, str | None] = {}
        for i in range(0, len(ids), 100):
            results = [
                _check(ctx, target, c, throttle, images) for c in _load(ctx, ids[i : i + 100])
            ]
            tc.ok += sum(1 for r in results if r.status == CopyStatus.OK)
            report.findings += [r for r in results if r.status != CopyStatus.OK]
            _record(ctx, run, now, results)
            run.heartbeat(copies_checked=i + len(results))
    return report


def absent(target: ArchiveTarget) -> str | None:
    """Why ``target``'s copies cannot be checked now (not there, not mounted), or None."""
    p = target.path
    if not p.is_dir():
        return f"{p} is not there (unplugged, not mounted, or never created)"
    if target.must_be_mounted and not p.is_mount():
        return f"{p} is not a mount point: the {target.kind} medium is not mounted"
    return None


def _due_ids(ctx: Context, target: ArchiveTarget, now: datetime, full: bool) -> list[int]:
    """The target's share for this run: every copy is checked once per its cycle."""
    cycle = timedelta(days=target.fixity_cycle_days or ctx.config.fixity.cycle_days)

    def mine(q: Any) -> Any:
        return q.join(Recording, Recording.id == ArchiveCopy.file_id).where(
            ArchiveCopy.target == target.name, Recording.station == ctx.config.station.id
        )

    with ctx.ledger.read() as s:
        total = s.scalar(mine(select(func.count(ArchiveCopy.id)))) or 0
        if full:
            quota = total
        else:
            last = s.scalar(mine(select(func.max(ArchiveCopy.last_fixity_at))))
            elapsed = now - last if last is not None else timedelta(days=1)
            share = math.ceil(total * (min(max(elapsed, timedelta(0)), cycle) / cycle))
            overdue = s.scalar(
                mine(select(func.count(ArchiveCopy.id))).where(
                    ArchiveCopy.last_fixity_at < now - cycle
                )
            )
            quota = max(share, overdue or 0)
        ids = list(
            s.scalars(
                mine(select(ArchiveCopy.id))
                .where(ArchiveCopy.last_fixity_at.is_(None))
                .order_by(ArchiveCopy.id)
                .limit(quota)
            )
        )
        if len(ids) < quota:
            ids += s.scalars(
                mine(select(ArchiveCopy.id))
                .where(ArchiveCopy.last_fixity_at.is_not(None))
                .order_by(ArchiveCopy.last_fixity_at, ArchiveCopy.id)
                .limit(quota - len(ids))
            )
    return ids


def _load(ctx: Context, ids: list[int]) -> list[_Copy]:
    with ctx.ledger.read() as s:
        rows = s.execute(
            select(ArchiveCopy, Recording.size_bytes)
            .join(Recording, Recording.id == ArchiveCopy.file_id)
            .where(ArchiveCopy.id.in_(ids))
            .order_by(ArchiveCopy.id)
        )
        return [_Copy(c.id, c.file_id, c.path, size, c.blake3) for c, size in rows]


def _check(
    ctx: Context,
    target: ArchiveTarget,
    c: _Copy,
    throttle: Throttle,
    images: dict[Path, str | None],
) -> CopyFinding:
    ctx.check_stop()
    place = rewrite.place_of(target, c.path)
    f = CopyFinding(target.name, c.file_id, place.shown, CopyStatus.OK, c.blake3, copy_id=c.id)
    if place.image is None:
        _hash_into(f, place.staged, c, throttle)
        return f
    from dockd.evidence import disc  # pycdlib, BagIt: only for copies on a disc image

    image = place.image
    if image not in images:  # the whole image checked, once per image and run
        try:
            disc.check_image(image)
            images[image] = None
        except DockdError as exc:
            images[image] = str(exc)
    if images[image] is not None:
        f.status, f.note = CopyStatus.MODIFIED, str(images[image])
        return f
    with tempfile.TemporaryDirectory(prefix=f"{rewrite.LEFTOVER}check-", dir=image.parent) as tmp:
        out = Path(tmp) / "copy"
        try:
            disc.extract_file(image, place.inner, out)
        except DockdError as exc:
            f.status, f.note = CopyStatus.MISSING, str(exc)
            return f
        _hash_into(f, out, c, throttle)
    return f


def _hash_into(f: CopyFinding, path: Path, c: _Copy, throttle: Throttle) -> None:
    try:
        size = path.lstat().st_size
    except FileNotFoundError:
        f.status, f.note = CopyStatus.MISSING, f"not on the target at {path}"
        return
    if size != c.size:
        f.status, f.note = CopyStatus.MODIFIED, f"size is {size} bytes, the ledger says {c.size}"
        return
    f.found, why = rewrite.hash_path(path, throttle)
    if f.found != c.blake3:
        f.status, f.note = CopyStatus.MODIFIED, why or f"{ALGORITHM} differs from the ledger"


def _record(ctx: Context, run: Run, now: datetime, results: list[CopyFinding]) -> None:
    """Each copy's status and time; a change of status is an ``archive.copy_fixity`` event."""
    if run.dry_run:
        return
    with ctx.ledger.session() as s:
        for r in results:
            row = s.get(ArchiveCopy, r.copy_id)
            if row is None:
                continue
            row.last_fixity_at = now
            if row.fixity_status != r.status:
                audit_copy(ctx, s, row, "archive.copy_fixity", now, run, r, {"status": r.status})
                row.fixity_status = r.status


def audit_copy(
    ctx: Context,
    s: Any,
    row: ArchiveCopy,
    action: str,
    now: datetime,
    run: Run,
    f: CopyFinding,
    more: dict[str, Any],
) -> None:
    audit.record(
        s,
        at=now,
        station=ctx.config.station.id,
        actor=ctx.actor,
        action=action,
        subject_type="file",
        subject_id=row.file_id,
        details={
            "target": row.target,
            "path": row.path,
            "where": f.path,
            "algorithm": ALGORITHM,
            "expected": row.blake3,
            "found": f.found,
            "previous": row.fixity_status,
            "note": f.note or None,
            "sweep_run": run.id,
            **more,
        },
    )


# ---------------------------------------------------------------------------- alerts


def alerts(ctx: Context, report: CopyReport) -> None:
    """Copies still bad (critical), repairs (warning), files with no good copy (critical)."""
    cap = ctx.config.fixity.max_alerts_per_kind
    for file_id, message in report.unrepairable.items():
        alert_once(
            ctx, "fixity.unrepairable", f"file:{file_id}", message, details={"file_id": file_id}
        )
    for file_id, note in report.restored.items():
        alert_once(
            ctx,
            "fixity.repaired",
            f"file:{file_id}",
            f"file {file_id} {note}. It verifies again; find out what damaged it",
            severity=Severity.WARNING,
        )
    for f in _capped(report.findings, cap):
        if f.action == Action.UNREPAIRABLE:
            continue  # named in its fixity.unrepairable alert
        repaired = f.action == Action.REPAIRED
        alert_once(
            ctx,
            "archive.copy_repaired" if repaired else f"archive.copy_{f.status}",
            f"{f.target}:{f.path}",
            f"archive copy of file {f.file_id} on {f.target!r} at {f.path} was "
            f"{f.status.upper()} ({ALGORITHM} expected {f.expected}, found {f.found or '-'}; "
            f"{f.note})",
            severity=Severity.WARNING if repaired else Severity.CRITICAL,
            details=f.as_dict(),
        )


def _capped(findings: list[CopyFinding], cap: int) -> Iterator[CopyFinding]:
    seen: dict[str, int] = {}
    for f in findings:
        seen[f.status] = seen.get(f.status, 0) + 1
        if seen[f.status] <= cap:
            yield f
