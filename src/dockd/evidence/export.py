"""Evidence export (R10, R11): a BagIt bag (RFC 8493) of originals, byte for byte.

``dockd export --case C --to DIR`` (or file ids) writes::

    DIR/
      bagit.txt                 BagIt-Version 1.0, UTF-8
      bag-info.txt              unit, extractor, approver, reason, time, case, chain head
      manifest-sha256.txt       payload manifests (RFC 8493)
      manifest-sha512.txt
      blake3sums.txt            the ledger's BLAKE3 of each file (``b3sum -c`` format)
      recording-form.csv        摄录情况记录表: the recording form filled from the ledger
      recording-form.html       the same form, printable, labelled in Chinese and English
      tagmanifest-sha256.txt    hashes of the tag files above
      tagmanifest-sha512.txt
      data/<YYYY>/<MM>/<DD>/... the originals, at their store paths

Each original is read once, hashed with BLAKE3, SHA-256 and SHA-512 while it is
copied, and its BLAKE3 and size are checked against the ledger: a mismatch aborts
the whole export with an error naming the file and a critical alert. The bag is
built in a hidden sibling directory and renamed into place in the transaction
that registers the export, so ``DIR`` is either a complete bag recorded in the
audit trail or absent. Written by dockd itself; bagit-python validates it in
the tests.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import html
import io
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import blake3
from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd import __version__
from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config
from dockd.errors import DockdError, NotFound, UsageError
from dockd.evidence.access import Access, check, files_by_id, register
from dockd.evidence.bycase import original_path
from dockd.ledger.db import Ledger
from dockd.ledger.models import AuditEvent, Device, Officer, Recording

BUFFER = 1 << 20
BLAKE3_TAG_FILE = "blake3sums.txt"
FORM_CSV = "recording-form.csv"
FORM_HTML = "recording-form.html"
ALGORITHMS = ("sha256", "sha512")


class ExportError(DockdError):
    """An original did not match the ledger (or vanished): nothing was exported."""

    exit_code = 65  # EX_DATAERR


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
    ("size_bytes", "大小(字节)", "Size (bytes)"),
    ("blake3", "BLAKE3 哈希值", "BLAKE3 hash"),
    ("sha256", "SHA-256 哈希值", "SHA-256 hash"),
    ("case_number", "案件编号", "Case number"),
    ("case_cause", "案由", "Case cause"),
    ("party", "当事人", "Party"),
    ("place", "地点", "Place"),
    ("bag_path", "包内路径", "Path in bag"),
)


@dataclass
class _Item:
    row_id: int
    src: Path
    rel: PurePosixPath  # inside data/
    size: int
    blake3: str
    info: dict[str, Any]
    sha256: str = ""
    sha512: str = ""


@dataclass(frozen=True)
class ExportResult:
    bag: Path
    export_id: str
    files: int
    bytes: int
    file_ids: tuple[int, ...]


# ----------------------------------------------------------------------------- select


def select_files(
    session: Session, *, file_ids: Sequence[int], case: str | None, station: str
) -> list[Recording]:
    """This station's stored files of a case, or the given ids; refuses removed files and
    files kept at another station (a shared PostgreSQL ledger)."""
    if bool(file_ids) == bool(case):
        raise UsageError("give either --case or file ids (not both, not neither)")
    if case:
        rows = list(
            session.scalars(
                select(Recording)
                .where(
                    Recording.case_number == case,
                    Recording.state == "stored",
                    Recording.station == station,
                )
                .order_by(Recording.recorded_start, Recording.id)
            )
        )
        if not rows:
            raise NotFound(
                f"no footage stored at station {station} is tagged with case {case!r}; "
                "see `dockd tag`"
            )
        return rows
    rows = files_by_id(session, file_ids)
    elsewhere = [f"{r.id} (at {r.station})" for r in rows if r.station != station]
    if elsewhere:
        raise UsageError(
            f"file(s) {', '.join(elsewhere)} are stored at another station; export them there"
        )
    removed = [r.id for r in rows if r.state != "stored"]
    if removed:
        raise UsageError(
            f"file(s) {', '.join(map(str, removed))} are trashed or purged; only stored "
            "originals can be exported"
        )
    return rows


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _fmt_format(row: Recording) -> str:
    ext = PurePosixPath(row.store_path).suffix.lstrip(".").upper() or row.kind
    codecs = "/".join(c for c in (row.video_codec, row.audio_codec) if c)
    return f"{ext} ({codecs})" if codecs else ext


def _describe(session: Session, row: Recording, config: Config) -> dict[str, Any]:
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
        "start": row.recorded_start.astimezone(tz).isoformat(timespec="seconds"),
        "end": end.astimezone(tz).isoformat(timespec="seconds") if end else "",
        "format": _fmt_format(row),
        "duration": _fmt_duration(row.duration_s),
        "case_number": row.case_number,
        "case_cause": row.case_cause,
        "party": row.party,
    }


# ----------------------------------------------------------------------------- copy


def _copy_hashing(src: Path, dst: Path) -> tuple[int, str, str, str]:
    """Copy once, hashing as we go; returns (size, blake3, sha256, sha512)."""
    b3 = blake3.blake3(max_threads=blake3.blake3.AUTO)
    s256, s512 = hashlib.sha256(), hashlib.sha512()
    size = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(BUFFER):
            b3.update(chunk)
            s256.update(chunk)
            s512.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    os.chmod(dst, 0o444)
    return size, b3.hexdigest(), s256.hexdigest(), s512.hexdigest()


def _hash_file(path: Path) -> dict[str, str]:
    hashers = {a: hashlib.new(a) for a in ALGORITHMS}
    with open(path, "rb") as fh:
        while chunk := fh.read(BUFFER):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _encode_path(path: str) -> str:
    """RFC 8493 §2.1.3: percent-encode %, CR and LF in manifest paths."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _one_line(value: str) -> str:
    return " ".join(value.split())


