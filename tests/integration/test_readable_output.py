"""What a person reads from the CLI: station time, tables that fit 80 columns, CSV
that Excel opens (issue 14, "Readable output")."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog

from dockd.alerts import AlertSink
from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import SystemClock
from dockd.config.alerts import AlertsConfig
from dockd.ledger.db import open_ledger
from dockd.logs import setup_logging
from fixtures.make_recorder import Recorder
from tests.helpers.accounts import act_as, act_as_new

CASE = "A3201020500002026030012345"  # a long case number, as the case system gives them
NAME = "张伟"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _config(root: Path, language: str = "en") -> str:
    return (
        f'[station]\nid = "st-read"\nunit = "Readable Station"\nlanguage = "{language}"\n'
        '[store]\nroot = "store"\n[ledger]\nurl = "sqlite:///ledger.sqlite3"\n'
    )


@pytest.fixture
def station(
    tmp_path: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> Path:
    """A station with a recorder's footage stored, attributed to 张伟 and tagged with a case."""
    conf = tmp_path / "dockd.toml"
    conf.write_text(_config(tmp_path), encoding="utf-8")
    monkeypatch.setenv("DOCKD_CONFIG", str(conf))
    monkeypatch.setenv("COLUMNS", "80")
    act_as_new(monkeypatch, "registrar", Role.DEVICE_MANAGER)
    assert main(["devices", "add", "DV-0001", "--serial", recorder.serial]) == 0
    assert main(["officers", "add", recorder.badge, "--name", NAME]) == 0
    assert main(["assign", "DV-0001", recorder.badge, "--from", "2026-01-01"]) == 0
    act_as(monkeypatch, None)  # root: an admin
    assert main(["ingest", str(recorder.root)]) == 0
    act_as_new(monkeypatch, "custodian", Role.CUSTODIAN)
    window = ["--from", "2026-03-15", "--to", "2026-03-15"]
    assert main(["tag", "--device", "DV-0001", *window, "--case", CASE, "--cause", "盗窃"]) == 0
    act_as(monkeypatch, None)
    capsysbinary.readouterr()
    return tmp_path


def _out(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[bytes, str]:
    assert main(list(args)) == 0, args
    out, err = capsysbinary.readouterr()
    return out, err.decode()


def _columns(table: str) -> dict[str, str]:
    """Each column of a rich table, its body's fragments joined top to bottom without
    spaces: a value wrapped over several lines is whole again."""
    lines = [ln for ln in table.splitlines() if "│" in ln or "┃" in ln]
    head = [ln for ln in lines if "┃" in ln]
    body = [ln for ln in lines if "│" in ln]

    def cells(line: str, bar: str) -> list[str]:
        return [c.strip() for c in line.strip().strip(bar).split(bar)]

    names = ["".join(parts) for parts in zip(*(cells(h, "┃") for h in head), strict=True)]
    columns = zip(*(cells(b, "│") for b in body), strict=True)
    return {n: "".join(parts).replace(" ", "") for n, parts in zip(names, columns, strict=True)}


def test_ledger_query_fits_80_columns_in_station_time(
    station: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    out, err = _out(capsysbinary, "ledger", "query")
    table = out.decode()
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "…" not in table
    columns = _columns(table)
    files = json.loads(_out(capsysbinary, "ledger", "query", "--format", "json")[0])
    for f in files:  # the key fields whole, however they were wrapped
        assert f["store_path"].replace(" ", "") in columns["store_path"]
        assert f["officer"] in columns["officer"]
        assert f["case"] is None or f["case"] in columns["case"]
    assert sum(f["case"] == CASE for f in files) >= 5
    # station time (Asia/Shanghai by default), no offset: 06:30 local is 22:30 UTC
    first = next(f for f in files if f["source_path"].endswith("063000_0001.MP4"))
    assert first["recorded_at"] == "2026-03-15T06:30:00+08:00"  # JSON: ISO with the offset
    assert "2026-03-1506:30" in columns["recorded_at"]
    assert "+08:00" not in table and "+00:00" not in table
    assert "left out to fit 80 columns" in err and "--wide" in err


def test_wide_shows_every_column(station: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    table = _out(capsysbinary, "--wide", "ledger", "query")[0].decode()
    header = next(line for line in table.splitlines() if "┃" in line)
    for name in ("store_path", "officer", "case", "flags", "size", "duration_s"):
        assert name in header
    assert " MB " in table  # sizes for people


def test_alerts_fit_80_columns_with_the_whole_message(
    station: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    message = (
        "DV-0001 was docked with footage recorded at 2026-03-14T22:30:00+00:00, before its "
        "clock was last set: check the recorder's clock before relying on these times"
    )
    led = open_ledger(f"sqlite:///{station / 'ledger.sqlite3'}")
    try:
        AlertSink(led, "st-read", SystemClock(), AlertsConfig()).raise_alert(
            "ingest.clock_suspect", "DCIM/100MEDIA/ZFY2024000123_0001.MP4", message
        )
    finally:
        led.close()
    capsysbinary.readouterr()
    table = _out(capsysbinary, "alerts", "list")[0].decode()
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "…" not in table and "+00:00" not in table
    columns = _columns(table)
    # the time inside the message is station time too
    assert "2026-03-15 06:30".replace(" ", "") in columns["message"]
    assert "checktherecorder'sclockbeforerelyingonthesetimes" in columns["message"]
    assert "DCIM/100MEDIA/ZFY2024000123_0001.MP4" in columns["subject"]


def test_csv_opens_in_excel_with_chinese_names(
    station: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = _out(capsysbinary, "officers", "list", "--format", "csv")[0]
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads it as UTF-8
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [r["name"] for r in rows] == [NAME]

    data = _out(capsysbinary, "--encoding", "gb18030", "officers", "list", "--format", "csv")[0]
    assert NAME.encode("gb18030") in data and not data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("gb18030"))))
    assert [r["name"] for r in rows] == [NAME]

    data = _out(capsysbinary, "ledger", "query", "--format", "csv")[0]
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    first = next(r for r in rows if r["source_path"].endswith("063000_0001.MP4"))
    assert first["recorded_at"] == "2026-03-15 06:30:00"  # station time, no offset
    assert first["case_cause"] == "盗窃"


def test_chinese_headers_when_the_station_speaks_chinese(
    station: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (station / "dockd.toml").write_text(_config(station, "zh"), encoding="utf-8")
    data = _out(capsysbinary, "ledger", "query", "--format", "csv")[0]
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header[:5] == ["编号", "站点", "执法记录仪编号", "执法人员", "案件编号"]
    # JSON keeps the names scripts use
    files = json.loads(_out(capsysbinary, "ledger", "query", "--format", "json")[0])
    assert "officer" in files[0]


def test_logs_on_a_terminal_show_station_time() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    setup_logging("info", "auto", stream=stream, tz=SHANGHAI)
    try:
        structlog.get_logger().info("dock session ended", device="DV-0001")
    finally:
        setup_logging("info", "json", stream=io.StringIO())
    line = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())
    stamp = re.match(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ", line)
    assert stamp is not None, line
    logged = datetime.fromisoformat(stamp.group(0).strip()).replace(tzinfo=SHANGHAI)
    assert abs(logged - datetime.now(UTC)) < timedelta(hours=1)  # not UTC: 8 hours off
