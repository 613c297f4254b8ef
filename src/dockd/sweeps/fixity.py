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

The levels follow BagIt's: presence, size, then the full hash.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import blake3
import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dockd import store
from dockd.context import Context, Stopped
from dockd.errors import DockdError
from dockd.ledger import audit
from dockd.ledger.models import Recording
from dockd.sweeps import locations as loc
from dockd.sweeps.runs import Run, Throttle, alert_once, audit_run, last_run, sweep_run

log = structlog.get_logger("dockd.sweeps.fixity")

CHUNK = 1 << 20
MB = 1_000_000
ALGORITHM = "BLAKE3"


@dataclass
class Finding:
    kind: str  # missing | modified | unexpected | recovered
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
    status: str = "running"
    due: int = 0
    checked: int = 0
    ok: int = 0
    bytes_read: int = 0
    findings: list[Finding] = field(default_factory=list)

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.kind != "recovered"]

    def counts(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "checked": self.checked,
            "ok": self.ok,
            "bytes_read": self.bytes_read,
            **{k: len(self.of(k)) for k in ("missing", "modified", "unexpected", "recovered")},
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
            _check_store(ctx)
            now = ctx.clock.now()
            ids = _due_ids(ctx, now, full)
            report.due = len(ids)
            throttle = Throttle(ctx.config.fixity.rate_mb_s * MB, ctx.stop)
            for batch in _batches(ids, 100):
                results = []
                for d in _load(ctx, batch):
                    results.append(_check(ctx, d, throttle, report))
                    run.heartbeat(checked=report.checked)  # (at most every 30 s)
                _record(ctx, run, report, now, results)
            if ctx.config.fixity.scan_unexpected:
                _scan_unexpected(ctx, report)
        finally:
            run.summary = report.counts()
            if not dry_run:
                _alerts(ctx, report)
        if not dry_run:
            audit_run(ctx, run, "sweep.fixity", report.counts())
    report.status = run.status
    return report


def _check_store(ctx: Context) -> None:
    root = ctx.config.store.root
    if root.is_dir():
        return
    with ctx.ledger.read() as s:
        nothing = s.scalar(_stored(ctx, select(Recording.id)).limit(1)) is None
    if nothing:
        return
    alert_once(
        ctx,
        "fixity.store_unavailable",
        str(root),
        f"the store {root} is not there (disk not mounted?): the fixity sweep could not check "
        "anything; mount the store disk",
    )
    raise DockdError(f"the store {root} is not a directory; is its disk mounted?")


def _stored(ctx: Context, q: Any) -> Any:
    return q.where(Recording.state == "stored", Recording.station == ctx.config.station.id)


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
    status: str  # ok | missing | modified
    found: str | None = None
    note: str = ""


def _check(ctx: Context, d: _Due, throttle: Throttle, report: FixityReport) -> _Result:
    ctx.check_stop()
    report.checked += 1
    try:
        fd = os.open(d.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return _Result(d, "missing", note=f"not in the store at {d.path}")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _Result(d, "modified", note=f"{d.path} has been replaced by a symbolic link")
        return _Result(d, "missing", note=f"cannot open {d.path}: {exc.strerror}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return _Result(d, "modified", note=f"{d.path} is no longer a regular file")
        if st.st_size != d.size:
            return _Result(
                d, "modified", note=f"size is {st.st_size} bytes, the ledger says {d.size}"
            )
        found = hash_throttled(fd, throttle)
        report.bytes_read += st.st_size
    finally:
        os.close(fd)
    if found != d.blake3:
        return _Result(d, "modified", found, f"{ALGORITHM} differs from the ledger")
    report.ok += 1
    return _Result(d, "ok", found)


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


def _record(
    ctx: Context, run: Run, report: FixityReport, now: datetime, results: list[_Result]
) -> None:
    """Write the batch's outcome in one transaction; re-check what looked missing."""
    with ctx.ledger.session() as s:
        for r in results:
            row = s.get(Recording, r.due.id)
            if row is None or row.state != "stored":
                continue  # trashed while being checked: not a fixity matter
            if r.status == "missing" and loc.stored_path(ctx.config, row).exists():
                continue  # a move was rolled back meanwhile: check it next time
            finding = _finding(r)
            if finding is not None:
                report.findings.append(finding)
            if run.dry_run:
                continue
            row.last_fixity_at = now
            if row.fixity_status != r.status:
                row.fixity_status = r.status
                _audit(s, ctx, row, r, now, run.id)


def _finding(r: _Result) -> Finding | None:
    if r.status == "ok":
        if r.due.previous in ("missing", "modified"):
            return Finding("recovered", r.due.name, r.due.id, r.due.blake3, r.found, r.note)
        return None
    return Finding(r.status, r.due.name, r.due.id, r.due.blake3, r.found, r.note)


def _audit(s: Session, ctx: Context, row: Recording, r: _Result, now: datetime, run: int) -> None:
    audit.record_file_change(
        s,
        row,
        at=now,
        actor=ctx.actor,
        action="file.fixity",
        changed=("fixity_status",),
        details={
            "path": row.store_path,
            "algorithm": ALGORITHM,
            "expected": row.blake3,
            "found": r.found,
            "previous": r.due.previous,
            "note": r.note or None,
            "sweep_run": run,
        },
    )


# ------------------------------------------------------------------------ unexpected


def _scan_unexpected(ctx: Context, report: FixityReport) -> None:
    """Name every file under the store (and quarantine) that no stored row accounts for."""
    roots = [(ctx.config.store.root, False, PurePosixPath())]
    roots.append((ctx.config.store.quarantine_root, True, PurePosixPath(loc.QUARANTINE_PREFIX)))
    for root, unregistered, shown in roots:
        if not root.is_dir():
            continue
        stack = [PurePosixPath()]
        while stack:
            ctx.check_stop()
            rel_dir = stack.pop()
            files: list[str] = []
            try:
                entries = list(os.scandir(root / rel_dir))
            except OSError as exc:
                log.warning("cannot list", dir=str(root / rel_dir), error=str(exc))
                continue
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    if not (rel_dir == PurePosixPath() and e.name == store.INCOMING):
                        stack.append(rel_dir / e.name)
                else:
                    files.append(e.name)
            if not files:
                continue
            paths = [(rel_dir / name).as_posix() for name in sorted(files)]
            for rel in _unaccounted(ctx, root, paths, unregistered):
                report.findings.append(
                    Finding(
                        "unexpected",
                        (shown / rel).as_posix(),
                        note=f"{root / rel} is in the store but not in the ledger",
                    )
                )


def _unaccounted(ctx: Context, root: Path, paths: list[str], unregistered: bool) -> list[str]:
    """The ``paths`` (under ``root``) no stored row accounts for, ingests in flight excepted.

    An ingest publishes a file before it commits its row, so a file missing from
    the first look at the ledger may be one being stored right now. In this order:
    the publish markers of live processes (``store.in_flight``), then the ledger
    again: a marker goes only after its row is committed, so a file whose marker
    is gone by now has its row by now. What is left (and still there) is unexpected.
    """
    known = _known(ctx, paths, unregistered)
    missing = [p for p in paths if p not in known]
    if not missing:
        return []
    flying = {p.as_posix() for p in store.in_flight(root)}
    missing = [p for p in missing if p not in flying]
    if not missing:
        return []
    known = _known(ctx, missing, unregistered)
    return [p for p in missing if p not in known and os.path.lexists(root / p)]


def _known(ctx: Context, paths: list[str], unregistered: bool) -> set[str]:
    """Which of ``paths`` are stored rows (equality on the (station, store_path) index,
    right under any collation)."""
    found: set[str] = set()
    with ctx.ledger.read() as s:
        for i in range(0, len(paths), 500):
            found.update(
                s.scalars(
                    select(Recording.store_path).where(
                        Recording.station == ctx.config.station.id,
                        Recording.store_path.in_(paths[i : i + 500]),
                        Recording.state == "stored",
                        Recording.unregistered == unregistered,
                    )
                )
            )
    return found


# ---------------------------------------------------------------------------- alerts


_SEVERITY = {"missing": "critical", "modified": "critical", "unexpected": "warning"}
_WHAT = {
    "missing": "is MISSING from the store",
    "modified": "has been MODIFIED",
    "unexpected": "is in the store but not in the ledger",
}


def _alerts(ctx: Context, report: FixityReport) -> None:
    cap = ctx.config.fixity.max_alerts_per_kind
    for kind in ("missing", "modified", "unexpected"):
        found = report.of(kind)
        for f in found[:cap]:
            detail = ""
            if kind == "modified":
                detail = f" ({ALGORITHM} expected {f.expected}, found {f.found or '-'}; {f.note})"
            elif kind == "missing":
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
