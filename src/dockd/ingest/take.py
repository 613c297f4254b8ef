"""Taking one file: from the recorder into the store and the ledger, or a precise why not.

The path of one recording, in two parts::

    take_file  open (no links, no FIFOs) -> already here by name? (confirmed by hash)
               -> copy + BLAKE3 into .incoming (dockd.store) -> probe
               -> already here by hash? -> describe (time, officer, flags)
               -> publish (no overwrite, 0440)
    verify     fsync -> optional re-read -> a photo's picture whole?
    commit     the directories fsynced, once each -> ledger rows + audit events (of the
               files verified meanwhile, together)
    after_commit                            -> per-case link, alert of an unplayable file

The pipeline runs ``verify`` and ``commit`` in its verify thread while ``take_file``
copies the next files, so the store's fsyncs and re-read, the check of a photo and the
ledger's commit overlap the recorder's read, and small files share a transaction and
their directory's fsync.

A file ends verified in the store with its row, or as a ``failed``/``refused``
outcome with the store put back as it was. A commit that fails in a way that may
still have landed asks the ledger afresh before it touches the file (see
``_commit_unknown``). The recorder going away raises :class:`SourceGone`: the
session stops there. Tests can stop a real run at a named point (``PAUSE_ENV``).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import structlog
from sqlalchemy import Connection, Select, bindparam, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dockd import store
from dockd.context import Context
from dockd.evidence import bycase, cases
from dockd.ingest import recovery, session
from dockd.ingest.clockcheck import RecorderClock
from dockd.ingest.describe import describe
from dockd.ingest.discover import Candidate
from dockd.ingest.identify import Identity
from dockd.ingest.naming import NameInfo
from dockd.ingest.outcome import FileOutcome, FileStatus, Progress, SessionResult, SourceGone
from dockd.ingest.probe import STILL_FORMAT, probe, still_damage
from dockd.ledger import audit
from dockd.ledger.failures import OutcomeUnknown
from dockd.ledger.models import Recording
from dockd.store.paths import render_path
from dockd.store.stream import on_fuse

log = structlog.get_logger("dockd.ingest")

# Tests make a real `dockd ingest` stop at a named point so it can be killed there:
# DOCKD_TEST_PAUSE=after-copy|after-publish|in-verify|after-commit[:N] (the N-th file
# taken), or several joined by "+" (see _pause). With DOCKD_TEST_RESUME naming a FIFO
# the pause ends when the test writes to it, instead of lasting until the kill.
PAUSE_ENV = "DOCKD_TEST_PAUSE"
RESUME_ENV = "DOCKD_TEST_RESUME"

# Errors that mean the recorder itself went away, not that one file is bad.
_GONE = {errno.ENODEV, errno.ENXIO, errno.ENOTCONN, errno.ESHUTDOWN}


@dataclass
class Taken:
    """A file copied, described and published: its verify and ledger row are to come
    (:func:`verify`, :func:`commit`, run while the next files are copied)."""

    rel: str
    nth: int  # the n-th file this session took (for the test pauses)
    incoming: store.Incoming
    published: PurePosixPath
    row: Recording
    officer: str | None


def _no_wait(_digest: str | None) -> None:
    """No file before this one is still being verified or committed."""


def take_file(
    ctx: Context,
    source: Path,
    root: Path,
    cand: Candidate,
    name: NameInfo | None,
    identity: Identity,
    result: SessionResult,
    clock: RecorderClock,
    *,
    known: Known | None = None,
    slots: store.MarkerSlots | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    previous: Callable[[str | None], None] = _no_wait,
) -> FileOutcome | Taken:
    """Bring one file into the store, up to its publish, or say precisely why not.

    A :class:`Taken` file is published but has no ledger row yet: :func:`verify` and
    :func:`commit` finish it. ``previous(digest)`` waits for the files before this one, whose
    may still run, when it may have the same content (``digest``) or always (``None``).
    ``known`` is what :func:`known_by_name` found of the session's files (asked here
    for this file alone when not given); ``slots`` the session's publish markers.
    """
    cfg = ctx.config
    rel = cand.display
    bufsize = cfg.ingest.copy_buffer_kib * 1024
    try:
        fd = _open_source(source, cand)
    except _NotRegular as exc:
        return FileOutcome(rel, FileStatus.REFUSED, str(exc))
    except OSError as exc:
        return _failed_or_gone(source, rel, "cannot open", exc)
    try:
        size = cand.size if cand.fallback is not None else os.fstat(fd).st_size
        if known is None:
            known = known_by_name(ctx, identity.ref, [cand])
        if _present_by_name(known, cand.raw, size, fd, bufsize, stop):
            return FileOutcome(rel, FileStatus.PRESENT, size=size)
        try:
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError as exc:  # a pipe from the fallback reader: open it again
            if exc.errno != errno.ESPIPE:
                raise
            os.close(fd)
            fd = -1  # closed: the `finally` below must not close a number reused since
            fd = _open_source(source, cand)
        incoming = store.copy_into_incoming(
            root,
            fd,
            buffer_size=bufsize,
            stop=stop,
            progress=progress.advance if progress is not None else None,
            sync=False,  # in the verify thread (verify, commit), beside the next copy
        )
    except OSError as exc:
        return _failed_or_gone(source, rel, "copy failed", exc)
    finally:
        if fd >= 0:
            os.close(fd)
    if incoming.size != size:
        incoming.discard()
        return FileOutcome(
            rel,
            FileStatus.FAILED,
            f"changed size while being copied ({size} -> {incoming.size} bytes); "
            "the recorder may still be writing it: dock it again when it has finished",
        )

    result.taken += 1
    _pause("after-copy", result.taken, rel, previous)
    published: PurePosixPath | None = None
    try:
        previous(incoming.blake3)  # the same recording twice on one recorder: one is kept
        # outside any transaction: a damaged video may keep the probe reading a while
        info = probe(incoming.path, still=cand.kind == "photo")
        # One read transaction for the file's questions to the ledger (each its own cost
        # as much as its query), begun after the files before with the same content are
        # committed (``previous``), so that it sees their rows.
        with ctx.ledger.read_rows() as conn:
            if _present_by_hash(conn, identity.ref, incoming.blake3):
                incoming.discard()
                return FileOutcome(rel, FileStatus.PRESENT, size=incoming.size)
            row, officer_badge = describe(
                ctx, conn, cand, name, identity, info, incoming, result.session_id, clock
            )
            target = render_path(
                cfg.store.path_template,
                local_time=row.recorded_start.astimezone(cfg.station.tz),
                device=identity.ref,
                badge=officer_badge,
                station=cfg.station.id,
                source_name=PurePosixPath(rel).name,
                kind=cand.kind,
            )
            station = cfg.station.id
            published = store.publish(
                root,
                incoming,
                target,
                taken=lambda p: _path_in_ledger(conn, station, p),
                slots=slots,
                sync=False,
            )
        row.store_path = published.as_posix()
        _pause("after-publish", result.taken, rel, previous)
    except BaseException as exc:
        return _undo(ctx, root, rel, incoming, published, exc, committing=False)
    return Taken(rel, result.taken, incoming, published, row, officer_badge)


def verify(ctx: Context, root: Path, taken: Taken) -> FileOutcome | None:
    """Make a published file's data durable, read it back (``verify = "reread"``) and
    check a photo's picture: None when its row may be committed (:func:`commit`), else
    the failed outcome with the store put back (an fsync the disk fails, too). Anything
    but an ``OSError`` takes the file back and is raised.

    Runs in the pipeline's verify thread while the next file is copied.
    """
    cfg = ctx.config
    incoming, row = taken.incoming, taken.row
    try:
        _pause("in-verify", taken.nth, taken.rel)
        store.sync_file(root / taken.published)  # its data on the disk: re-read from there
        if cfg.ingest.verify == "reread":
            bufsize = cfg.ingest.copy_buffer_kib * 1024
            again = store.hash_stored(root / taken.published, buffer_size=bufsize)
            if again != incoming.blake3:
                raise OSError(
                    errno.EIO,
                    f"re-read of the stored copy gave BLAKE3 {again}, "
                    f"expected {incoming.blake3}: the store disk may be failing",
                )
            row.verified = True
        _check_picture(root / taken.published, row)
    except BaseException as exc:
        return _undo(ctx, root, taken.rel, incoming, taken.published, exc, committing=False)
    return None


Decided = Callable[[int, FileOutcome], None]


def commit(ctx: Context, root: Path, batch: Sequence[Taken], decided: Decided) -> None:
    """Commit the rows of verified files (:func:`verify`) in one transaction, calling
    ``decided(i, outcome)`` for the i-th file of ``batch`` as soon as its outcome is known.

    A file is in the ledger only once it is durable and verified, whether its row is
    committed alone or with the files verified beside it. A row the ledger refuses
    (``IntegrityError``) fails its own file only: the batch is then committed file by
    file, each row as :func:`take_file` described it. Any other failure is raised for
    the files not yet decided, once each one's store is right: a commit that may have
    landed is asked afresh (``_commit_unknown``), a file not tried is taken back. When
    the ledger answered the commit with an error but its rows are there (a connection
    lost after COMMIT was sent), the files are stored, and the dock goes on.
    """
    try:  # the files' names on the disk too, before a row names them: once a directory
        store.sync_dirs({(root / t.published).parent for t in batch})
    except OSError as exc:  # the store's disk is failing: none of them is kept
        for i, t in enumerate(batch):
            decided(i, _undo(ctx, root, t.rel, t.incoming, t.published, exc, committing=False))
        return
    described = [_columns(t.row) for t in batch]
    try:
        ids = _commit_rows(ctx, [(t.row, t.officer) for t in batch])
    except IntegrityError as exc:
        if len(batch) == 1:
            t = batch[0]
            decided(0, _undo(ctx, root, t.rel, t.incoming, t.published, exc, committing=True))
            return
        for t, columns in zip(batch, described, strict=True):
            t.row = Recording(**columns)  # not as the failed attempt left it (a case tag)
        for k, t in enumerate(batch):  # one by one: find the row refused
            try:
                commit(ctx, root, [t], _nth(decided, k))
            except BaseException:
                for rest in batch[k + 1 :]:
                    take_back(root, rest)
                raise
        return
    except BaseException as exc:
        # The ledger could not make sure of the commit's outcome: recovery asks later.
        landed = _asked_afresh(ctx, root, batch, can_ask=not isinstance(exc, OutcomeUnknown))
        if landed is None or not isinstance(exc, SQLAlchemyError):
            raise exc
        log.warning(
            "the ledger answered a commit with an error, but its rows are there: "
            "the files are stored",
            files=len(batch),
            error=str(exc).partition("\n")[0],
        )
        ids = landed
    for i, (t, file_id) in enumerate(zip(batch, ids, strict=True)):
        _settle(t)  # (settled already when the commit was asked afresh)
        _pause("after-commit", t.nth, t.rel)
        row = t.row
        outcome = FileOutcome(
            t.rel,
            FileStatus.STORED,
            file_id=file_id,
            store_path=row.store_path,
            flags=tuple(row.flags),
            size=row.size_bytes,
            officer=t.officer,
        )
        decided(i, outcome)


def _asked_afresh(
    ctx: Context, root: Path, batch: Sequence[Taken], *, can_ask: bool
) -> list[int] | None:
    """After a commit that may have landed: each file's store put right by what the
    ledger says now (``_commit_unknown``); the rows' ids when every one is there, else
    None. Once the ledger cannot be asked (or not ``can_ask``: what it says may still
    change), the files left are recovery's."""
    ids: list[int] = []
    asked = can_ask
    for t in batch:
        t.incoming.discard()
        if asked:
            asked, file_id = _commit_unknown(ctx, root, t.published, t.incoming)
            if file_id is not None:
                ids.append(file_id)
        else:  # the ledger cannot be asked: recovery asks again
            store.abandon(t.incoming)
    return ids if len(ids) == len(batch) else None


