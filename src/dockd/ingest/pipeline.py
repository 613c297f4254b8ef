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
               (take, describe); then verify and commit (take.verify, take.commit)
               in a second thread while the next files are copied, the rows of the
               files verified meanwhile committed together
    close      the outcome, its audit event, an alert when interrupted (session)

What each file and the session came to is in ``outcome`` (``SessionResult``). A
file either ends verified in the store with its ledger row, or in a failure row
and an alert naming it; never half-way. The same function serves ``dockd ingest``
and the dock daemon.
"""

from __future__ import annotations

import collections
import contextlib
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

    Each file's verify and commit (``take.verify``, ``take.commit``) run in a second
    thread while the next files are copied; the session counts the files in their order
    on the recorder.
    """
    for refusal in plan.refusals:
        session.record(ctx, result, FileOutcome.of_refusal(refusal))
    progress.start(len(plan.candidates), sum(c.size for c in plan.candidates))
    known = take.known_by_name(ctx, plan.identity.ref, plan.candidates)
    slots = store.MarkerSlots(root / store.INCOMING)  # made by the first copy
    bufsize = ctx.config.ingest.copy_buffer_kib * 1024
    with contextlib.closing(slots), _Behind(ctx, root, result, progress) as behind:
        for n, cand in enumerate(plan.candidates):
            if stop is not None and stop.is_set():
                result.outcome = SessionOutcome.INTERRUPTED
                break
            if n + 1 < len(plan.candidates):  # the next one read while this one is taken
                take.read_soon(plan.source, plan.candidates[n + 1], bufsize)
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
                    known=known,
                    slots=slots,
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
                behind.add(got)
            else:
                behind.settle()
                session.record(ctx, result, got)
                progress.file_done(got)
        behind.settle()


# Files published but not yet settled (verified, committed and counted) at most: the
# pipeline waits for the oldest beyond them. It bounds what a crash leaves to redo.
BEHIND_FILES = 64
BEHIND_BYTES = 256 << 20
# How long the verify thread, having verified what it was handed, waits for the next
# file before it commits: files that come faster (a shift's photos, one every few
# milliseconds) share one transaction, up to the bounds above. A large file waits this
# once for its row; nothing waits while the pipeline waits for the thread.
GATHER_S = 0.05


class _TakenBack(Exception):
    """The verify thread stopped (the ledger failed) before it reached this file: it was
    taken back, and stays on the recorder for the next dock."""


@dataclasses.dataclass
class _Job:
    taken: take.Taken
    done: Future[FileOutcome] = dataclasses.field(default_factory=Future)
    picked: bool = False  # the verify thread has it (set under the lock as it takes it)


