"""The recording form (摄录情况记录表) of an evidence export, filled from the ledger.

One line per exported original: officer, recorder, times, format, size and hashes,
case, cause and party, and where the file is in the bag. Written into the bag twice:
``recording-form.csv`` (stable English column names, for scripts; UTF-8 with a byte
order mark so Excel opens the Chinese names) and ``recording-form.html`` (printable,
labelled in Chinese and English, with the export's header and signature lines).
Times are station time as a person writes them (``2026-03-15 06:30:00``); the HTML
gives sizes in MB beside the exact byte count.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.config.station import local_text, mb
from dockd.ledger.models import Device, Officer, Recording

FORM_CSV = "recording-form.csv"
FORM_HTML = "recording-form.html"


@dataclass(frozen=True)
class FormRow:
    """One line of the recording form (摄录情况记录表), filled from the ledger."""

    no: int
    file_id: int
    officer_badge: str | None
    officer_name: str | None
    device_number: str
    brand_model: str
    start: str
    end: str
    format: str
    duration: str
    size_bytes: int
    blake3: str
    sha256: str
    case_number: str | None
    case_cause: str | None
    party: str | None
    place: str  # not in the ledger: left blank on the form, filled by hand
    bag_path: str


# The CSV columns (stable names for scripts) and their bilingual labels for print.
FORM_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("no", "序号", "No."),
    ("file_id", "文件编号", "File ID"),
    ("officer_badge", "警号", "Badge"),
    ("officer_name", "执法人员", "Officer"),
    ("device_number", "执法记录仪编号", "Device number"),
    ("brand_model", "品牌型号", "Brand and model"),
    ("start", "开始时间", "Start time"),
    ("end", "结束时间", "End time"),
    ("format", "格式", "Format"),
    ("duration", "时长", "Duration"),
    ("size_bytes", "大小", "Size"),
    ("blake3", "BLAKE3 哈希值", "BLAKE3 hash"),
    ("sha256", "SHA-256 哈希值", "SHA-256 hash"),
    ("case_number", "案件编号", "Case number"),
    ("case_cause", "案由", "Case cause"),
    ("party", "当事人", "Party"),
    ("place", "地点", "Place"),
    ("bag_path", "包内路径", "Path in bag"),
)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _fmt_format(row: Recording) -> str:
    ext = PurePosixPath(row.store_path).suffix.lstrip(".").upper() or row.kind
    codecs = "/".join(c for c in (row.video_codec, row.audio_codec) if c)
    return f"{ext} ({codecs})" if codecs else ext


def describe(session: Session, row: Recording, config: Config) -> dict[str, Any]:
    """The form columns the ledger fills for one file row."""
    tz = config.station.tz
    officer = session.get(Officer, row.officer_id) if row.officer_id is not None else None
    device = session.get(Device, row.device_id) if row.device_id is not None else None
    brand_model = " ".join(x for x in (device.brand, device.model) if x) if device else ""
    end = row.recorded_end
    return {
        "officer_badge": officer.badge if officer else row.badge_hint,
        "officer_name": officer.name if officer else None,
        "device_number": row.device_ref,
        "brand_model": brand_model,
        "start": local_text(row.recorded_start, tz, seconds=True),
        "end": local_text(end, tz, seconds=True) if end else "",
        "format": _fmt_format(row),
        "duration": _fmt_duration(row.duration_s),
        "case_number": row.case_number,
        "case_cause": row.case_cause,
        "party": row.party,
    }


def form_csv(rows: Sequence[FormRow]) -> str:
    """The form as CSV text, starting with the byte order mark (U+FEFF) that tells
    Excel the file is UTF-8 once it is written so."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c for c, _, _ in FORM_COLUMNS])
    for r in rows:
        writer.writerow(
            ["" if getattr(r, c) is None else getattr(r, c) for c, _, _ in FORM_COLUMNS]
        )
    return buf.getvalue()


def _shown(row: FormRow, column: str) -> str:
    value = getattr(row, column)
    if value is None:
        return ""
    if column == "size_bytes":
        return f"{mb(value)} ({value:,} bytes)"
    return str(value)


def form_html(rows: Sequence[FormRow], meta: dict[str, str]) -> str:
    """The printable recording form, labelled in Chinese and English."""
    e = html.escape
    head_rows = "".join(
        f"<tr><th>{e(zh)}<br><span class=en>{e(en)}</span></th><td>{e(meta.get(key, ''))}</td></tr>"
        for key, zh, en in (
            ("unit", "单位", "Unit"),
            ("case", "案件编号", "Case number"),
            ("by", "提取人", "Extracted by"),
            ("approved_by", "审批人", "Approved by"),
            ("time", "提取时间", "Time of extraction"),
            ("reason", "提取事由", "Reason"),
            ("export_id", "导出编号", "Export ID"),
            ("chain_head", "审计链头", "Audit chain head"),
        )
    )
    th = "".join(f"<th>{e(zh)}<br><span class=en>{e(en)}</span></th>" for _, zh, en in FORM_COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=hash' if c in ('blake3', 'sha256') else ''}>{e(_shown(r, c))}</td>"
            for c, _, _ in FORM_COLUMNS
        )
        + "</tr>"
        for r in rows
    )
    signatures = "".join(
        f"<div class=sig>{e(zh)} <span class=en>{e(en)}</span>: ____________________</div>"
        for zh, en in (
            ("制作人", "Made by"),
            ("提取人", "Extracted by"),
            ("审批人", "Approved by"),
            ("日期", "Date"),
        )
    )
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>摄录情况记录表 Recording form {e(meta.get("case", ""))}</title>
<style>
@page {{ size: A4 landscape; margin: 12mm; }}
body {{ font-family: "Noto Sans CJK SC", "Source Han Sans SC", "SimSun", sans-serif;
       font-size: 10pt; }}
h1 {{ text-align: center; font-size: 16pt; margin: 0 0 8pt; }}
h1 .en {{ display: block; font-size: 11pt; font-weight: normal; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 10pt; }}
th, td {{ border: 1px solid #000; padding: 2pt 4pt; vertical-align: top; text-align: left; }}
.en {{ font-size: 8pt; color: #333; }}
td.hash {{ font-family: monospace; font-size: 7pt; word-break: break-all; }}
table.meta {{ width: auto; }}
.sig {{ display: inline-block; margin: 16pt 24pt 0 0; }}
</style>
</head>
<body>
<h1>摄录情况记录表<span class=en>Recording form (body-worn recorder footage)</span></h1>
<table class=meta>{head_rows}</table>
<table>
<thead><tr>{th}</tr></thead>
<tbody>{body}</tbody>
</table>
<p>原始文件逐字节复制，哈希值与台账核对一致。<span class=en>Originals copied byte for byte;
hashes checked against the ledger.</span></p>
{signatures}
</body>
</html>
"""