def _nth(decided: Decided, k: int) -> Decided:
    """``decided`` for a batch of one: its file is the k-th of the whole batch."""

    def one(_i: int, outcome: FileOutcome) -> None:
        decided(k, outcome)

    return one


def _columns(row: Recording) -> dict[str, object]:
    return {a.key: getattr(row, a.key) for a in sa_inspect(Recording).column_attrs}


def _settle(taken: Taken) -> None:
    """Drop the marker of a committed file. A store that cannot (read-only after a disk
    error) leaves it to recovery, which finds the row and keeps the file."""
    try:
        store.settle(taken.incoming)
    except OSError as exc:
        store.abandon(taken.incoming)
        log.error("publish marker not removed", file=taken.rel, error=_oserror(exc))


def _check_picture(path: Path, row: Recording) -> None:
    """Flag the row of a photo whose headers read but whose picture is damaged.

    The probe read only the headers of what the image demuxer read; the picture is
    checked in this stage, beside the next file's copy (``probe.still_damage``); the
    row keeps what the headers said.
    """
    if row.probe_error is None and row.container == STILL_FORMAT:
        error = still_damage(path)
        if error is not None:
            row.probe_failed, row.probe_error = True, error


def _undo(
    ctx: Context,
    root: Path,
    rel: str,
    incoming: store.Incoming,
    published: PurePosixPath | None,
    exc: BaseException,
    *,
    committing: bool,
) -> FileOutcome:
    """Put the store back as it was after ``exc``; the failed outcome, or ``exc`` raised
    again when it is not this file's alone (the ledger down, an interrupt)."""
    incoming.discard()
    if committing and not isinstance(exc, IntegrityError):
        assert published is not None
        _commit_unknown(ctx, root, published, incoming)
        raise exc
    _put_back(root, rel, published, incoming)
    if isinstance(exc, OSError):
        return FileOutcome(rel, FileStatus.FAILED, f"store failed: {_oserror(exc)}")
    if isinstance(exc, IntegrityError):  # this row only; the ledger itself works
        reason = f"ledger refused the row, file not kept: {exc.orig}"
        return FileOutcome(rel, FileStatus.FAILED, reason)
    raise exc


