"""Correcting recording times (`dockd recordings retime`) through the real CLI, on real clips.

The CLI asks the system clock, so the recorder is made with recordings 200 days before
the real now and docked a day later, as in test_holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock, SystemClock
from dockd.config import load_config
from dockd.context import Context
from dockd.errors import UsageError
from dockd.evidence.retime import parse_offset
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import open_ledger
from dockd.ledger.models import AuditEvent, Officer, Recording
from fixtures.make_recorder import LOCAL_TZ, Recorder, make_recorder
from tests.helpers.accounts import act_as, act_as_new
from tests.helpers.ledgers import register


@dataclass
class Station:
    config: Path
    ledger_url: str
    session_id: int
    ids: list[int]


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    start = (SystemClock().now() - timedelta(days=200)).astimezone(LOCAL_TZ).replace(microsecond=0)
    return make_recorder(
        tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False, start=start
    )


@pytest.fixture
def station(tmp_path: Path, card: Recorder) -> Iterator[Station]:
    cfg_path = tmp_path / "dockd.toml"
    cfg_path.write_text(
        '[station]\nid = "st-test"\ntimezone = "Asia/Shanghai"\n'
        f'[store]\nroot = "{tmp_path}/store"\n'
        f'[ledger]\nurl = "sqlite:///{tmp_path}/ledger.sqlite3"\n'
        "[logging]\nlevel = 'error'\n"
    )
    cfg = load_config(cfg_path)
    led = open_ledger(cfg.ledger.url)
    clock = FixedClock(SystemClock().now() - timedelta(days=199))  # docked a day late
    register(led, clock, card)
    result = run_ingest(
        Context(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts)), card.root
    )
    assert result.ok
    with led.session() as s:
        ids = list(s.scalars(select(Recording.id).order_by(Recording.id)))
    led.close()
    assert result.session_id is not None
    yield Station(cfg_path, cfg.ledger.url, result.session_id, ids)


def dockd(st: Station, *args: str) -> int:
    return main(["--config", str(st.config), *args])


def rows(st: Station) -> dict[int, Recording]:
    led = open_ledger(st.ledger_url)
    try:
        with led.read() as s:
            found = {r.id: r for r in s.scalars(select(Recording))}
            for r in found.values():
                s.expunge(r)
            return found
    finally:
        led.close()


def events(st: Station, action: str) -> list[AuditEvent]:
    led = open_ledger(st.ledger_url)
    try:
        with led.read() as s:
            found = list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))
            for e in found:
                s.expunge(e)
            return found
    finally:
        led.close()


def test_a_whole_session_retimed_is_audited_and_retention_follows(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = rows(station)
    act_as_new(monkeypatch, "custodian-li", Role.CUSTODIAN, config=station.config)
    # The recorder's clock ran 100 days behind: corrected, the footage is 100 days old,
    # inside the 180-day retention, so the sweep that would have trashed it keeps it.
    assert (
        dockd(
            station,
            "recordings",
            "retime",
            "--session",
            str(station.session_id),
            "--offset",
            "+100d",
            "--reason",
            "clock ran 100 days behind (checked against the dispatch log)",
        )
        == 0
    )
    after = rows(station)
    for fid in station.ids:
        assert after[fid].recorded_start - before[fid].recorded_start == timedelta(days=100)
        assert after[fid].time_source == "corrected"
        assert not after[fid].clock_suspect
        expires = after[fid].expires_at
        assert expires is not None
        assert expires > SystemClock().now()
    act_as(monkeypatch, None)  # the sweep: root, as the timer runs it
    assert dockd(station, "sweep", "retention") == 0
    assert {r.state for r in rows(station).values()} == {"stored"}

    trail = events(station, "file.retime")
    assert sorted(int(e.subject_id) for e in trail) == sorted(station.ids)
    for e in trail:
        fid, details = int(e.subject_id), json.loads(e.details)
        assert e.actor == "custodian-li"
        assert details["reason"].startswith("clock ran 100 days behind")
        assert details["offset_s"] == 100 * 86400
        old = datetime.fromisoformat(details["old"]["recorded_start"])
        assert old == before[fid].recorded_start
        new = datetime.fromisoformat(details["set"]["recorded_start"])
        assert new == after[fid].recorded_start
    assert dockd(station, "audit", "verify") == 0


def test_without_the_correction_the_same_footage_is_trashed(station: Station) -> None:
    """The control for the test above: the sweep does trash the uncorrected footage."""
    assert dockd(station, "sweep", "retention") == 0
    assert {r.state for r in rows(station).values()} == {"trashed"}


def test_one_file_set_to_a_time_and_a_device_window(
    station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = station.ids[:2]
    right = datetime(2026, 3, 1, 9, 30, tzinfo=LOCAL_TZ)
    assert (
        dockd(
            station,
            "recordings",
            "retime",
            str(first),
            "--to",
            right.isoformat(),
            "--reason",
            "time from the incident report",
        )
        == 0
    )
    assert rows(station)[first].recorded_start == right
    # --to names one file's time: refused for several, naming what to use instead.
    capsys.readouterr()
    code = dockd(
        station,
        "recordings",
        "retime",
        str(first),
        str(second),
        "--to",
        right.isoformat(),
        "--reason",
        "x",
    )
    assert code == UsageError.exit_code
    assert "use --offset" in capsys.readouterr().err
    # A reason is required.
    assert dockd(station, "recordings", "retime", str(second), "--offset", "+1h") == 64
    # The device's files recorded in a window: the second clip and whatever else the
    # recorder stamped within that minute move; the first file, set above, does not.
    before = rows(station)
    old_second = before[second].recorded_start
    window = (old_second - timedelta(minutes=1), old_second + timedelta(minutes=1))
    inside = {f for f, r in before.items() if window[0] <= r.recorded_start < window[1]}
    assert second in inside and first not in inside
    assert (
        dockd(
            station,
            "recordings",
            "retime",
            "--device",
            "DV-0001",
            "--from",
            window[0].isoformat(),
            "--until",
            window[1].isoformat(),
            "--offset",
            "-08:00",
            "--reason",
            "recorder set to UTC",
        )
        == 0
    )
    after = rows(station)
    for fid, row in after.items():
        moved = timedelta(hours=8) if fid in inside else timedelta(0)
        assert before[fid].recorded_start - row.recorded_start == moved
    assert len(events(station, "file.retime")) == 1 + len(inside)
    assert dockd(station, "audit", "verify") == 0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("+8h", 8 * 3600),
        ("-1d2h30m", -(86400 + 2 * 3600 + 1800)),
        ("+08:00", 8 * 3600),
        ("-00:05:30", -330),
        ("+90s", 90),
    ],
)
def test_offsets_read_as_people_write_them(text: str, seconds: int) -> None:
    assert parse_offset(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["8h", "+", "+8x", "+1h-2m", "+8:0", ""])
def test_an_offset_without_sign_or_unit_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="give a sign and an amount"):
        parse_offset(text)


def test_a_corrected_time_is_attributed_to_the_officer_then_and_a_trashed_file_is_named(
    station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    first = station.ids[0]
    start = rows(station)[first].recorded_start
    handover = (start + timedelta(hours=1)).astimezone(LOCAL_TZ).isoformat()
    assert dockd(station, "officers", "add", "777001", "--name", "Li Na") == 0
    assert (
        dockd(station, "assign", "DV-0001", "777001", "--from", handover, "--close-previous") == 0
    )
    assert rows(station)[first].officer_id != _officer_id(station, "777001")
    # Two hours later is after the hand-over: the file is the next officer's.
    assert (
        dockd(
            station,
            "recordings",
            "retime",
            str(first),
            "--offset",
            "+2h",
            "--reason",
            "recorder two hours behind",
        )
        == 0
    )
    assert rows(station)[first].officer_id == _officer_id(station, "777001")
    moved = [e for e in events(station, "file.officer") if int(e.subject_id) == first]
    assert json.loads(moved[-1].details)["reason"].startswith("recording time corrected")
    assert json.loads(moved[-1].details)["new"] == "777001"
    # --from/--until choose a device's files: alone they are refused.
    assert (
        dockd(
            station, "recordings", "retime", "--from", handover, "--offset", "+1h", "--reason", "x"
        )
        == UsageError.exit_code
    )
    # A file the sweep already trashed is corrected, and the command says how to get it back.
    assert dockd(station, "sweep", "retention") == 0
    trashed = next(f for f, r in rows(station).items() if r.state == "trashed")
    capsys.readouterr()
    assert (
        dockd(
            station,
            "recordings",
            "retime",
            str(trashed),
            "--offset",
            "+100d",
            "--reason",
            "clock ran 100 days behind",
        )
        == 0
    )
    err = capsys.readouterr().err
    assert f"file {trashed} is in the trash" in err
    assert f"dockd trash restore {trashed}" in err
    assert dockd(station, "audit", "verify") == 0


def _officer_id(st: Station, badge: str) -> int:
    led = open_ledger(st.ledger_url)
    try:
        with led.read() as s:
            found = s.scalar(select(Officer.id).where(Officer.badge == badge))
            assert found is not None
            return found
    finally:
        led.close()
