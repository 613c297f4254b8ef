"""The fixity sweep: re-hash stored files against the ledger, a slice at a time (R9, R17).

``run_fixity`` reads as::

    how many files this run: the share of the store due since the last run
        (so every file is re-hashed once per [fixity] cycle_days), and at least
        every file not checked for a whole cycle
    -> those files, never-checked first, then the longest unchecked
    -> each: missing? size? BLAKE3 under a MB/s rate limit (never starves ingest)
    -> files.fixity_status / last_fixity_at; a change of status is an audit event
       and a missing or modified file an alert naming it, expected and found hash
    -> walk the store for files the ledger does not know: each one named, except
       one an ingest is storing right now (published, its row not yet committed)
    -> the archive copies, each target on its own cycle, and each copy repaired from
       the other (:mod:`dockd.sweeps.repair`)

The levels follow BagIt's: presence, size, then the full hash. A file's outcome is
a :class:`FixityStatus` (stored in ``files.fixity_status``); what the run tells a
person is a :class:`Finding` of a :class:`FindingKind`.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import blake3
import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dockd.context import Context, Stopped
from dockd.ledger import audit
from dockd.ledger.models import FileState, Recording, Severity
from dockd.sweeps import copies, repair
from dockd.sweeps import locations as loc
from dockd.sweeps.runs import (
    RunStatus,
    Throttle,
    alert_once,
    audit_run,
    last_run,
    require_store,
    sweep_run,
)
from dockd.sweeps.unexpected import unexpected_files

log = structlog.get_logger("dockd.sweeps.fixity")

CHUNK = 1 << 20
MB = 1_000_000
ALGORITHM = "BLAKE3"


class FixityStatus(StrEnum):
    """A stored file's last fixity check (``files.fixity_status``; NULL: never checked)."""

    OK = "ok"
    MISSING = "missing"
    MODIFIED = "modified"


class FindingKind(StrEnum):
    """What a fixity run found worth telling: a problem, or one that went away."""

    MISSING = "missing"
    MODIFIED = "modified"
    UNEXPECTED = "unexpected"  # in the store, not in the ledger
    RECOVERED = "recovered"  # missing or modified before, ok now
    REPAIRED = "repaired"  # missing or modified, restored from an archive copy (:mod:`repair`)


PROBLEMS = (FindingKind.MISSING, FindingKind.MODIFIED, FindingKind.UNEXPECTED)


@dataclass
class Finding:
    kind: FindingKind
    path: str  # relative to the store root ("quarantine/..." for the quarantine)
    file_id: int | None = None
    expected: str | None = None
    found: str | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FixityReport:
    run_id: int
    dry_run: bool
    status: RunStatus = RunStatus.RUNNING
    due: int = 0
    checked: int = 0
    ok: int = 0
    bytes_read: int = 0
    findings: list[Finding] = field(default_factory=list)
    archive: copies.CopyReport | None = None  # the archive copies' check and repairs

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def problems(self) -> list[Finding]:
        return [
            f for f in self.findings if f.kind not in (FindingKind.RECOVERED, FindingKind.REPAIRED)
        ]

    def counts(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "checked": self.checked,
            "ok": self.ok,
            "bytes_read": self.bytes_read,
            **{k: len(self.of(k)) for k in FindingKind},
            **({"archive": self.archive.counts()} if self.archive is not None else {}),
        }


@dataclass(frozen=True)
class _Due:
    id: int
    path: Path
    name: str
    size: int
    blake3: str
    previous: str | None


# ---------------------------------------------------------------------------- the sweep


