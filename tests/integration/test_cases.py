"""Case tagging (R4, R5): by hand with ``dockd tag``, and from the case system's CSV by
officer and time overlap, also for footage that arrives after the import."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.errors import NotFound, UsageError
from dockd.evidence import bycase, caseimport, cases
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.models import AuditEvent, Case, Recording
from fixtures.make_recorder import DEFAULT_START, LOCAL_TZ, Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register
from tests.helpers.station import write_config

# The default recorder: clip 1 06:30:00-06:30:02, photo 06:30:12, audio 06:30:22-23,
# clip 2 06:31:02-04, clip 3 06:32:04-06 (Asia/Shanghai, 2026-03-15).
CSV_HEADER = "case_number,officer_badge,start,end,cause,party\n"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=3, extras=False)


@pytest.fixture
def ingested(ctx: Context, clock: FixedClock, rec: Recorder) -> dict[str, int]:
    """Ingest the module's recorder; returns file id by recorder path."""
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    assert result.ok
    return {f.relpath: f.file_id for f in result.files if f.file_id is not None}


def ids_of(
    rec: Recorder, ingested: dict[str, int], kinds_and_seq: list[tuple[str, int]]
) -> set[int]:
    out = set()
    for kind, index in kinds_and_seq:
        out.add(ingested[rec.of_kind(kind)[index].relpath])
    return out


def tags(ctx: Context) -> dict[int, tuple[str | None, str | None, str | None]]:
    with ctx.ledger.session() as s:
        return {
            r.id: (r.case_number, r.case_cause, r.party)
            for r in s.scalars(select(Recording).order_by(Recording.id))
        }


def import_csv(ctx: Context, text: str) -> caseimport.ImportResult:
    rows = caseimport.parse_cases_csv(text, ctx.config.station.tz)
    with ctx.ledger.session() as s:
        return caseimport.import_cases(
            s, rows, at=ctx.clock.now(), actor="clerk", station="st-test", source="cases.csv"
        )


def verify_ok(ctx: Context) -> None:
    with ctx.ledger.session() as s:
        result = audit.verify(s)
    assert result.ok, result.problems


def test_csv_import_tags_footage_by_officer_and_time_overlap(
    ctx: Context, rec: Recorder, ingested: dict[str, int]
) -> None:
    text = (
        CSV_HEADER
        # 06:29 to 06:31:03 local: clip 1, photo, audio, and clip 2 (starts 06:31:02).
        + "A2026-001,012345,2026-03-15 06:29:00,2026-03-15 06:31:03,盗窃,李四\n"
        # Same time, another officer: tags none of 012345's footage.
        + "A2026-002,099999,2026-03-15 06:00,2026-03-15 07:00,fight,x\n"
    )
    result = import_csv(ctx, text)
    assert (result.created, result.updated) == (2, 0)
    assert result.unknown_badges == ["099999"]
    expected = ids_of(rec, ingested, [("video", 0), ("photo", 0), ("audio", 0), ("video", 1)])
    assert set(result.tags.tagged) == expected
    now = tags(ctx)
    for fid, labels in now.items():
        if fid in expected:
            assert labels == ("A2026-001", "盗窃", "李四")
        else:
            assert labels == (None, None, None), fid
    with ctx.ledger.session() as s:
        case_events = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.import"))
        assert sorted(e.subject_id for e in case_events) == ["A2026-001", "A2026-002"]
        tag_events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "file.tag")))
    assert {int(e.subject_id) for e in tag_events} == expected
    assert all(json.loads(e.details)["source"] == "case-import" for e in tag_events)
    verify_ok(ctx)

    # Importing the same export again changes nothing and writes no events.
    again = import_csv(ctx, text)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert again.tags.tagged == []
    with ctx.ledger.session() as s:
        assert len(
            list(s.scalars(select(AuditEvent).where(AuditEvent.action == "file.tag")))
        ) == len(expected)


