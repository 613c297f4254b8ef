"""What the verify thread does with the files behind the one being copied (issue 16):
it decodes each file's first frame, and commits the rows of the files it verified
meanwhile in one transaction, so a shift's photos do not pay a transaction each.

The verify thread is held at its first file until the pipeline has published every
other file, so the batch is there for certain (not left to the machine's speed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest import take
from dockd.ingest.describe import describe as describe_file
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.models import Alert, AuditEvent, DockSession, Recording, SessionFailure
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register


@dataclass
class Held:
    """The verify thread held at file 1 until every file is published; the size of
    each commit, in order."""

    files: int
    published: int = 0
    released: threading.Event = field(default_factory=threading.Event)
    commits: list[int] = field(default_factory=list)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Held]:
    real_take, real_verify, real_commit = take.take_file, take.verify, take._commit_rows
    state = Held(files=0)

    def take_file(*args: Any, **kw: Any) -> Any:
        got = real_take(*args, **kw)
        if isinstance(got, take.Taken):
            state.published += 1
            if state.published == state.files:
                state.released.set()
        return got

    def verify(c: Context, root: Path, taken: take.Taken) -> Any:
        if taken.nth == 1:  # a guard only: the test fails below if it was not released
            assert state.released.wait(120), "the pipeline never published the other files"
        return real_verify(c, root, taken)

    def commit_rows(c: Context, rows: Sequence[tuple[Recording, str | None]]) -> list[int]:
        state.commits.append(len(rows))
        return real_commit(c, rows)

    monkeypatch.setattr(take, "take_file", take_file)
    monkeypatch.setattr(take, "verify", verify)
    monkeypatch.setattr(take, "_commit_rows", commit_rows)
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
    assert held.commits == [1, n - 1]  # file 1 alone, the rest together
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
    assert held.commits == [1, n - 1, *([1] * (n - 1))]
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


def _zero_media_data(path: Path) -> None:
    """Overwrite the MP4's ``mdat`` payload with zeros: its headers still read (codec,
    size, the creation time), but no frame decodes (power lost while writing)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 : at - 4 + size] = bytes(size - 8)
    path.write_bytes(bytes(data))


def test_a_video_whose_frames_do_not_decode_is_kept_flagged_with_its_header_facts(
    ctx: Context, tmp_path: Path, clock: FixedClock
) -> None:
    rec = make_recorder(tmp_path / "rec", extras=False, clips=2)
    register(ctx.ledger, clock, rec)
    damaged = rec.of_kind("video")[0]
    _zero_media_data(rec.path(damaged))

    result = run_ingest(ctx, rec.root)

    assert result.count("stored") == len(rec.recordings)
    with ctx.ledger.read() as s:
        row = s.scalars(select(Recording).where(Recording.source_path == damaged.relpath)).one()
        others = s.scalars(select(Recording).where(Recording.source_path != damaged.relpath))
        assert not any(o.probe_failed for o in others)
        alerts = s.scalar(select(func.count()).where(Alert.kind == "ingest.probe_failed"))
    assert row.probe_failed and "unreadable by PyAV" in (row.probe_error or "")
    assert "probe-failed" in row.flags and row.verified
    # what the headers said is kept: the codec, the size, the recording time
    assert (row.video_codec, row.width, row.height) == ("h264", 320, 240)
    assert row.time_source == "container"
    assert damaged.recorded_at is not None
    assert abs(row.recorded_start - damaged.recorded_at) < timedelta(seconds=1)
    assert alerts == 1
    assert (ctx.config.store.root / row.store_path).stat().st_size == row.size_bytes
