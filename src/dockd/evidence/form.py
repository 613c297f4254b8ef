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
    place: str | None  # 地点: from the case or `dockd tag --place`; blank to fill by hand
    flags: str  # what a reader must know: clock suspect, badge mismatch, damaged, ...
    bag_path: str


# The CSV columns (stable names for scripts) and their bilingual labels for print.
FORM_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("no", "序号", "No."),
    ("file_id", "文件编号", "File ID"),
    ("officer_badge", "警号", "Badge"),
    ("officer_name", "摄录人员", "Recorded by"),
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
    ("flags", "标记", "Flags"),
    ("bag_path", "包内路径", "Path in bag"),
)
# What the printed form leaves out to fit 20 recordings on an A4 page: the SHA-256 (in
# the bag's manifest and the CSV) and the path in the bag (the CSV has it).
PRINTED = tuple(c for c in FORM_COLUMNS if c[0] not in ("sha256", "bag_path"))
PER_PAGE = 20

# A file's flags, as the form names them (R13: what the dock doubted).
_FLAGS = (
    ("clock_suspect", "时间存疑 clock suspect"),
    ("badge_mismatch", "警号不符 badge mismatch"),
    ("probe_failed", "文件损坏 damaged"),
    ("device_conflict", "设备冲突 device conflict"),
    ("unregistered", "未登记设备 unregistered"),
)


def flags_of(row: Recording) -> str:
    """The flags a reader of the form must know, in Chinese and English."""
    out = [text for attr, text in _FLAGS if getattr(row, attr, False)]
    if row.time_source != "container":
        out.append(
            f"时间来自{'文件名' if row.time_source == 'filename' else '文件时间'} "
            f"time from {row.time_source}"
        )
    return "; ".join(out)


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
        "place": row.place,
        "flags": flags_of(row),
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
    """The printable recording form, labelled in Chinese and English: one A4 sheet per
    20 recordings, each with the export's header, the officer's signature and the
    unit's seal (004 管理办法 §12(二))."""
    e = html.escape
    head = " &nbsp; ".join(
        f"{e(zh)} <span class=en>{e(en)}</span>: {e(meta.get(key, ''))}"
        for key, zh, en in (
            ("unit", "单位", "Unit"),
            ("case", "案件编号", "Case"),
            ("by", "提取人", "Extracted by"),
            ("approved_by", "审批人", "Approved by"),
            ("time", "提取时间", "Time"),
            ("reason", "提取事由", "Reason"),
        )
    )
    trail = (
        f"导出编号 <span class=en>Export</span> {e(meta.get('export_id', ''))} &nbsp; "
        f"审计链头 <span class=en>Audit chain head</span> {e(meta.get('chain_head', ''))}"
    )
    th = "".join(f"<th>{e(zh)}<br><span class=en>{e(en)}</span></th>" for _, zh, en in PRINTED)
    signatures = "".join(
        f"<span class=sig>{e(zh)} <span class=en>{e(en)}</span>: ______________</span>"
        for zh, en in (
            ("摄录人员签名", "Recorded by (signature)"),
            ("制作人", "Made by"),
            ("审批人", "Approved by"),
            ("日期", "Date"),
        )
    )
    chunks = [rows[i : i + PER_PAGE] for i in range(0, len(rows), PER_PAGE)] or [rows]
    sheets = []
    for n, chunk in enumerate(chunks, start=1):
        body = "".join(
            "<tr>"
            + "".join(
                f"<td{' class=hash' if c == 'blake3' else ''}>{e(_shown(r, c))}</td>"
                for c, _, _ in PRINTED
            )
            + "</tr>"
            for r in chunk
        )
        sheets.append(
            f"""<section class=sheet>
<h1>摄录情况记录表 <span class=en>Recording form (body-worn recorder footage)</span>
<span class=page>{n} / {len(chunks)}</span></h1>
<p class=head>{head}</p>
<table>
<thead><tr>{th}</tr></thead>
<tbody>{body}</tbody>
</table>
<div class=foot><div class=sigs>{signatures}
<p class=note>原始文件逐字节复制，哈希值与台账核对一致。<span class=en>Originals copied byte for
byte; hashes checked against the ledger.</span> {trail}</p></div>
<div class=seal>单位盖章<br><span class=en>Unit seal</span></div></div>
</section>"""
        )
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>摄录情况记录表 Recording form {e(meta.get("case", ""))}</title>
<style>
@page {{ size: A4 landscape; margin: 8mm; }}
body {{ font-family: "Noto Sans CJK SC", "Source Han Sans SC", "SimSun", sans-serif;
       font-size: 6.5pt; margin: 0; }}
.sheet {{ page-break-after: always; break-after: page; }}
.sheet:last-child {{ page-break-after: auto; break-after: auto; }}
h1 {{ font-size: 11pt; margin: 0 0 2pt; text-align: center; }}
h1 .page {{ float: right; font-size: 8pt; font-weight: normal; }}
.head {{ margin: 0 0 3pt; }}
table {{ border-collapse: collapse; width: 100%; table-layout: auto; }}
th, td {{ border: 0.5pt solid #000; padding: 1pt 2pt; vertical-align: top; text-align: left;
          line-height: 1.15; }}
th {{ font-size: 6pt; }}
tr {{ page-break-inside: avoid; break-inside: avoid; }}
.en {{ font-size: 5.5pt; color: #333; }}
td.hash {{ font-family: monospace; font-size: 5pt; word-break: break-all; width: 28mm; }}
.foot {{ display: flex; justify-content: space-between; margin-top: 4pt; }}
.sig {{ display: inline-block; margin: 6pt 14pt 0 0; font-size: 7pt; }}
.note {{ margin: 4pt 0 0; }}
.seal {{ width: 28mm; height: 28mm; border: 0.5pt dashed #000; text-align: center;
         font-size: 7pt; }}
</style>
</head>
<body>
{"".join(sheets)}
</body>
</html>
"""