def run_fixity(ctx: Context, *, dry_run: bool = False, full: bool = False) -> FixityReport:
    """One fixity run; ``full`` re-hashes every stored file now instead of the due share."""
    with sweep_run(ctx, "fixity", dry_run=dry_run) as run:
        report = FixityReport(run.id, dry_run)
        try:
            require_store(ctx, "fixity", "could not check anything; mount the store disk")
            now = ctx.clock.now()
            ids = _due_ids(ctx, now, full)
            report.due = len(ids)
            ctx.progress.begin("fixity", len(ids), _bytes_of(ctx, ids))
            throttle = Throttle(ctx.config.fixity.rate_mb_s * MB, ctx.stop)
            for batch in _batches(ids, 100):
                results = []
                for d in _load(ctx, batch):
                    results.append(_check(ctx, d, throttle, report))
                    ctx.progress.step(d.size)
                    run.heartbeat(checked=report.checked)  # (at most every 30 s)
                _record(ctx, report, now, results)
            if ctx.config.fixity.scan_unexpected:
                for shown, where in unexpected_files(ctx):
                    note = f"{where} is in the store but not in the ledger"
                    report.findings.append(Finding(FindingKind.UNEXPECTED, shown, note=note))
            if ctx.config.archive.targets:
                report.archive = repair.guard_copies(ctx, run, now, report.findings, full=full)
                for f in report.findings:
                    if f.file_id in report.archive.restored and not dry_run:
                        f.kind = FindingKind.REPAIRED
        finally:
            run.summary = report.counts()
            if not dry_run:
                _alerts(ctx, report)
        if not dry_run:
            audit_run(ctx, run, "sweep.fixity", report.counts())
    report.status = run.status
    return report


def _stored(ctx: Context, q: Any) -> Any:
    return q.where(Recording.state == FileState.STORED, Recording.station == ctx.config.station.id)


def _due_ids(ctx: Context, now: datetime, full: bool) -> list[int]:
    """This run's slice: never-checked first, then the longest unchecked."""
    cycle = timedelta(days=ctx.config.fixity.cycle_days)
    prev = None if full else last_run(ctx, "fixity")
    with ctx.ledger.read() as s:
        total = s.scalar(_stored(ctx, select(func.count(Recording.id)))) or 0
        if full:
            quota = total
        else:
            elapsed = now - prev.started_at if prev is not None else timedelta(days=1)
            elapsed = min(max(elapsed, timedelta(0)), cycle)
            share = math.ceil(total * (elapsed / cycle))
            overdue = (
                s.scalar(
                    _stored(ctx, select(func.count(Recording.id))).where(
                        Recording.last_fixity_at < now - cycle
                    )
                )
                or 0
            )
            quota = max(share, overdue)
        ids = list(
            s.scalars(
                _stored(ctx, select(Recording.id))
                .where(Recording.last_fixity_at.is_(None))
                .order_by(Recording.id)
                .limit(quota)
            )
        )
        if len(ids) < quota:
            ids += s.scalars(
                _stored(ctx, select(Recording.id))
                .where(Recording.last_fixity_at.is_not(None))
                .order_by(Recording.last_fixity_at, Recording.id)
                .limit(quota - len(ids))
            )
    return ids


def _bytes_of(ctx: Context, ids: list[int]) -> int:
    """The bytes a run over ``ids`` reads (their sizes in the ledger), for its ETA."""
    with ctx.ledger.read() as s:
        q = select(func.coalesce(func.sum(Recording.size_bytes), 0))
        return sum(int(s.scalar(q.where(Recording.id.in_(b))) or 0) for b in _batches(ids, 500))


