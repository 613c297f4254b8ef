"""Tables that fit the terminal (dockd.cli.table): wrapped, never cut, the least useful
columns left out first."""

from __future__ import annotations

from dockd.cli.table import layout, wrap

PATH = "2026/03/15/DV-0001/ZFY2024000123_012345_20260315063000_0001.MP4"


def test_wrap_breaks_where_a_person_would_and_keeps_every_character() -> None:
    lines = wrap(PATH, 20).splitlines()
    assert all(len(line) <= 20 for line in lines)
    assert "".join(lines) == PATH
    assert lines[0] == "2026/03/15/DV-0001/"
    assert wrap("2026-03-15 06:30", 10).splitlines() == ["2026-03-15", "06:30"]


def test_narrow_tables_leave_out_low_value_columns_first() -> None:
    columns = [
        "id",
        "device",
        "officer",
        "case",
        "recorded_at",
        "duration_s",
        "size_bytes",
        "store_path",
        "flags",
    ]
    row = [
        "12",
        "DV-0001",
        "012345",
        "A2026-001",
        "2026-03-15 06:30",
        "120.5",
        "12.3 MB",
        PATH,
        "clock-suspect,probe-failed",
    ]
    fit = layout(columns, columns, [row], 80)
    assert 3 * len(fit.columns) + 1 + sum(fit.widths) <= 80
    assert {"id", "device", "officer", "case", "store_path"} <= set(fit.columns)
    assert fit.hidden and set(fit.hidden) <= {"flags", "duration_s", "size_bytes"}
    wide = layout(columns, columns, [row], 80, wide=True)
    assert wide.columns == columns and not wide.hidden