# ----------------------------------------------------------------------------- form


def form_csv(rows: Sequence[FormRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c for c, _, _ in FORM_COLUMNS])
    for r in rows:
        writer.writerow(
            ["" if getattr(r, c) is None else getattr(r, c) for c, _, _ in FORM_COLUMNS]
        )
    return buf.getvalue()


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
            f"<td{' class=hash' if c in ('blake3', 'sha256') else ''}>"
            f"{e(str(getattr(r, c)) if getattr(r, c) is not None else '')}</td>"
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


# ----------------------------------------------------------------------------- bag


def _chain_head(session: Session) -> str | None:
    return session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))


def _check_dest(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise UsageError(f"{dest} already exists and is not an empty directory; choose a new --to")


def export_bag(
    *,
    config: Config,
    ledger: Ledger,
    alerts: AlertSink,
    clock: Clock,
    dest: Path,
    access: Access,
    file_ids: Sequence[int] = (),
    case: str | None = None,
) -> ExportResult:
    """Write an evidence bag of the chosen files to ``dest``, registered as export events."""
    dest = dest.absolute()
    _check_dest(dest)
    with ledger.session() as s:
        rows = select_files(s, file_ids=file_ids, case=case, station=config.station.id)
        check(access, rows, what="exporting")
        items = []
        for row in rows:
            prefix = PurePosixPath("quarantine") if row.unregistered else PurePosixPath()
            items.append(
                _Item(
                    row_id=row.id,
                    src=original_path(config, row),
                    rel=prefix / row.store_path,
                    size=row.size_bytes,
                    blake3=row.blake3,
                    info=_describe(s, row, config),
                )
            )
        head = _chain_head(s)
    export_id = uuid.uuid4().hex
    now = clock.now()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.partial-{export_id[:8]}"
    work.mkdir(mode=0o750)
    try:
        for item in items:
            _copy_one(config, alerts, item, work, export_id)
        meta = {
            "unit": config.station.unit,
            "case": case or ", ".join(sorted({i.info["case_number"] or "" for i in items} - {""})),
            "by": access.by or "",
            "approved_by": access.approved_by or "",
            "time": now.astimezone(config.station.tz).isoformat(timespec="seconds"),
            "reason": access.reason or "",
            "export_id": export_id,
            "chain_head": head or "",
        }
        _write_bag(work, items, meta, config)
        result = ExportResult(
            bag=dest,
            export_id=export_id,
            files=len(items),
            bytes=sum(i.size for i in items),
            file_ids=tuple(i.row_id for i in items),
        )
        _register_and_publish(ledger, items, access, work, dest, now, export_id, case)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return result


def _copy_one(config: Config, alerts: AlertSink, item: _Item, work: Path, export_id: str) -> None:
    dst = work / "data" / item.rel
    try:
        size, b3, s256, s512 = _copy_hashing(item.src, dst)
    except FileNotFoundError:
        _mismatch(alerts, item, export_id, f"its original {item.src} is missing from the store")
    except OSError as exc:
        raise ExportError(
            f"cannot copy file {item.row_id} ({item.src}): {exc.strerror or exc}; nothing exported"
        ) from exc
    if b3 != item.blake3 or size != item.size:
        _mismatch(
            alerts,
            item,
            export_id,
            f"its original {item.src} has BLAKE3 {b3} ({size} bytes) but the ledger recorded "
            f"{item.blake3} ({item.size} bytes) at ingest: the stored original has changed",
        )
    item.sha256, item.sha512 = s256, s512


def _mismatch(alerts: AlertSink, item: _Item, export_id: str, what: str) -> None:
    alerts.raise_alert(
        "export.integrity",
        f"file:{item.row_id}",
        f"evidence export aborted: file {item.row_id} does not match the ledger: {what}. "
        "Do not use this file as evidence before it is investigated",
        severity="critical",
        details={"file_id": item.row_id, "export_id": export_id, "path": str(item.src)},
    )
    raise ExportError(
        f"file {item.row_id} does not match the ledger: {what}. The export was aborted and "
        "nothing was written; a critical alert was raised"
    )


def _write_bag(work: Path, items: Sequence[_Item], meta: dict[str, str], config: Config) -> None:
    def write(name: str, text: str) -> None:
        (work / name).write_text(text, encoding="utf-8", newline="\n")

    write("bagit.txt", "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    for alg in ALGORITHMS:
        lines = "".join(
            f"{getattr(i, alg)}  {_encode_path('data/' + i.rel.as_posix())}\n" for i in items
        )
        write(f"manifest-{alg}.txt", lines)
    write(
        BLAKE3_TAG_FILE,
        "".join(f"{i.blake3}  {_encode_path('data/' + i.rel.as_posix())}\n" for i in items),
    )
    form = [
        FormRow(
            no=n,
            file_id=i.row_id,
            size_bytes=i.size,
            blake3=i.blake3,
            sha256=i.sha256,
            place="",
            bag_path="data/" + i.rel.as_posix(),
            **i.info,
        )
        for n, i in enumerate(items, start=1)
    ]
    write(FORM_CSV, form_csv(form))
    write(FORM_HTML, form_html(form, meta))
    total = sum(i.size for i in items)
    info = [
        ("Source-Organization", meta["unit"]),
        ("Bagging-Date", meta["time"][:10]),
        ("Bag-Software-Agent", f"dockd {__version__}"),
        ("Payload-Oxum", f"{total}.{len(items)}"),
        ("External-Identifier", meta["case"] or meta["export_id"]),
        (
            "External-Description",
            f"Evidence export of {len(items)} body-worn recorder original(s)",
        ),
        ("Internal-Sender-Identifier", meta["export_id"]),
        ("Unit", meta["unit"]),
        ("Station", config.station.id),
        ("Case-Number", meta["case"]),
        ("Extracted-By", meta["by"]),
        ("Approved-By", meta["approved_by"]),
        ("Export-Reason", meta["reason"]),
        ("Export-Time", meta["time"]),
        ("Audit-Chain-Head", meta["chain_head"]),
    ]
    write("bag-info.txt", "".join(f"{k}: {_one_line(v)}\n" for k, v in info if v))
    tag_files = [
        "bagit.txt",
        "bag-info.txt",
        *(f"manifest-{a}.txt" for a in ALGORITHMS),
        BLAKE3_TAG_FILE,
        FORM_CSV,
        FORM_HTML,
    ]
    digests = {name: _hash_file(work / name) for name in tag_files}
    for alg in ALGORITHMS:
        write(
            f"tagmanifest-{alg}.txt",
            "".join(f"{digests[name][alg]}  {name}\n" for name in tag_files),
        )


def _register_and_publish(
    ledger: Ledger,
    items: Sequence[_Item],
    access: Access,
    work: Path,
    dest: Path,
    now: datetime,
    export_id: str,
    case: str | None,
) -> None:
    """Audit the export and move the bag into place in one step: both or neither."""
    renamed = False
    try:
        with ledger.session() as s:
            rows = files_by_id(s, [i.row_id for i in items])
            sums = {i.row_id: i.sha256 for i in items}
            for row in rows:
                register(
                    s,
                    [row],
                    access,
                    action="file.export",
                    at=now,
                    extra={
                        "export_id": export_id,
                        "bag": str(dest),
                        "sha256": sums[row.id],
                        "export_case": case,
                    },
                )
            _check_dest(dest)
            with contextlib.suppress(FileNotFoundError):
                dest.rmdir()  # an empty directory given as --to
            os.rename(work, dest)
            renamed = True
    except BaseException:
        if renamed:
            os.rename(dest, work)
        raise
