"""Evidence export (R11): a BagIt bag that an independent validator (bagit-python)
accepts, originals byte for byte, the recording form, and a hard stop on any
original that no longer matches the ledger."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import bagit
import blake3
import pytest
from sqlalchemy import select

from dockd.cli import main
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.errors import UsageError
from dockd.evidence import cases
from dockd.evidence.access import Access
from dockd.evidence.bycase import original_path
from dockd.evidence.export import ExportError, export_bag
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.models import Alert, AuditEvent, Recording
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register
from tests.helpers.station import write_config

OK = Access(by="Li Na", reason="court request 2026-17", approved_by="Chief Wang")


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=True)


@pytest.fixture
def case_ids(ctx: Context, clock: FixedClock, rec: Recorder) -> list[int]:
    """Ingest, then tag the two clips, the photo and the Chinese-named clip as case K-1."""
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    by_path = {f.relpath: f.file_id for f in result.files if f.file_id is not None}
    chosen = [r for r in rec.recordings if r.kind in ("video", "photo")]
    ids = [by_path[r.relpath] for r in chosen]
    with ctx.ledger.session() as s:
        rows = cases.select_files(s, file_ids=ids)
        tag = cases.Tag(
            case_number="K-1", cause="斗殴 <fight>", party="张三 & 李四", place="人民路口 Renmin Rd"
        )
        cases.tag_files(s, rows, tag, at=clock.now(), actor="clerk")
    return ids


def do_export(ctx: Context, dest: Path, **kw: object) -> Path:
    result = export_bag(
        config=ctx.config,
        ledger=ctx.ledger,
        alerts=ctx.alerts,
        clock=ctx.clock,
        dest=dest,
        access=kw.pop("access", OK),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return result.bag


def test_case_export_is_a_valid_bag_of_the_originals(
    ctx: Context, case_ids: list[int], tmp_path: Path
) -> None:
    bag_dir = do_export(ctx, tmp_path / "out" / "K-1", case="K-1")

    bag = bagit.Bag(str(bag_dir))
    bag.validate()  # raises BagValidationError on any problem
    assert set(bag.algorithms) >= {"sha256", "sha512"}
    for name in ("manifest-sha256.txt", "manifest-sha512.txt", "blake3sums.txt"):
        assert (bag_dir / name).is_file()

    with ctx.ledger.session() as s:
        rows = list(s.scalars(select(Recording).where(Recording.id.in_(case_ids))))
    assert len(bag.payload_entries()) == len(rows) == len(case_ids)
    b3_lines = (bag_dir / "blake3sums.txt").read_text(encoding="utf-8").splitlines()
    b3 = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in b3_lines}
    for row in rows:
        copy = bag_dir / "data" / row.store_path
        assert copy.read_bytes() == original_path(ctx.config, row).read_bytes()
        assert blake3.blake3(copy.read_bytes()).hexdigest() == row.blake3
        assert b3[f"data/{row.store_path}"] == row.blake3
        assert not os.access(copy, os.W_OK) or os.geteuid() == 0
        assert copy.stat().st_mode & 0o222 == 0

    info = bag.info
    assert info["Extracted-By"] == "Li Na"
    assert info["Approved-By"] == "Chief Wang"
    assert info["Export-Reason"] == "court request 2026-17"
    assert info["Source-Organization"] == "Test Station"
    assert info["Case-Number"] == "K-1"
    assert info["Export-Time"].startswith("2026-03-16T10:00:00+08:00")
    assert info["Payload-Oxum"] == f"{sum(r.size_bytes for r in rows)}.{len(rows)}"
    with ctx.ledger.session() as s:
        head = audit.head(s)
        exports = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "file.export")))
        assert audit.verify(s).ok
    assert {int(e.subject_id) for e in exports} == set(case_ids)
    details = json.loads(exports[0].details)
    assert details["by"] == "Li Na" and details["bag"] == str(bag_dir)
    assert info["Audit-Chain-Head"] != head.hash  # the head *before* the export events


def test_recording_form_is_filled_from_the_ledger(
    ctx: Context, case_ids: list[int], tmp_path: Path
) -> None:
    bag_dir = do_export(ctx, tmp_path / "bag", file_ids=case_ids[:2])
    bagit.Bag(str(bag_dir)).validate()
    raw = (bag_dir / "recording-form.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the byte order mark: Excel reads UTF-8
    with (bag_dir / "recording-form.csv").open(encoding="utf-8-sig", newline="") as fh:
        form = list(csv.DictReader(fh))
    assert [int(r["file_id"]) for r in form] == case_ids[:2]
    with ctx.ledger.session() as s:
        first = s.get_one(Recording, case_ids[0])
    line = form[0]
    assert line["officer_badge"] == "012345" and line["officer_name"] == "Zhang Wei"
    assert line["device_number"] == "DV-0001"
    assert line["brand_model"] == "Test BWC-1"
    assert line["start"] == "2026-03-15 06:30:00"  # station time, as written on a form
    assert line["end"] == "2026-03-15 06:30:02"
    assert line["format"] == "MP4 (h264/aac)"
    assert line["duration"] == "00:00:02"
    assert int(line["size_bytes"]) == first.size_bytes
    assert line["blake3"] == first.blake3
    assert line["case_number"] == "K-1" and line["party"] == "张三 & 李四"
    assert line["place"] == "人民路口 Renmin Rd"  # 地点, from the tag
    assert line["flags"] == ""  # nothing doubted about this clip

    page = (bag_dir / "recording-form.html").read_text(encoding="utf-8")
    assert "摄录情况记录表" in page and "Recording form" in page
    for label in ("摄录人员", "Recorded by", "执法记录仪编号", "地点", "标记", "时长"):
        assert label in page
    for box in ("摄录人员签名", "审批人", "单位盖章"):  # the officer signs, the unit seals
        assert box in page
    assert "斗殴 &lt;fight&gt;" in page and "<fight>" not in page  # escaped
    assert first.blake3 in page and "Chief Wang" in page
    assert f"{first.size_bytes:,} bytes" in page and " MB (" in page


def test_changed_original_aborts_the_export_with_an_alert(
    ctx: Context, case_ids: list[int], tmp_path: Path
) -> None:
    with ctx.ledger.session() as s:
        victim = s.get_one(Recording, case_ids[1])
    path = original_path(ctx.config, victim)
    path.chmod(0o640)
    with path.open("r+b") as fh:  # one flipped byte in the stored original
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    dest = tmp_path / "bag"
    with pytest.raises(ExportError, match=f"file {victim.id} does not match the ledger"):
        do_export(ctx, dest, case="K-1")
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bag")] == []
    with ctx.ledger.session() as s:
        alert = s.scalars(select(Alert).where(Alert.kind == "export.integrity")).one()
        assert alert.severity == "critical" and str(victim.id) in alert.subject
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "file.export")) is None


def test_tampered_bag_fails_the_independent_validator(
    ctx: Context, case_ids: list[int], tmp_path: Path
) -> None:
    bag_dir = do_export(ctx, tmp_path / "bag", file_ids=case_ids[:1])
    (payload,) = (p for p in (bag_dir / "data").rglob("*") if p.is_file())
    payload.chmod(0o644)
    payload.write_bytes(payload.read_bytes() + b"x")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(bag_dir)).validate()


def test_export_refusals(ctx: Context, case_ids: list[int], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="approved-by"):
        do_export(ctx, tmp_path / "a", case="K-1", access=Access("Li Na", "why", None))
    assert not (tmp_path / "a").exists()
    with ctx.ledger.session() as s:
        s.get_one(Recording, case_ids[0]).access_class = "restricted"
    with pytest.raises(UsageError, match="restricted"):
        do_export(ctx, tmp_path / "b", case="K-1")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(UsageError, match="not an empty directory"):
        do_export(ctx, tmp_path / "c", case="K-1")
    with ctx.ledger.session() as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "file.export")) is None
    ok = Access(OK.by, OK.reason, OK.approved_by, restricted_ok=True)
    bag_dir = do_export(ctx, tmp_path / "d", case="K-1", access=ok)
    bagit.Bag(str(bag_dir)).validate()


def test_cli_export_under_a_grant(
    ctx: Context,
    case_ids: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``dockd export --case NO --to DIR`` works for the requester once legal and the
    leader approved; the bag names who exported, who approved and the grant."""
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path, unit="Test Station 城关派出所")))
    li = add_account(ctx.ledger, "lina", "officer")
    legal, leader = (
        add_account(ctx.ledger, "wang", "legal"),
        add_account(ctx.ledger, "zhao", "leader"),
    )
    dest = tmp_path / "cli-bag"
    base = ["export", "--case", "K-1", "--to", str(dest)]
    act_as(monkeypatch, li)
    assert main(base) == 77  # no grant yet
    assert "sudo dockd access request --case K-1 --kind export" in capsys.readouterr().err
    assert not dest.exists()
    assert (
        main(["access", "request", "--case", "K-1", "--kind", "export", "--reason", "court"]) == 0
    )
    number = int(capsys.readouterr().out)
    for approver in (legal, leader):
        act_as(monkeypatch, approver)
        assert main(["access", "approve", str(number)]) == 0
    act_as(monkeypatch, li)
    capsys.readouterr()
    assert main(base) == 0
    out = capsys.readouterr().out
    assert f"exported {len(case_ids)} file(s)" in out and f"grant {number}" in out
    bag = bagit.Bag(str(dest))
    bag.validate()
    assert bag.info["Source-Organization"] == "Test Station 城关派出所"
    assert bag.info["Extracted-By"] == "lina"
    assert bag.info["Approved-By"] == "wang, zhao"
    assert bag.info["Export-Reason"] == "court"
    assert bag.info["Access-Grant"] == str(number)


class Watched:
    """What a person's progress bar is told during an export."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int | None, int | None]] = []
        self.steps: list[int] = []

    def begin(self, what: str, files: int | None, nbytes: int | None = None) -> None:
        self.phases.append((what, files, nbytes))

    def step(self, nbytes: int = 0) -> None:
        self.steps.append(nbytes)


def test_an_export_tells_its_progress_file_by_file(
    ctx: Context, case_ids: list[int], tmp_path: Path
) -> None:
    watched = Watched()
    bag_dir = do_export(ctx, tmp_path / "bag", case="K-1", progress=watched)
    sizes = [p.stat().st_size for p in (bag_dir / "data").rglob("*") if p.is_file()]
    assert watched.phases == [("export", len(case_ids), sum(sizes))]
    assert sorted(watched.steps) == sorted(sizes)