def _batches(ids: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


def _load(ctx: Context, ids: list[int]) -> list[_Due]:
    with ctx.ledger.read() as s:
        rows = s.scalars(select(Recording).where(Recording.id.in_(ids)).order_by(Recording.id))
        return [
            _Due(
                r.id,
                loc.stored_path(ctx.config, r),
                loc.rel_path(r).as_posix(),
                r.size_bytes,
                r.blake3,
                r.fixity_status,
            )
            for r in rows
        ]


@dataclass(frozen=True)
class _Result:
    due: _Due
    status: FixityStatus
    found: str | None = None
    note: str = ""


def _check(ctx: Context, d: _Due, throttle: Throttle, report: FixityReport) -> _Result:
    ctx.check_stop()
    report.checked += 1
    try:
        fd = os.open(d.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return _Result(d, FixityStatus.MISSING, note=f"not in the store at {d.path}")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _Result(
                d, FixityStatus.MODIFIED, note=f"{d.path} has been replaced by a symbolic link"
            )
        return _Result(d, FixityStatus.MISSING, note=f"cannot open {d.path}: {exc.strerror}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return _Result(d, FixityStatus.MODIFIED, note=f"{d.path} is no longer a regular file")
        if st.st_size != d.size:
            return _Result(
                d,
                FixityStatus.MODIFIED,
                note=f"size is {st.st_size} bytes, the ledger says {d.size}",
            )
        found = hash_throttled(fd, throttle)
        report.bytes_read += st.st_size
    finally:
        os.close(fd)
    if found != d.blake3:
        return _Result(d, FixityStatus.MODIFIED, found, f"{ALGORITHM} differs from the ledger")
    report.ok += 1
    return _Result(d, FixityStatus.OK, found)


def hash_throttled(fd: int, throttle: Throttle) -> str:
    """BLAKE3 of an open file, read under the rate limit; stops promptly on request."""
    h = blake3.blake3()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = os.readv(fd, [view])
        if n == 0:
            return h.hexdigest()
        h.update(view[:n])
        if throttle.stop.is_set():  # a fast disk may never make the throttle wait
            raise Stopped("stop requested")
        throttle.consume(n)


def _record(ctx: Context, report: FixityReport, now: datetime, results: list[_Result]) -> None:
    """Write the batch's outcome in one transaction; re-check what looked missing."""
    with ctx.ledger.session() as s:
        for r in results:
            row = s.get(Recording, r.due.id)
            if row is None or row.state != FileState.STORED:
                continue  # trashed while being checked: not a fixity matter
            if r.status == FixityStatus.MISSING and loc.stored_path(ctx.config, row).exists():
                continue  # a move was rolled back meanwhile: check it next time
            finding = _finding(r)
            if finding is not None:
                report.findings.append(finding)
            if report.dry_run:
                continue
            row.last_fixity_at = now
            if row.fixity_status != r.status:
                record_status(
                    s, ctx, row, r.status, at=now, run_id=report.run_id, found=r.found, note=r.note
                )


def _finding(r: _Result) -> Finding | None:
    if r.status != FixityStatus.OK:
        kind = FindingKind(r.status)
    elif r.due.previous in (FixityStatus.MISSING, FixityStatus.MODIFIED):
        kind = FindingKind.RECOVERED
    else:
        return None
    return Finding(kind, r.due.name, r.due.id, r.due.blake3, r.found, r.note)


def record_status(
    s: Session,
    ctx: Context,
    row: Recording,
    status: FixityStatus,
    *,
    at: datetime,
    run_id: int,
    found: str | None = None,
    note: str = "",
) -> None:
    """Set the file's fixity status, with its audit event: expected and found hash, and
    the status before. The retention sweep calls it too, for a file it found missing."""
    previous = row.fixity_status
    row.fixity_status = status
    audit.record_file_change(
        s,
        row,
        at=at,
        actor=ctx.actor,
        action="file.fixity",
        changed=("fixity_status",),
        details={
            "path": row.store_path,
            "algorithm": ALGORITHM,
            "expected": row.blake3,
            "found": found,
            "previous": previous,
            "note": note or None,
            "sweep_run": run_id,
        },
    )


# ---------------------------------------------------------------------------- alerts


_SEVERITY = {
    FindingKind.MISSING: Severity.CRITICAL,
    FindingKind.MODIFIED: Severity.CRITICAL,
    FindingKind.UNEXPECTED: Severity.WARNING,
}
_WHAT = {
    FindingKind.MISSING: "is MISSING from the store",
    FindingKind.MODIFIED: "has been MODIFIED",
    FindingKind.UNEXPECTED: "is in the store but not in the ledger",
}


def _alerts(ctx: Context, report: FixityReport) -> None:
    cap = ctx.config.fixity.max_alerts_per_kind
    for kind in PROBLEMS:
        found = report.of(kind)
        for f in found[:cap]:
            detail = ""
            if kind == FindingKind.MODIFIED:
                detail = f" ({ALGORITHM} expected {f.expected}, found {f.found or '-'}; {f.note})"
            elif kind == FindingKind.MISSING:
                detail = f" ({ALGORITHM} {f.expected})"
            who = f"file {f.file_id} " if f.file_id is not None else ""
            alert_once(
                ctx,
                f"fixity.{kind}",
                f.path,
                f"{who}{f.path} {_WHAT[kind]}{detail}",
                severity=_SEVERITY[kind],
                details=f.as_dict(),
            )
        if len(found) > cap:
            ctx.alerts.raise_alert(
                f"fixity.{kind}",
                "store",
                f"{len(found) - cap} more file(s) {_WHAT[kind]}: see `dockd sweep fixity` "
                f"run {report.run_id} (the first {cap} were alerted one by one)",
                severity=_SEVERITY[kind],
                details={"run_id": report.run_id, "paths": [f.path for f in found[cap:]][:1000]},
            )