def test_footage_ingested_after_the_import_is_tagged_on_arrival(
    ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    start = datetime(2026, 3, 15, 14, 0, tzinfo=LOCAL_TZ)
    import_csv(
        ctx,
        CSV_HEADER
        + "B-7,067890,2026-03-15 14:00,2026-03-15 14:01:30,traffic accident,王五\n"
        + "B-8,067890,2026-03-15 14:03,,open case,赵六\n",
    )
    with ctx.ledger.session() as s:
        assert s.scalar(select(Recording.id)) is None  # nothing to tag yet
    rec = make_recorder(
        tmp_path / "rec2",
        serial="ZFY2024000999",
        device_number="DV-0002",
        badge="067890",
        start=start,
        clips=4,
        extras=False,
    )
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    by_path = {f.relpath: f.file_id for f in result.files if f.file_id is not None}
    videos = [by_path[v.relpath] for v in rec.of_kind("video")]
    photo, audio = (
        by_path[rec.of_kind("photo")[0].relpath],
        by_path[rec.of_kind("audio")[0].relpath],
    )
    now = tags(ctx)
    # Clips at 14:00, 14:01:02, 14:02:04, 14:03:06; photo 14:00:12, audio 14:00:22.
    assert now[videos[0]] == ("B-7", "traffic accident", "王五")
    assert now[videos[1]] == ("B-7", "traffic accident", "王五")
    assert now[photo][0] == now[audio][0] == "B-7"
    assert now[videos[2]] == (None, None, None)  # between the two cases
    assert now[videos[3]] == ("B-8", "open case", "赵六")  # open-ended case
    with ctx.ledger.session() as s:
        ev = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "file.tag", AuditEvent.subject_id == str(videos[0])
            )
        ).one()
    assert json.loads(ev.details)["source"] == "ingest"
    verify_ok(ctx)
    # ...and the per-case view of the day has the tagged originals (same inode, no copy)
    with ctx.ledger.read() as s:
        tagged = list(s.scalars(select(Recording).where(Recording.case_number == "B-7")))
    for row in tagged:
        link = (
            bycase.by_case_root(ctx.config)
            / "B-7"
            / "2026"
            / "03"
            / "15"
            / Path(row.store_path).name
        )
        assert link.stat().st_ino == (ctx.config.store.root / row.store_path).stat().st_ino


def test_automatic_tagging_never_overwrites_another_case(
    ctx: Context, rec: Recorder, ingested: dict[str, int]
) -> None:
    clip1 = ingested[rec.of_kind("video")[0].relpath]
    with ctx.ledger.session() as s:
        rows = cases.select_files(s, file_ids=[clip1])
        cases.tag_files(s, rows, cases.Tag(case_number="MANUAL-1"), at=ctx.clock.now(), actor="a")
    result = import_csv(ctx, CSV_HEADER + "C-1,012345,2026-03-15 06:00,2026-03-15 07:00,,\n")
    assert result.tags.conflicts == [(clip1, "MANUAL-1", "C-1")]
    assert tags(ctx)[clip1][0] == "MANUAL-1"
    verify_ok(ctx)


def test_bad_csv_lists_every_bad_line_and_imports_nothing(ctx: Context) -> None:
    text = (
        CSV_HEADER
        + "D-1,012345,2026-03-15 08:00,2026-03-15 07:00,,\n"  # ends before it starts
        + "D-2,,2026-03-15 08:00,,,\n"  # no badge
        + "D-3,012345,yesterday,,,\n"  # not a time
        + "D-4,012345,2026-03-15 08:00,,,\n"  # fine
    )
    with pytest.raises(UsageError) as err:
        caseimport.parse_cases_csv(text, ctx.config.station.tz)
    message = str(err.value)
    assert "line 2" in message and "line 3" in message and "line 4" in message
    assert "line 5" not in message
    with pytest.raises(UsageError, match="officer_badge"):
        caseimport.parse_cases_csv("case_number,start\nX,2026-03-15\n", ctx.config.station.tz)