class _Behind:
    """The files behind the one being copied: their verify and commit in the verify thread.

    The thread verifies each file handed to it in turn, then commits the rows of all
    it verified in one transaction (``take.commit``). Before it commits it waits
    :data:`GATHER_S` for the next file, and verifies that too, so files that come
    quickly (small ones) share a transaction, up to the bounds of what may be behind,
    and a photo does not pay one of its own; it does not wait while the pipeline
    waits for it (:meth:`_hurry`). The pipeline's thread counts each file on the
    session in order (:meth:`settle`).

    Leaving the ``with`` block on an exception (an interrupt, the ledger failing) still
    waits for the thread, which verifies and commits or takes back every file it was
    handed, and then counts each on the session with its alerts, so no thread outlives
    the session and no outcome goes unreported.
    """

    def __init__(self, ctx: Context, root: Path, result: SessionResult, progress: Progress) -> None:
        self._ctx, self._root, self._result, self._progress = ctx, root, result, progress
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockd-verify")
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # a file queued, or the pipeline waits
        self._waiting = False  # the pipeline waits for the thread: commit what it has
        self._queued: list[_Job] = []  # handed over, not yet picked up by the thread
        self._busy = False  # the thread is working through the queue
        self._failed = False  # ... and stopped at a failure: take back what comes
        self._jobs: collections.deque[_Job] = collections.deque()  # not yet settled

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        self._hurry()
        try:
            while self._jobs:  # left by an exception: report the files behind too
                job = self._jobs[0]
                if self._orphaned(job):  # an interrupt as it was handed over
                    self._give_back(job)
                rel = job.taken.rel
                futures.wait([job.done])
                try:
                    self._settle_first()
                except Exception as err:  # the exception already leaving wins
                    log.error("file behind not reported", file=rel, error=str(err))
                    if exc is None:
                        raise
        finally:
            self._pool.shutdown(wait=True)

    def add(self, taken: take.Taken) -> None:
        """Hand ``taken`` to the verify thread (log context and all); count the files
        behind that are done, and wait for the oldest when too many are behind."""
        job = _Job(taken)
        self._jobs.append(job)
        why: BaseException | None = None
        with self._lock:
            failed, self._waiting = self._failed, False
            if not failed:
                self._queued.append(job)
                self._arrived.notify()
                if not self._busy:
                    try:
                        self._pool.submit(contextvars.copy_context().run, self._work)
                    except BaseException as exc:  # no thread to be had: the session fails
                        self._queued.remove(job)
                        self._failed = failed = True
                        why = exc
                    else:
                        self._busy = True
        if failed:
            self._give_back(job, why)
        while self._jobs and (self._jobs[0].done.done() or self._too_many()):
            if not self._jobs[0].done.done():
                self._hurry()
            self._settle_first()

    def _orphaned(self, job: _Job) -> bool:
        """Will the verify thread never reach ``job``? So when an interrupt (Ctrl-C in
        ``dockd ingest``) came inside :meth:`add`, before the job was queued or before a
        thread was started for it; it is then no longer queued, and the caller takes it
        back, so that leaving never waits for it for ever."""
        with self._lock:
            if job.picked or job.done.done():
                return False
            if job in self._queued:
                if self._busy:
                    return False  # the thread running takes it at its next turn
                self._queued.remove(job)
            return True

    def _hurry(self) -> None:
        """The pipeline is about to wait for the thread: it commits what it has now."""
        with self._lock:
            self._waiting = True
            self._arrived.notify()

    def _gather(self, ready: list[_Job]) -> list[_Job]:
        """The files queued within :data:`GATHER_S` (none when the pipeline waits, or
        ``ready`` is already as much as may be behind)."""
        held = sum(j.taken.incoming.size for j in ready)
        if len(ready) >= BEHIND_FILES or held > BEHIND_BYTES:
            return []
        with self._lock:
            if not self._queued and not self._waiting:
                self._arrived.wait(GATHER_S)
            return self._take_queued()

    def _take_queued(self) -> list[_Job]:
        """What is queued, now the thread's (called with the lock held)."""
        jobs, self._queued = self._queued, []
        for job in jobs:
            job.picked = True
        return jobs

    def _too_many(self) -> bool:
        held = sum(j.taken.incoming.size for j in self._jobs)
        return len(self._jobs) > BEHIND_FILES or (len(self._jobs) > 1 and held > BEHIND_BYTES)

    def wait(self, digest: str | None) -> None:
        """Wait for the files behind to be done: all (``None``), or those with the BLAKE3
        ``digest`` (the same recording twice must be found present, not kept twice)."""
        jobs = [j.done for j in self._jobs if digest in (None, j.taken.incoming.blake3)]
        if not all(job.done() for job in jobs):
            self._hurry()
            futures.wait(jobs)

    def settle(self) -> None:
        """Count every file behind on the session, in order, once each is done; what the
        verify thread raised (the ledger gone) is raised here."""
        self._hurry()
        while self._jobs:
            self._settle_first()

    def _settle_first(self) -> None:
        job = self._jobs[0]
        try:
            outcome = job.done.result()
        except _TakenBack:
            self._jobs.popleft()
            return
        except BaseException:
            if job.done.done():  # else interrupted while waiting: __exit__ settles it
                self._jobs.popleft()
            raise
        self._jobs.popleft()
        take.after_commit(self._ctx, job.taken, outcome, self._result.session_id)
        # a stored file was counted on the session in its own commit (take._commit_rows)
        session.record(
            self._ctx, self._result, outcome, counted=outcome.status == FileStatus.STORED
        )
        self._progress.file_done(outcome)

    def _work(self) -> None:
        """The verify thread: verify what is queued, commit it together, until none is."""
        while True:
            with self._lock:
                batch = self._take_queued()
                if not batch:
                    self._busy = False
                    return
            try:
                self._verify_and_commit(batch)
            except BaseException:
                with self._lock:
                    self._failed, self._busy = True, False
                    rest = self._take_queued()
                try:
                    for job in rest:
                        self._give_back(job)
                finally:
                    _fail_rest(rest, _TakenBack())
                return

    def _give_back(self, job: _Job, why: BaseException | None = None) -> None:
        """Take back a file the verify thread will not reach; its job is done whatever
        happens (the pipeline waits for it), with ``why`` when it is the first failure."""
        try:
            take.take_back(self._root, job.taken)
        finally:
            if not job.done.done():  # (an interrupt may have cut a first give-back short)
                job.done.set_exception(why or _TakenBack())

    def _verify_and_commit(self, batch: list[_Job]) -> None:
        """Each job of ``batch``, and of what is gathered behind it, done: failed at its
        verify, committed, or with the failure that stopped the batch (raised again; its
        files taken back or put right)."""
        ready: list[_Job] = []
        pending = list(batch)
        try:
            while pending:
                failed = take.verify(self._ctx, self._root, pending[0].taken)
                job = pending.pop(0)
                if failed is not None:
                    job.done.set_result(failed)
                else:
                    ready.append(job)
                if not pending:
                    pending = self._gather(ready)
                    batch += pending
        except BaseException as exc:  # pending[0] was taken back by its verify
            try:
                for job in ready + pending[1:]:
                    take.take_back(self._root, job.taken)
            finally:
                _fail_rest(batch, exc)
            raise
        if not ready:
            return
        try:
            take.commit(
                self._ctx,
                self._root,
                [j.taken for j in ready],
                lambda i, outcome: ready[i].done.set_result(outcome),
            )
        except BaseException as exc:
            _fail_rest(ready, exc)
            raise


def _fail_rest(jobs: list[_Job], exc: BaseException) -> None:
    """``exc`` for each job not yet done (the pipeline raises it when it settles them)."""
    for job in jobs:
        if not job.done.done():
            job.done.set_exception(exc)
