"""One dock session, from a recorder's folder to verified rows in the ledger.

``run_ingest`` reads top to bottom as its stages; each lives in its own module::

    discover   the files on the recorder; links, FIFOs and the unreadable are
               refused by name (discover; fatreader for what the mount cannot open)
    identify   the file names' facts (naming) and every identifier the recorder
               offers -> one registered device, or none, or a conflict (identify)
    lock       one ingest per recorder (lock); then recovery puts right what a
               dead run left (recovery)
    open       the dock_sessions row; admit: store, quarantine or refused (session)
    take each  one file: open, copy + BLAKE3, probe, time/officer/flags, publish
               (take, describe); then verify and commit (take.finish) in a second
               thread while the next file is copied
    close      the outcome, its audit event, an alert when interrupted (session)

What each file and the session came to is in ``outcome`` (``SessionResult``). A
file either ends verified in the store with its ledger row, or in a failure row
and an alert naming it; never half-way. The same function serves ``dockd ingest``
and the dock daemon.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import stat
import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path, PurePosixPath

import structlog

from dockd import store
from dockd.context import Context
from dockd.errors import SourceError
from dockd.ingest import clockcheck, fatreader, recovery, session, take
from dockd.ingest.discover import Candidate, Refusal, discover
from dockd.ingest.identify import VolumeInfo, gather_evidence, identify
from dockd.ingest.lock import lock_recorder
from dockd.ingest.naming import parse_name
from dockd.ingest.outcome import (
    FileOutcome,
    FileStatus,
    NoProgress,
    Progress,
    SessionOutcome,
    SessionResult,
    SourceGone,
)

log = structlog.get_logger("dockd.ingest")


def run_ingest(
    ctx: Context,
    source: Path,
    *,
    device_number: str | None = None,
    volume: VolumeInfo | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    on_open: Callable[[SessionResult], None] | None = None,
    wait: bool = True,
) -> SessionResult:
    """Ingest every recording under ``source``; returns what happened to each file.

    ``on_open`` is called once the session row exists, before any file is taken
    (the dock daemon binds the session id and officer to its log context there).
    Only one process ingests a recorder at a time: with ``wait`` a second one waits
    for the first (stoppable by ``stop``), without it raises :class:`RecorderBusy`.
    A ledger that fails mid-session raises :class:`LedgerError`.
    """
    volume = volume or VolumeInfo()
    source = _check_source(source)
    candidates, refusals = _discover(ctx, source, volume)  # discover
    plan = _identify(ctx, source, volume, candidates, refusals, device_number)  # identify
    with lock_recorder(ctx.ledger, plan.identity.ref, volume.fs_uuid, wait=wait, stop=stop):
        # Now that no other process can be taking this recorder: put right what a
        # dead one left (a run we waited for may have died mid-file).
        recovery.recover(ctx)
        plan = _read_clock(ctx, plan, volume.seen_at)  # the recorder's clock
        with session.opened(ctx, plan, on_open) as result:  # open
            root = session.admit(ctx, plan, result)  # store, quarantine or refused
            if root is not None:
                _take_each(ctx, plan, result, root, stop, progress or NoProgress())
                session.close(ctx, result, len(plan.candidates))  # close
    return result


def _check_source(source: Path) -> Path:
    try:
        st = os.stat(source)
    except OSError as exc:
        raise SourceError(f"cannot read the recorder at {source}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{source} is not a directory; give the recorder's mount point")
    return source.absolute()


def _discover(
    ctx: Context, source: Path, volume: VolumeInfo
) -> tuple[list[Candidate], list[Refusal]]:
    """The recordings under ``source`` and the files refused, each by name."""
    cfg = ctx.config
    fallback = None
    if volume.devnode:  # files the mount cannot open: read from the device, staged in the store
        scratch = str(store.incoming_dir(cfg.store.root))  # (made here: only when needed)
        fallback = fatreader.for_volume(volume, scratch=scratch)
    return discover(source, cfg.ingest, fallback=fallback)


def _identify(
    ctx: Context,
    source: Path,
    volume: VolumeInfo,
    candidates: list[Candidate],
    refusals: list[Refusal],
    device_number: str | None,
) -> session.Plan:
    """Which device this is, from the volume, the ID files and the file names."""
    cfg = ctx.config
    names = {
        c.relpath: parse_name(PurePosixPath(c.display), cfg.naming, cfg.station.tz)
        for c in candidates
    }
    evidence = gather_evidence(source, volume, cfg.ingest.id_files, names.values())
    with ctx.ledger.read() as s:
        identity = identify(s, evidence, device_number=device_number)
    return session.Plan(source, candidates, refusals, names, identity, evidence.__dict__)


def _read_clock(ctx: Context, plan: session.Plan, docked_at: datetime | None) -> session.Plan:
    """The plan with what is known of the recorder's clock (read under its lock, so the
    last dock it is checked against is really the last)."""
    with ctx.ledger.read() as s:
        clock = clockcheck.read_clock(
            s, ctx.config, plan.source, plan.names, plan.identity, ctx.clock.now(), docked_at
        )
    if clock.time_file_error:  # kept on the session's notes too; the dock goes on
        log.warning("recorder time file unreadable", error=clock.time_file_error)
    return dataclasses.replace(plan, clock=clock)


def _take_each(
    ctx: Context,
    plan: session.Plan,
    result: SessionResult,
    root: Path,
    stop: threading.Event | None,
    progress: Progress,
) -> None:
    """Every file in turn, each counted as soon as it is decided. A stop, or the
    recorder going away, leaves the session 'interrupted' between two files.

    Each file's verify and commit (``take.finish``) run in a second thread while the
    next file is copied; the session counts the files in their order on the recorder.
    """
    for refusal in plan.refusals:
        session.record(ctx, result, FileOutcome.of_refusal(refusal))
    progress.start(len(plan.candidates), sum(c.size for c in plan.candidates))
    with _Behind(ctx, root, result, progress) as behind:
        for cand in plan.candidates:
            if stop is not None and stop.is_set():
                result.outcome = SessionOutcome.INTERRUPTED
                break
            name = plan.names[cand.relpath]
            assert plan.clock is not None
            try:
                got = take.take_file(
                    ctx,
                    plan.source,
                    root,
                    cand,
                    name,
                    plan.identity,
                    result,
                    plan.clock,
                    stop=stop,
                    progress=progress,
                    previous=behind.wait,
                )
            except SourceGone as exc:
                behind.settle()
                session.record(ctx, result, FileOutcome(cand.display, FileStatus.FAILED, str(exc)))
                result.outcome = SessionOutcome.INTERRUPTED
                break
            except store.Interrupted:
                result.outcome = SessionOutcome.INTERRUPTED
                break
            if isinstance(got, take.Taken):
                with take.taken_back_on_error(root, got):  # the ledger failed behind it
                    behind.settle()
                    behind.start(got)
            else:
                behind.settle()
                session.record(ctx, result, got)
                progress.file_done(got)
        behind.settle()


class _Behind:
    """The file behind the one being copied: its ``take.finish`` in the verify thread.

    At most one file is behind. Leaving the ``with`` block on an exception (an interrupt,
    the ledger failing for the file ahead) still waits for its finish, which verifies
    and commits or takes the file back, and then counts it on the session with its
    alerts, so no thread outlives the session and no outcome goes unreported.
    """

    def __init__(self, ctx: Context, root: Path, result: SessionResult, progress: Progress) -> None:
        self._ctx, self._root, self._result, self._progress = ctx, root, result, progress
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockd-verify")
        self._job: tuple[take.Taken, Future[FileOutcome]] | None = None
        self._job_rel = ""

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        try:
            if self._job is not None:  # left by an exception: report the file behind too
                futures.wait([self._job[1]])
                try:
                    self.settle()
                except Exception as err:  # the exception already leaving wins
                    log.error("file behind not reported", file=self._job_rel, error=str(err))
                    if exc is None:
                        raise
        finally:
            self._pool.shutdown(wait=True)

    def start(self, taken: take.Taken) -> None:
        """Verify and commit ``taken`` in the verify thread (log context and all)."""
        assert self._job is None, "settle the file behind first"
        run = contextvars.copy_context().run
        self._job = (taken, self._pool.submit(run, take.finish, self._ctx, self._root, taken))

    def wait(self, digest: str | None) -> None:
        """Wait for the file behind to be done: always (``None``), or when it has the
        BLAKE3 ``digest`` (the same recording twice must be found present, not kept twice)."""
        if self._job is not None and digest in (None, self._job[0].incoming.blake3):
            futures.wait([self._job[1]])

    def settle(self) -> None:
        """Count the file behind on the session once it is done; what its finish raised
        (the ledger gone) is raised here."""
        if self._job is None:
            return
        taken, job = self._job
        self._job_rel = taken.rel
        try:
            outcome = job.result()
        finally:
            if job.done():  # else interrupted while waiting: __exit__ settles it
                self._job = None
        take.after_commit(self._ctx, taken, outcome, self._result.session_id)
        # a stored file was counted on the session in its own commit (take._commit_row)
        session.record(
            self._ctx, self._result, outcome, counted=outcome.status == FileStatus.STORED
        )
        self._progress.file_done(outcome)