def test_cli_import_of_a_gb18030_export_with_chinese_headers(
    ctx: Context,
    rec: Recorder,
    ingested: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv_file = tmp_path / "案件.csv"
    csv_file.write_bytes(
        "案件编号,警号,开始时间,结束时间,案由,当事人\n"
        "E-1,012345,2026-03-15T06:32:00+08:00,2026-03-15T06:33:00+08:00,纠纷,张三\n".encode(
            "gb18030"
        )
    )
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    act_as(monkeypatch, add_account(ctx.ledger, "clerk", Role.CUSTODIAN))
    assert main(["cases", "import", str(csv_file)]) == 0
    assert "1 file(s) tagged" in capsys.readouterr().out
    clip3 = ingested[rec.of_kind("video")[2].relpath]
    assert tags(ctx)[clip3] == ("E-1", "纠纷", "张三")
    assert main(["cases", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["case"], c["officer"], c["files"]) for c in listed] == [("E-1", "012345", 1)]
    with ctx.ledger.session() as s:
        case = s.scalars(select(Case)).one()
    assert case.starts_at == datetime(2026, 3, 14, 22, 32, tzinfo=UTC)


def test_tag_by_ids_device_window_and_officer_window(
    ctx: Context,
    rec: Recorder,
    ingested: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    videos = [ingested[v.relpath] for v in rec.of_kind("video")]
    photo = ingested[rec.of_kind("photo")[0].relpath]

    args = ["--case", "F-1", "--cause", "patrol", "--party", "n/a", "--category", "evidence"]
    act_as(monkeypatch, add_account(ctx.ledger, "sgt", Role.CUSTODIAN))
    assert main(["tag", str(videos[0]), str(photo), *args]) == 0
    assert tags(ctx)[videos[0]] == ("F-1", "patrol", "n/a")
    assert tags(ctx)[photo] == ("F-1", "patrol", "n/a")

    # Device over a window (local times): clip 2 only (06:31:02-06:31:04).
    window = ["--from", "2026-03-15T06:31:00", "--to", "2026-03-15T06:31:30"]
    assert main(["tag", "--device", rec.device_number, *window, "--case", "F-2"]) == 0
    assert tags(ctx)[videos[1]][0] == "F-2"
    assert tags(ctx)[videos[2]][0] is None

    # Officer over a window, setting the access class to restricted (R15).
    window = ["--from", "2026-03-15T06:32:00", "--to", "2026-03-15T06:33:00"]
    assert main(["tag", "--officer", rec.badge, *window, "--access", "restricted"]) == 0
    with ctx.ledger.session() as s:
        row = s.get_one(Recording, videos[2])
        assert (row.access_class, row.case_number) == ("restricted", None)
        assert s.get_one(Recording, videos[0]).category == "evidence"
    capsys.readouterr()

    # Refusals: nothing to set, no window, bad access class, unknown id, empty window.
    assert main(["tag", str(videos[0])]) == 64
    assert main(["tag", "--device", rec.device_number, "--case", "X"]) == 64
    assert main(["tag", str(videos[0]), "--access", "secret"]) == 64
    assert main(["tag", "424242", "--case", "X"]) == 66
    assert main(["tag", "--device", rec.device_number, "--from", "2020-01-01", "--to",
                 "2020-01-02", "--case", "X"]) == 66  # fmt: skip
    err = capsys.readouterr().err
    assert "nothing to set" in err and "424242" in err
    verify_ok(ctx)


def test_select_files_window_is_an_overlap(
    ctx: Context, rec: Recorder, ingested: dict[str, int]
) -> None:
    """A window that starts mid-clip still selects that clip."""
    clip1 = rec.of_kind("video")[0]
    assert clip1.recorded_at is not None
    inside = clip1.recorded_at + timedelta(seconds=1)
    with ctx.ledger.session() as s:
        rows = cases.select_files(
            s, device=rec.device_number, window_from=inside, window_to=inside + timedelta(seconds=5)
        )
        assert [r.id for r in rows] == [ingested[clip1.relpath]]
        with pytest.raises(NotFound):
            cases.select_files(s, file_ids=[999])
    assert DEFAULT_START.tzinfo is not None


def test_the_case_systems_place_goes_to_the_footage_for_the_form(
    ctx: Context, rec: Recorder, ingested: dict[str, int]
) -> None:
    """地点: a place column (English or Chinese header) is kept with the case and copied to
    the footage it tags, as cause and party are; the file.tag event shows it."""
    text = (
        "案件编号,警号,开始时间,结束时间,案由,当事人,地点\n"
        "A2026-001,012345,2026-03-15 06:29:00,2026-03-15 06:31:03,盗窃,李四,人民路口\n"
    )
    result = import_csv(ctx, text)
    assert result.created == 1
    tagged = set(result.tags.tagged)
    assert tagged
    with ctx.ledger.session() as s:
        places = {r.id: r.place for r in s.scalars(select(Recording))}
        [case] = s.scalars(select(Case)).all()
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "file.tag")).all()
    assert case.place == "人民路口"
    assert {places[i] for i in tagged} == {"人民路口"}
    assert all(p is None for i, p in places.items() if i not in tagged)
    assert all("place" in json.loads(e.details)["before"] for e in events)
    verify_ok(ctx)
