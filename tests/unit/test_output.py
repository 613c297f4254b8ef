"""Station time, sizes and CSV as people read them (dockd.reports.output)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dockd.reports.output import (
    Encoding,
    cell,
    csv_bytes,
    header_row,
    local_iso,
    local_text,
    localize_times,
    mb,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def test_station_time_from_aware_and_naive_utc() -> None:
    aware = datetime(2026, 3, 14, 22, 30, 5, tzinfo=UTC)
    naive = datetime(2026, 3, 14, 22, 30, 5)  # as SQLite gives it back: UTC
    assert local_text(aware, SHANGHAI) == "2026-03-15 06:30"
    assert local_text(naive, SHANGHAI) == "2026-03-15 06:30"
    assert local_text(naive, SHANGHAI, seconds=True) == "2026-03-15 06:30:05"


def test_station_time_follows_daylight_saving() -> None:
    winter = datetime(2026, 3, 15, 5, 30, tzinfo=UTC)
    summer = datetime(2026, 7, 15, 4, 30, tzinfo=UTC)
    assert local_text(winter, BERLIN) == "2026-03-15 06:30"
    assert local_text(summer, BERLIN) == "2026-07-15 06:30"


def test_json_times_carry_the_station_offset() -> None:
    at = datetime(2026, 3, 14, 22, 30, tzinfo=UTC)
    assert local_iso(at, SHANGHAI) == "2026-03-15T06:30:00+08:00"


def test_cells_show_iso_text_in_station_time_and_leave_other_text() -> None:
    assert cell("2026-03-14T22:30:00+00:00", SHANGHAI) == "2026-03-15 06:30:00"
    assert cell("2026-03-15", SHANGHAI) == "2026-03-15"
    assert cell("CAM-0042 at 2026-03-14T22:30:00+00:00", SHANGHAI).startswith("CAM-0042")
    assert cell(None, SHANGHAI) == ""
    assert cell(["a", "b"], SHANGHAI) == "a,b"
    assert cell(1.500, SHANGHAI) == "1.5"


def test_sizes_in_megabytes() -> None:
    assert mb(12_345_678) == "12.3 MB"
    assert mb(4_200_000_000) == "4,200.0 MB"
    assert mb(None) == ""


ROWS = [
    {"officer": "张伟", "case": "A-1", "recorded_at": datetime(2026, 3, 14, 22, 30, tzinfo=UTC)}
]
COLUMNS = ["officer", "case", "recorded_at"]


def test_csv_opens_in_excel_as_utf8() -> None:
    data = csv_bytes(ROWS, COLUMNS, tz=SHANGHAI)
    assert data.startswith(b"\xef\xbb\xbf")  # the byte order mark Excel looks for
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows == [COLUMNS, ["张伟", "A-1", "2026-03-15 06:30:00"]]


def test_csv_in_gb18030_round_trips_chinese_names() -> None:
    data = csv_bytes(ROWS, COLUMNS, tz=SHANGHAI, encoding=Encoding.gb18030)
    assert not data.startswith(b"\xef\xbb\xbf")
    assert "张伟".encode("gb18030") in data
    rows = list(csv.reader(io.StringIO(data.decode("gb18030"))))
    assert rows[1][0] == "张伟"


def test_chinese_headers_when_the_station_speaks_chinese() -> None:
    zh = header_row(COLUMNS, "zh")
    assert zh == ["执法人员", "案件编号", "录制开始时间"]
    assert header_row(COLUMNS, "en") == COLUMNS
    data = csv_bytes(ROWS, COLUMNS, tz=SHANGHAI, headers=zh)
    assert data.decode("utf-8-sig").splitlines()[0] == "执法人员,案件编号,录制开始时间"


def test_times_inside_text_are_rewritten_in_station_time() -> None:
    text = "no heartbeat since 2026-03-14T22:30:05.123+00:00; kept until 2026-04-01"
    assert localize_times(text, SHANGHAI) == (
        "no heartbeat since 2026-03-15 06:30:05; kept until 2026-04-01"
    )
    # without a zone: the wall-clock time of the offset the text carries
    assert (
        localize_times("period: 2026-03-09T00:00:00+08:00 to x") == "period: 2026-03-09 00:00 to x"
    )
