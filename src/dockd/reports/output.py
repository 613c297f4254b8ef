"""What people read: station time, sizes in MB, CSV that spreadsheets open as written.

The ledger keeps UTC. A person reads station time (``2026-03-15 06:30``, no offset);
JSON keeps ISO 8601 with the station's offset (``2026-03-15T06:30:00+08:00``: the same
instant, and machines read the offset). CSV is for spreadsheets: UTF-8 with a byte
order mark by default, because Excel (the Chinese edition too) reads a CSV without
one in the ANSI code page and garbles every Chinese name; ``gb18030`` for tools that
want the national encoding; ``utf-8`` (no mark) for scripts. With ``[station]
language = "zh"`` the header row is in Chinese (:data:`HEADERS_ZH`); the default
``en`` keeps the column names scripts and the docs use.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from dockd.config.station import Language, as_utc, local_iso, local_text, localize_times, mb

__all__ = [
    "HEADERS_ZH",
    "Encoding",
    "as_utc",
    "cell",
    "csv_bytes",
    "csv_text",
    "header_row",
    "local_iso",
    "local_text",
    "localize_times",
    "mb",
    "parse_iso",
]


class Encoding(StrEnum):
    """How a CSV file is encoded (``--encoding``)."""

    utf8_bom = "utf-8-sig"  # the default: Excel opens it as UTF-8
    utf8 = "utf-8"  # no byte order mark, for scripts
    gb18030 = "gb18030"  # China's national encoding, for tools that expect it


#: Column name -> its Chinese header (``[station] language = "zh"``). A column not
#: here keeps its name.
HEADERS_ZH: dict[str, str] = {
    "id": "编号",
    "file_id": "文件编号",
    "station": "站点",
    "device": "执法记录仪编号",
    "device_brand": "品牌",
    "device_model": "型号",
    "officer": "执法人员",
    "officer_badge": "警号",
    "officer_name": "姓名",
    "badge": "警号",
    "name": "姓名",
    "case": "案件编号",
    "case_number": "案件编号",
    "case_cause": "案由",
    "cause": "案由",
    "party": "当事人",
    "category": "类别",
    "access_class": "访问级别",
    "kind": "种类",
    "recorded_at": "录制开始时间",
    "recorded_start": "录制开始时间",
    "recorded_end": "录制结束时间",
    "time_source": "时间来源",
    "duration_s": "时长(秒)",
    "duration": "时长",
    "container": "容器格式",
    "video_codec": "视频编码",
    "audio_codec": "音频编码",
    "width": "宽",
    "height": "高",
    "size_bytes": "大小(字节)",
    "size": "大小",
    "blake3": "BLAKE3 哈希值",
    "sha256": "SHA-256 哈希值",
    "store_path": "存储路径",
    "source_path": "原路径",
    "path": "路径",
    "file": "文件",
    "ingested_at": "入库时间",
    "session_id": "对接批次",
    "verified": "已校验",
    "flags": "标记",
    "clock_findings": "时钟问题",
    "state": "状态",
    "status": "状态",
    "outcome": "结果",
    "at": "时间",
    "when": "时间",
    "started_at": "开始时间",
    "ended_at": "结束时间",
    "created_at": "创建时间",
    "expires_at": "到期时间",
    "trashed_at": "删除时间",
    "purge_after": "彻底删除时间",
    "severity": "级别",
    "subject": "对象",
    "message": "内容",
    "occurrences": "次数",
    "last_at": "最近时间",
    "acknowledged_at": "确认时间",
    "acknowledged_by": "确认人",
    "reason": "原因",
    "actor": "操作人",
    "action": "操作",
    "login": "账号",
    "role": "角色",
    "roles": "角色",
    "count": "数量",
    "files": "文件数",
    "day": "日期",
    "hours_recorded": "录制时长(小时)",
    "first_recorded": "最早录制时间",
    "last_recorded": "最晚录制时间",
    "age_days": "已过天数",
    "note": "备注",
}

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)")


def parse_iso(value: str) -> datetime | None:
    """The time in ``value`` when it is exactly an ISO 8601 time with an offset (how
    rows carry times for JSON), else None: text that merely looks like one is left."""
    if not _ISO.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def cell(value: Any, tz: tzinfo, *, seconds: bool = True) -> str:
    """One value as text for a person: times (a datetime, or ISO text with an offset) in
    station time, lists joined with commas, floats without trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local_text(value, tz, seconds=seconds)
    if isinstance(value, str):
        at = parse_iso(value)
        return local_text(at, tz, seconds=seconds) if at is not None else value
    if isinstance(value, list | tuple):
        return ",".join(cell(v, tz, seconds=seconds) for v in value)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def header_row(columns: Iterable[str], language: Language | str = Language.en) -> list[str]:
    """The header row: the column names, or their Chinese names for ``zh``."""
    if Language(language) is Language.zh:
        return [HEADERS_ZH.get(c, c) for c in columns]
    return list(columns)


def csv_text(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    tz: tzinfo,
    headers: Sequence[str] | None = None,
    lineterminator: str = "\r\n",
) -> str:
    """The CSV text (no byte order mark) of ``rows``: ``headers`` (default: the column
    names) then one line per row; times in station time with seconds."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    writer.writerow(list(headers) if headers is not None else list(columns))
    for row in rows:
        writer.writerow([cell(row.get(c), tz) for c in columns])
    return buf.getvalue()


def csv_bytes(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    tz: tzinfo,
    encoding: Encoding | str = Encoding.utf8_bom,
    headers: Sequence[str] | None = None,
    lineterminator: str = "\r\n",
) -> bytes:
    """:func:`csv_text` encoded for the file or stdout: with a byte order mark by
    default (``utf-8-sig``). A character the encoding cannot hold (an undecodable
    file name's escape) is written as ``\\x..`` rather than failing the export."""
    text = csv_text(rows, columns, tz=tz, headers=headers, lineterminator=lineterminator)
    return text.encode(Encoding(encoding).value, "backslashreplace")