def take_back(root: Path, taken: Taken) -> None:
    """Unpublish ``taken`` (not committed): it stays on the recorder for the next dock."""
    _put_back(root, taken.rel, taken.published, taken.incoming)


def _put_back(
    root: Path, rel: str, published: PurePosixPath | None, incoming: store.Incoming
) -> None:
    """Remove a file that has no row from the store. A store that cannot (read-only
    after a disk error) leaves the file and its marker to recovery, which removes it."""
    try:
        incoming.discard()
        if published is not None:
            store.unpublish(root, published)
        store.settle(incoming)
    except OSError as exc:
        store.abandon(incoming)
        log.error("file not taken back; recovery removes it", file=rel, error=_oserror(exc))


def after_commit(ctx: Context, taken: Taken, outcome: FileOutcome, session_id: int) -> None:
    """What follows a stored file's commit, in the pipeline's own thread."""
    if outcome.status == FileStatus.STORED:
        assert outcome.file_id is not None
        _after_commit(ctx, taken.row, outcome.file_id, taken.rel, session_id)


def _after_commit(ctx: Context, row: Recording, file_id: int, rel: str, session_id: int) -> None:
    """The per-case link of a file an imported case tagged; the alert of an unplayable one."""
    if row.case_number is not None:  # tagged on arrival by an imported case
        try:
            bycase.link_file(ctx.config, row)
        except OSError as exc:  # the per-case view is secondary; `dockd cases links` mends it
            log.warning("per-case link failed", file=rel, error=str(exc))
    if row.probe_failed:
        ctx.alerts.raise_alert(
            "ingest.probe_failed",
            f"{row.device_ref}:{rel}",
            f"{rel} from {row.device_ref} is stored as {row.store_path} (BLAKE3 {row.blake3}) "
            f"but cannot be played: {row.probe_error}; it is kept as evidence and flagged",
            severity="warning",
            details={"file_id": file_id, "session_id": session_id},
            group=f"session:{session_id}",
            item=rel,
        )


