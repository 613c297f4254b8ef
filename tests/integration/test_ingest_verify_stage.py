"""What the verify thread does with the files behind the one being copied (issue 16):
it checks each photo's picture, and commits the rows of the files it verified, and of
those that came while it did, in one transaction, so a shift's photos do not pay a
transaction each.

The batches are made certain, not left to the machine's speed: the pipeline takes
file 2 only once the verify thread is at file 1, and the verify thread goes on from
file 1 only once the pipeline has handed it every other file."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from dockd.clock import FixedClock
from dockd.context import Context
from dockd.errors import LedgerError
from dockd.evidence import caseimport
from dockd.ingest import pipeline, take
from dockd.ingest import session as dock_session
from dockd.ingest.describe import describe as describe_file
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.models import Alert, AuditEvent, DockSession, Recording, SessionFailure
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register


@dataclass
class Held:
    """The verify thread held at file 1 until every file is handed to it; the size of
    each commit, in order."""

    files: int
    published: int = 0
    handed: int = 0
    at_first: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    commits: list[int] = field(default_factory=list)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Held]:
    real_take, real_verify, real_commit = take.take_file, take.verify, take._commit_rows
    real_add = pipeline._Behind.add
    state = Held(files=0)

    # The waits below are guards only: a test fails on what they return, never hangs.
    def take_file(*args: Any, **kw: Any) -> Any:
        if state.published == 1:  # file 2 only once the verify thread is at file 1
            assert state.at_first.wait(120), "the verify thread never took file 1"
        got = real_take(*args, **kw)
        state.published += isinstance(got, take.Taken)
        return got

    def add(behind: Any, taken: take.Taken) -> None:
        real_add(behind, taken)
        state.handed += 1
        if state.handed == state.files:  # all queued: the thread finds them at once
            state.released.set()

    def verify(c: Context, root: Path, taken: take.Taken) -> Any:
        if taken.nth == 1:
            state.at_first.set()
            assert state.released.wait(120), "the pipeline never handed over the other files"
        return real_verify(c, root, taken)

    def commit_rows(c: Context, rows: Sequence[tuple[Recording, str | None]]) -> list[int]:
        state.commits.append(len(rows))
        return real_commit(c, rows)

    monkeypatch.setattr(take, "take_file", take_file)
    monkeypatch.setattr(take, "verify", verify)
    monkeypatch.setattr(take, "_commit_rows", commit_rows)
    monkeypatch.setattr(pipeline._Behind, "add", add)
    yield state


def _card(tmp_path: Path, ctx: Context, clock: FixedClock, held: Held) -> Recorder:
    rec = make_recorder(tmp_path / "rec", extras=False, clips=5)
    register(ctx.ledger, clock, rec)
    held.files = len(rec.recordings)
    return rec


def _chain_ok(ctx: Context) -> None:
    with ctx.ledger.read() as s:
        assert audit.verify(s).problems == []


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_files_verified_while_a_commit_waits_share_one_transaction(
    ctx: Context, tmp_path: Path, clock: FixedClock, held: Held
) -> None:
    rec = _card(tmp_path, ctx, clock, held)
    n = len(rec.recordings)

    result = run_ingest(ctx, rec.root)

    assert result.ok and result.count("stored") == n
    assert held.commits == [n]  # the others came while file 1 was verified: all together
    with ctx.ledger.read() as s:
        rows = list(s.scalars(select(Recording).order_by(Recording.id)))
        assert sorted(r.source_path for r in rows) == sorted(r.relpath for r in rec.recordings)
        assert all(r.verified for r in rows)
        session = s.get_one(DockSession, result.session_id)
        assert (session.files_seen, session.files_stored) == (n, n)
        ingests = s.scalars(
            select(AuditEvent.subject_id).where(AuditEvent.action == "file.ingest")
        ).all()
        assert sorted(ingests) == sorted(str(r.id) for r in rows)  # one event per file
    # the session reports the files in the order they were taken, the rows' order
    assert [f.relpath for f in result.files] == [r.source_path for r in rows]
    _chain_ok(ctx)


def test_the_thread_gathers_the_files_that_come_and_never_keeps_the_pipeline_waiting(
    ctx: Context, tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing holds the verify thread here: it waits for the next file before it
    commits, so the whole card is one transaction; and when the pipeline has taken the
    last file and waits for the thread, the thread commits at once instead of waiting
    out its time (made ten minutes here: the guard below fails long before)."""
    rec = make_recorder(tmp_path / "rec", extras=False, clips=5)
    register(ctx.ledger, clock, rec)
    monkeypatch.setattr(pipeline, "GATHER_S", 600.0)
    real_commit, commits = take._commit_rows, []

    def commit_rows(c: Context, rows: Sequence[tuple[Recording, str | None]]) -> list[int]:
        commits.append(len(rows))
        return real_commit(c, rows)

    monkeypatch.setattr(take, "_commit_rows", commit_rows)
    got: list[Any] = []
    docking = threading.Thread(target=lambda: got.append(run_ingest(ctx, rec.root)), daemon=True)
    docking.start()
    docking.join(120)  # a guard: the dock takes seconds unless the thread waits its time out
    assert not docking.is_alive(), "the pipeline waited for the verify thread's gathering"
    [result] = got
    assert result.ok and result.count("stored") == len(rec.recordings)
    assert commits == [len(rec.recordings)]


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_a_row_the_ledger_refuses_in_a_batch_fails_that_file_alone(
    ctx: Context, tmp_path: Path, clock: FixedClock, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = _card(tmp_path, ctx, clock, held)
    n = len(rec.recordings)
    victim = rec.recordings[2].relpath

    def describe(*args: Any, **kw: Any) -> Any:
        row, badge = describe_file(*args, **kw)
        if row.source_path == victim:
            row.blake3 = None  # type: ignore[assignment]  # NOT NULL: the ledger refuses it
        return row, badge

    monkeypatch.setattr(take, "describe", describe)
    result = run_ingest(ctx, rec.root)

    # the batch failed as a whole, then each row alone: only the victim's is refused
    assert held.commits == [n, *([1] * n)]
    [failed] = [f for f in result.files if f.status == "failed"]
    assert failed.relpath == victim and "ledger refused the row" in (failed.reason or "")
    assert result.count("stored") == n - 1
    root = ctx.config.store.root
    kept = {p.name for p in root.rglob("*") if p.is_file() and ".incoming" not in p.parts}
    assert Path(victim).name not in kept and len(kept) == n - 1
    assert not list((root / ".incoming").iterdir())
    with ctx.ledger.read() as s:
        assert victim not in set(s.scalars(select(Recording.source_path)))
        [failure] = s.scalars(select(SessionFailure)).all()
        assert failure.source_path == victim
        session = s.get_one(DockSession, result.session_id)
        assert (session.files_stored, session.files_failed) == (n - 1, 1)
    _chain_ok(ctx)


def _import_cases(ctx: Context, rec: Recorder, *windows: tuple[str, str, int, int | None]) -> None:
    """Cases of (number, badge, start, end) seconds after the recorder's first clip,
    imported as ``dockd cases import`` does."""
    base = rec.of_kind("video")[0].recorded_at
    assert base is not None
    tz = ctx.config.station.tz

    def at(sec: int | None) -> str:
        return "" if sec is None else (base + timedelta(seconds=sec)).astimezone(tz).strftime(_T)

    text = "case_number,officer_badge,start,end,cause,party\n" + "".join(
        f"{n},{badge},{at(a)},{at(b)},cause,party\n" for n, badge, a, b in windows
    )
    rows = caseimport.parse_cases_csv(text, tz)
    with ctx.ledger.session() as s:
        now = ctx.clock.now()
        caseimport.import_cases(s, rows, at=now, actor="clerk", station="st", source="c.csv")


_T = "%Y-%m-%d %H:%M:%S"


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_the_files_of_a_batch_are_each_tagged_by_their_own_case_also_after_a_refusal(
    ctx: Context, tmp_path: Path, clock: FixedClock, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cases that may cover a batch are read at once; each file still takes the
    earliest-starting case of its officer whose window overlaps it. When the ledger
    refuses the batch after its files were tagged (here: the session's count for one
    file) and it is retried file by file, every other file is tagged once, as it would
    have been alone, not left with the tag of the attempt that was rolled back."""
    rec = _card(tmp_path, ctx, clock, held)  # clips 2 s long, at 0, 62, 124, 186, 248 s
    _import_cases(
        ctx,
        rec,
        ("A-1", rec.badge, -10, 70),  # clips 0 and 1
        ("B-2", rec.badge, 60, 130),  # clips 1 (A-1 starts earlier) and 2
        ("C-3", rec.badge, 240, None),  # clip 4: open-ended
        ("X-9", "999999", -60, None),  # another officer's: none of these files
    )
    clips = [v.relpath for v in rec.of_kind("video")]
    expected = {clips[0]: "A-1", clips[1]: "A-1", clips[2]: "B-2", clips[3]: None}
    expected[clips[4]] = "C-3"
    for other in (*rec.of_kind("photo"), *rec.of_kind("audio")):  # at 12 and 22 s
        expected[other.relpath] = "A-1"
    victim = clips[3]  # the one no case covers: the others tell the tags apart
    real_count = dock_session.count

    def count(s: Any, session_id: int, outcome: Any, at: Any) -> None:
        if outcome.relpath == victim and outcome.status == "stored":  # after the tags
            raise IntegrityError("UPDATE dock_sessions", {}, Exception("refused"))
        real_count(s, session_id, outcome, at)

    monkeypatch.setattr(dock_session, "count", count)
    result = run_ingest(ctx, rec.root)

    n = len(rec.recordings)
    assert held.commits == [n, *([1] * n)]  # the batch, then one by one
    assert [f.relpath for f in result.files if f.status == "failed"] == [victim]
    del expected[victim]
    with ctx.ledger.read() as s:
        got = {p: c for p, c in s.execute(select(Recording.source_path, Recording.case_number))}
        tagged = s.scalars(select(AuditEvent.subject_id).where(AuditEvent.action == "file.tag"))
        events = sorted(tagged)
        ids = {p: i for p, i in s.execute(select(Recording.source_path, Recording.id))}
    assert got == expected
    assert events == sorted(str(ids[p]) for p, case in expected.items() if case)  # once each
    _chain_ok(ctx)


def _store_files(ctx: Context) -> set[str]:
    root = ctx.config.store.root
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".incoming" not in p.parts
    }


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_the_ledger_failing_with_files_queued_takes_them_all_back(
    ctx: Context, tmp_path: Path, clock: FixedClock, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger goes away at file 1's commit while the other files wait, published,
    for the verify thread: none is left in the store without its row, none half-way,
    and the next dock takes every one."""
    rec = _card(tmp_path, ctx, clock, held)
    counting = take._commit_rows

    def ledger_gone(c: Context, rows: Sequence[tuple[Recording, str | None]]) -> list[int]:
        counting(c, [])  # counted, not written
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(take, "_commit_rows", ledger_gone)
    with pytest.raises(LedgerError):
        run_ingest(ctx, rec.root)

    assert held.commits == [0]  # the failure stopped the thread: the rest never tried
    _nothing_left_then_all_taken(ctx, rec, monkeypatch)


def test_the_same_recording_twice_on_a_recorder_is_kept_once(
    ctx: Context, tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorder that holds one clip under two names: the second waits for the
    first's commit, whatever batch it is in, and is found present.

    Made certain, not left to the timing: the verify thread is held at the first
    copy until the pipeline waits for a file behind, which it does only for the
    second copy; a pipeline that did not wait would store a twin, and then wait at the
    end of the session for a thread held until the guard fails."""
    rec = make_recorder(tmp_path / "rec", extras=False, clips=5)
    register(ctx.ledger, clock, rec)
    first = rec.of_kind("video")[0]
    twin = rec.root / "DCIM" / "100MEDIA" / "COPY_0001.MP4"
    shutil.copyfile(rec.path(first), twin)
    real_verify, real_wait = take.verify, futures.wait
    waited = threading.Event()

    def verify(c: Context, root: Path, taken: take.Taken) -> Any:
        if taken.nth == 1:
            assert waited.wait(120), "the pipeline never waited for the first copy's commit"
        return real_verify(c, root, taken)

    def wait(jobs: Any) -> Any:
        waited.set()
        return real_wait(jobs)

    monkeypatch.setattr(take, "verify", verify)
    monkeypatch.setattr(pipeline, "futures", SimpleNamespace(wait=wait))

    result = run_ingest(ctx, rec.root)

    assert result.count("stored") == len(rec.recordings)
    # the copy is taken first (its name sorts first), the original found present
    [present] = [f for f in result.files if f.status == "present"]
    assert present.relpath == first.relpath
    with ctx.ledger.read() as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == len(rec.recordings)
    assert len(_store_files(ctx)) == len(rec.recordings)


def _cut_after_headers(path: Path) -> None:
    """Keep a JPEG's headers and drop its picture (from the start of scan on), as a
    recorder losing power while writing it leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\xff\xda")])


def test_a_photo_cut_off_after_its_headers_is_kept_flagged_with_its_size(
    ctx: Context, tmp_path: Path, clock: FixedClock
) -> None:
    rec = make_recorder(tmp_path / "rec", extras=True, clips=2)
    register(ctx.ledger, clock, rec)
    [photo] = rec.of_kind("photo")
    _cut_after_headers(rec.path(photo))

    result = run_ingest(ctx, rec.root)

    assert result.count("stored") == len(rec.recordings)
    with ctx.ledger.read() as s:
        row = s.scalars(select(Recording).where(Recording.source_path == photo.relpath)).one()
        damaged = set(s.scalars(select(Recording.source_path).where(Recording.probe_failed)))
        alerts = s.scalars(select(Alert).where(Alert.kind == "ingest.probe_failed")).all()
    # the photo, and the recorder's own broken and empty files; no other
    broken = {r.relpath for r in rec.recordings if r.kind in ("broken", "empty")}
    assert broken and damaged == broken | {photo.relpath}
    assert row.probe_failed and "cut off" in (row.probe_error or "")
    assert "probe-failed" in row.flags and row.verified
    # what the headers said is kept: the picture's codec and size
    assert (row.video_codec, row.width, row.height) == ("mjpeg", 160, 120)
    assert any(photo.relpath in (a.message or "") for a in alerts)
    assert (ctx.config.store.root / row.store_path).stat().st_size == row.size_bytes


class _Tripped(threading.Condition):
    """The verify thread's condition, whose first ``notify`` (the hand-over of file 1,
    queued, before a thread is started for it) raises what Ctrl-C raises there."""

    tripped = False

    def notify(self, n: int = 1) -> None:
        if not self.tripped:
            self.tripped = True
            raise KeyboardInterrupt
        super().notify(n)


def test_an_interrupt_while_a_file_is_handed_to_the_verify_thread_leaves_nothing_behind(
    ctx: Context, tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C may land anywhere in ``dockd ingest``: here inside the hand-over of the
    first file. The ingest leaves at once with the interrupt (it used to wait for ever
    for a file no thread would reach), the file taken back: nothing in the store
    without its row, no marker left; the next dock takes every file."""
    rec = make_recorder(tmp_path / "rec", extras=False, clips=3)
    register(ctx.ledger, clock, rec)
    real_init = pipeline._Behind.__init__

    def init(behind: Any, *args: Any) -> None:
        real_init(behind, *args)
        behind._arrived = _Tripped(behind._lock)

    monkeypatch.setattr(pipeline._Behind, "__init__", init)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            run_ingest(ctx, rec.root)
        except BaseException as exc:
            raised.append(exc)

    dock = threading.Thread(target=run, daemon=True)
    dock.start()
    dock.join(120)  # a guard: the test fails on it, never hangs
    assert not dock.is_alive(), "the ingest waits for a file no thread will reach"
    assert [type(e) for e in raised] == [KeyboardInterrupt]
    _nothing_left_then_all_taken(ctx, rec, monkeypatch)


def _nothing_left_then_all_taken(
    ctx: Context, rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dock cut short left no file in the store, no marker and no row; the next dock
    (with the test's patches undone) takes every file."""
    assert _store_files(ctx) == set()
    assert not list((ctx.config.store.root / ".incoming").iterdir())
    with ctx.ledger.read() as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 0

    monkeypatch.undo()
    again = run_ingest(ctx, rec.root)
    assert again.ok and again.count("stored") == len(rec.recordings)
    with ctx.ledger.read() as s:
        paths = set(s.scalars(select(Recording.store_path)))
    assert paths == _store_files(ctx) and len(paths) == len(rec.recordings)
    _chain_ok(ctx)
