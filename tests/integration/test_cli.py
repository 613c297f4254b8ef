"""The command line as an admin and an auditor use it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from dockd.auth.roles import Role
from dockd.cli import main
from dockd.ledger.queries import FILE_FIELDS
from fixtures.make_recorder import Recorder
from tests.helpers.accounts import act_as, act_as_new


@pytest.fixture
def station(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    conf = tmp_path / "dockd.toml"
    conf.write_text(
        '[station]\nid = "st-cli"\nunit = "CLI Station"\n'
        '[store]\nroot = "store"\n[ledger]\nurl = "sqlite:///ledger.sqlite3"\n'
    )
    monkeypatch.setenv("DOCKD_CONFIG", str(conf))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_register_assign_ingest_and_query(
    station: Path,
    recorder: Recorder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    act_as_new(monkeypatch, "registrar", Role.DEVICE_MANAGER)
    assert (
        run(
            capsys,
            "devices",
            "add",
            "DV-0001",
            "--serial",
            recorder.serial,
            "--brand",
            "Hikvision",
            "--model",
            "DS-MH2311",
        )[0]
        == 0
    )
    assert run(capsys, "officers", "add", recorder.badge, "--name", "Zhang Wei")[0] == 0
    code, out, _ = run(capsys, "assign", "DV-0001", recorder.badge, "--from", "2026-01-01")
    assert code == 0 and f"-> badge {recorder.badge} from 2026-01-01 00:00 until open" in out
    code, out, _ = run(capsys, "devices", "list", "--format", "json")
    devices = json.loads(out)
    assert devices[0]["number"] == "DV-0001" and devices[0]["unit"] == "CLI Station"

    code, out, err = run(capsys, "ingest", str(recorder.root))
    assert code == 0, err
    assert "outcome complete: 8 stored" in out
    assert "FLAGGED" in out  # the truncated and the empty file are named in the summary

    act_as(monkeypatch, None)  # the ledger's queries: root (an admin)
    code, out, _ = run(capsys, "ledger", "query", "--device", "DV-0001", "--format", "json")
    files = json.loads(out)
    assert len(files) == len(recorder.recordings)
    assert list(files[0]) == list(FILE_FIELDS)
    first = next(f for f in files if f["source_path"].endswith("_0001.MP4"))
    assert first["recorded_at"] == "2026-03-15T06:30:00+08:00"
    assert first["officer"] == recorder.badge and first["device"] == "DV-0001"
    assert first["store_path"].startswith("2026/03/15/DV-0001/")
    assert (station / "store" / first["store_path"]).is_file()

    code, out, _ = run(
        capsys,
        "ledger",
        "query",
        "--officer",
        recorder.badge,
        "--from",
        "2026-03-15",
        "--to",
        "2026-03-15",
        "--format",
        "csv",
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    # everything but the empty file (dated by its mtime, today) was recorded that day
    assert len(rows) == len(recorder.recordings) - 1
    code, out, _ = run(capsys, "ledger", "query", "--from", "2026-03-16", "--format", "json")
    assert [f["source_path"] for f in json.loads(out)] == ["DCIM/100MEDIA/EMPTY_0000.MP4"]

    code, out, _ = run(capsys, "ledger", "sessions", "--format", "json")
    assert json.loads(out)[0]["outcome"] == "complete"
    code, out, _ = run(capsys, "alerts", "list", "--format", "json")
    alerts = json.loads(out)
    assert {a["kind"] for a in alerts} == {"ingest.probe_failed"}
    act_as_new(monkeypatch, "sgt", Role.CUSTODIAN)
    code, out, _ = run(capsys, "alerts", "ack", str(alerts[0]["id"]))
    assert code == 0 and "as sgt" in out


def test_ingest_exit_status_is_nonzero_when_a_file_failed(
    station: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "devices", "add", "DV-0001", "--serial", recorder.serial)
    unreadable = recorder.root / "DCIM" / "100MEDIA" / "LOCKED.MP4"
    unreadable.write_bytes(b"\0" * 100)
    unreadable.chmod(0)
    import os

    if os.geteuid() == 0:
        # root reads anything; a FIFO is refused instead, which also makes the run partial
        unreadable.unlink()
        os.mkfifo(unreadable)
    code, out, _ = run(capsys, "ingest", str(recorder.root))
    assert code == 1
    assert "outcome partial" in out and "LOCKED.MP4" in out


def test_unknown_device_number_is_a_clear_error(
    station: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ingest", str(recorder.root), "--device", "DV-9999")
    assert code == 66 and "no device numbered 'DV-9999'" in err and "dockd devices add" in err
    code, _, err = run(capsys, "ingest", str(station / "nowhere"))
    assert code != 0 and "nowhere" in err


def test_bad_dates_are_refused_with_an_example(
    station: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ledger", "migrate")[0] == 0
    code, _, err = run(capsys, "ledger", "query", "--from", "15/03/2026")
    assert code == 64 and "2026-03-15" in err