def _commit_rows(ctx: Context, rows: Sequence[tuple[Recording, str | None]]) -> list[int]:
    """The ledger rows and their audit events, in one transaction, after the bytes are
    safe; each row with the badge it is tagged with. Their ids, in order."""
    with ctx.ledger.session() as s:
        s.add_all(row for row, _badge in rows)
        s.flush()
        audit.record_many(
            s,
            [
                audit.file_change(
                    row,
                    row.ingested_at,
                    ctx.actor,
                    "file.ingest",
                    audit.AUDITED_FILE_COLUMNS,
                    {
                        "size": row.size_bytes,
                        "officer": badge,
                        "time_source": row.time_source,
                        "flags": row.flags,
                        "session_id": row.session_id,
                        "verified": row.verified,
                    },
                )
                for row, badge in rows
            ],
        )
        cases.tag_on_ingest(s, [row for row, _badge in rows], actor=ctx.actor)
        for row, _badge in rows:
            if row.session_id is not None:  # always, for an ingest: its session counts it now
                stored = FileOutcome(row.source_path, FileStatus.STORED, size=row.size_bytes)
                session.count(s, row.session_id, stored, row.ingested_at)
        return [row.id for row, _badge in rows]


def _commit_unknown(
    ctx: Context, root: Path, published: PurePosixPath, incoming: store.Incoming
) -> tuple[bool, int | None]:
    """The commit failed in a way that may still have landed (a connection lost after
    COMMIT was sent, an interrupt): ask the ledger afresh before touching the file.
    Whether it could be asked, and the id of the file's row.

    Recorded: keep it. Not recorded: unpublish. Cannot tell: leave the file and its
    marker; the next run's recovery asks again.
    """
    try:
        kept = recovery.recorded(ctx, published, incoming.blake3)
    except SQLAlchemyError:
        store.abandon(incoming)
        return False, None
    try:
        if kept is None:
            store.unpublish(root, published)
        store.settle(incoming)
    except OSError as exc:  # the store read-only: recovery puts it right
        store.abandon(incoming)
        log.error("file not put right after a failed commit", file=str(published), error=str(exc))
    return True, kept


# ---------------------------------------------------------------------------- the source


class _NotRegular(Exception):
    pass


def read_soon(source: Path, cand: Candidate, buffer_size: int) -> None:
    """Ask the kernel to start reading a small file the next :func:`take_file` copies,
    while this one is worked on: a photo's read from the recorder then overlaps the
    previous photo's probe, publish and ledger questions. Advice only (nothing is read
    into dockd, an error is ignored); not for a large file (its copy reads ahead in a
    thread of its own), a file the fallback reader stages, nor on FUSE, where advice
    about reading has cost reads before (``store.copy_into_incoming``)."""
    if cand.fallback is not None or cand.size > 2 * buffer_size:
        return
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(source / cand.relpath, flags)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode) and not on_fuse(fd):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_source(source: Path, cand: Candidate) -> int:
    """Open without following a link and without blocking on a FIFO swapped in late."""
    if cand.fallback is not None:
        return cand.fallback.open(cand.raw)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(source / cand.relpath, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _NotRegular("became a symbolic link while docked: refused") from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _NotRegular("is no longer a regular file: refused")
    os.set_blocking(fd, True)
    return fd


def _oserror(exc: OSError) -> str:
    return f"{exc.strerror or exc} (errno {exc.errno})" if exc.errno else str(exc)


def _failed_or_gone(source: Path, rel: str, what: str, exc: OSError) -> FileOutcome:
    if exc.errno in _GONE or not _source_alive(source):
        raise SourceGone(f"{what}: the recorder went away ({_oserror(exc)})") from exc
    return FileOutcome(rel, FileStatus.FAILED, f"{what}: {_oserror(exc)}")


def _source_alive(source: Path) -> bool:
    try:
        os.listdir(source)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------- already here?


# The per-file reads, built once (bound per call): as ORM queries built per call they
# were a third of a small file's time on the pipeline's thread.
_BY_NAMES = select(Recording.source_path_raw, Recording.size_bytes, Recording.blake3).where(
    Recording.device_ref == bindparam("device"),
    Recording.source_path_raw.in_(bindparam("raws", expanding=True)),
)
_BY_HASH = (
    select(Recording.id)
    .where(Recording.blake3 == bindparam("digest"), Recording.device_ref == bindparam("device"))
    .limit(1)
)
_BY_PATH = (
    select(Recording.id)
    .where(Recording.station == bindparam("station"), Recording.store_path == bindparam("path"))
    .limit(1)
)
# Paths asked for in one statement: far below every backend's limit of bound values.
_NAMES_PER_QUERY = 500

# (path on the recorder, size) -> the BLAKE3 of the rows the ledger has of them
Known = Mapping[tuple[bytes, int], frozenset[str]]


def known_by_name(ctx: Context, device_ref: str, cands: Sequence[Candidate]) -> Known:
    """What the ledger already holds of these files of the recorder, by path and size,
    asked in a few statements for a whole dock instead of one per file.

    Trashed and purged files count too: re-docking a recorder that was never wiped
    must not bring back footage that retention has already let go. Asked once, before
    the first copy: only this session adds rows for this recorder while it runs (the
    recorder's lock), and never two for one path on it.
    """
    found: dict[tuple[bytes, int], set[str]] = {}
    raws = sorted({c.raw for c in cands})
    with ctx.ledger.read_rows() as conn:
        for i in range(0, len(raws), _NAMES_PER_QUERY):
            params = {"device": device_ref, "raws": raws[i : i + _NAMES_PER_QUERY]}
            for raw, size, digest in conn.execute(_BY_NAMES, params):
                if raw is not None:  # matched by path: never None here
                    found.setdefault((bytes(raw), size), set()).add(digest)
    return {key: frozenset(digests) for key, digests in found.items()}


def _present_by_name(
    known: Known,
    raw: bytes,
    size: int,
    fd: int,
    bufsize: int,
    stop: threading.Event | None,
) -> bool:
    """Same recorder, same path, same size already in the ledger? Then confirm by hash only."""
    hashes = known.get((raw, size))
    if not hashes:
        return False
    return store.hash_fd(fd, buffer_size=bufsize, stop=stop) in hashes


def _any_row(conn: Connection, stmt: Select[int], params: dict[str, str]) -> bool:
    return conn.execute(stmt, params).first() is not None


def _path_in_ledger(conn: Connection, station: str, store_path: PurePosixPath) -> bool:
    """A row of this station already uses the path (a trashed, purged or quarantined file)."""
    return _any_row(conn, _BY_PATH, {"station": station, "path": store_path.as_posix()})


def _present_by_hash(conn: Connection, device_ref: str, digest: str) -> bool:
    return _any_row(conn, _BY_HASH, {"digest": digest, "device": device_ref})


def _pause(
    point: str, nth: int, rel: str, previous: Callable[[str | None], None] | None = None
) -> None:
    """Stop here for ever when a test asked for it (see PAUSE_ENV); a no-op otherwise.

    ``DOCKD_TEST_PAUSE`` names one point (``after-copy:2``) or several joined by ``+``
    (``in-verify:1+after-publish:2``). One point of the pipeline's own thread
    (after-copy, after-publish) is a clean cut: it first waits for every file before
    (``previous``) to be verified and committed. One point of the verify thread
    (in-verify, after-commit) leaves the pipeline thread going on to the next files
    until too many are behind (``pipeline.BEHIND_FILES``); after-commit:N holds the
    thread once the batch holding file N is committed, the later files of that batch
    with their markers still in place. Several points stop each thread where it is.
    """
    want = os.environ.get(PAUSE_ENV)
    if not want:
        return
    points = want.split("+")
    for spec in points:
        name, _, n = spec.partition(":")
        if name == point and nth == (int(n) if n.isdigit() else 1):
            break
    else:
        return
    if previous is not None and len(points) == 1:
        previous(None)
    sys.stderr.write(f"dockd-test-pause {point} {rel}\n")
    sys.stderr.flush()
    resume = os.environ.get(RESUME_ENV)
    if resume:  # a FIFO: go on once the test writes to it
        with open(resume, "rb") as fifo:
            fifo.read(1)
        return
    threading.Event().wait()
