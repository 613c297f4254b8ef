"""The quarterly hand-over to the archivist (R3; 004 管理办法 §11, §12(一)).

``dockd handover --quarter 2026Q4`` (and ``dockd run`` on ``[handover] schedule``, for
the quarter just ended) reads as::

    the quarter, in the station's time zone: [1 Oct, 1 Jan)
    -> its long-kept footage (policy.adapter.kept_files: [handover] categories, files
       with a case, held files) recorded in it, at this station
    -> one evidence bag of them (evidence.export, the same flow as an export: every
       original re-hashed against the ledger while copied, a mismatch aborts it all),
       with the recording form and handover-record.html: the hand-over record (移交
       清单) with counts, bytes and each file's BLAKE3, to be signed by who hands over
       and who receives, and sealed
    -> the bag validated as its receiver would (every hash re-read), then registered:
       one ``file.export`` event per file, and the ``handovers`` row, in one
       transaction with the bag's move into <[handover] root>/<quarter>

The archivist then checks what they were given and records the receipt
(``dockd handover receive ID``): the bag is validated again where it now is, its tag
files must be the ones made, and the receiver is the signed-in account, never the one
who made it. A quarter is handed over once; nothing is received twice.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import blake3
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config
from dockd.errors import NotFound, UsageError
from dockd.evidence import bag
from dockd.evidence.access import Access
from dockd.evidence.export import BLAKE3_TAG_FILE, ExportResult, Purpose, export_bag
from dockd.evidence.form import describe
from dockd.ledger import audit
from dockd.ledger.db import Ledger
from dockd.ledger.models import Account, Handover, HandoverFile, Recording
from dockd.policy import kept

RECORD_HTML = "handover-record.html"
TAG_MANIFEST = "tagmanifest-sha256.txt"
# The standing approval a scheduled hand-over is made under: the regulation itself.
POLICY = "[handover] policy (R3: 004 管理办法 §11, §12(一))"
_QUARTER = re.compile(r"^(\d{4})[Qq]([1-4])$")


@dataclass(frozen=True)
class Quarter:
    name: str  # 2026Q4
    start: datetime
    end: datetime  # exclusive


def quarter(text: str, config: Config) -> Quarter:
    """``2026Q4`` as a period in the station's time zone."""
    m = _QUARTER.match(text.strip())
    if m is None:
        raise UsageError(f"{text!r} is not a quarter; write it as 2026Q4")
    year, q = int(m.group(1)), int(m.group(2))
    tz = config.station.tz
    start = datetime.combine(date(year, 3 * q - 2, 1), time.min, tzinfo=tz)
    end_year, end_month = (year + 1, 1) if q == 4 else (year, 3 * q + 1)
    end = datetime.combine(date(end_year, end_month, 1), time.min, tzinfo=tz)
    return Quarter(f"{year}Q{q}", start, end)


def previous_quarter(now: datetime, config: Config) -> Quarter:
    """The last quarter that has ended by ``now`` (station time)."""
    local = now.astimezone(config.station.tz)
    q = (local.month - 1) // 3 + 1
    year, q = (local.year - 1, 4) if q == 1 else (local.year, q - 1)
    return quarter(f"{year}Q{q}", config)


def handover_root(config: Config) -> Path:
    return config.handover.root or config.store.root.parent / "handover"


def long_kept(session: Session, config: Config, period: Quarter) -> list[Recording]:
    """The quarter's footage that must be kept long-term, in recording order."""
    h = config.handover
    ids = kept.kept_files(
        session,
        station=config.station.id,
        categories=h.categories,
        case_category=config.retention.case_category,
        held=h.include_held,
        cases=h.include_cases,
        period=(period.start, period.end),
    )
    if not ids:
        return []
    rows = session.scalars(select(Recording).where(Recording.id.in_(sorted(ids))))
    return sorted(rows, key=lambda r: (r.recorded_start, r.id))


def _blake3_of(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


def make(
    *,
    config: Config,
    ledger: Ledger,
    alerts: AlertSink,
    clock: Clock,
    period: Quarter,
    actor: str,
    approved_by: str,
    dest: Path | None = None,
) -> Handover:
    """Make, validate and register the quarter's hand-over package (see the module)."""
    now = clock.now()
    if period.end > now:
        raise UsageError(
            f"{period.name} has not ended yet (it ends {period.end:%Y-%m-%d %H:%M}); hand "
            "over a quarter once it is over"
        )
    dest = (dest or handover_root(config) / period.name).absolute()
    with ledger.read() as s:
        done = _made(s, config.station.id, period.name)
        if done is not None:
            raise UsageError(
                f"{period.name} was handed over already: hand-over {done.id} at {done.path} "
                f"({done.files} file(s)); `dockd handover list` shows it"
            )
        rows = long_kept(s, config, period)
        if not rows:
            raise NotFound(
                f"{period.name} has no long-kept footage at station {config.station.id} "
                "([handover] categories, files with a case, held files): nothing to hand over"
            )
        maker = s.scalar(select(Account.name).where(Account.login == actor)) or actor
        record = record_html(s, config, period, rows, maker=f"{maker} ({actor})", at=now)
    made: list[Handover] = []

    def register(session: Session, result: ExportResult, work: Path) -> None:
        row = Handover(
            station=config.station.id,
            quarter=period.name,
            period_start=period.start,
            period_end=period.end,
            path=str(result.bag),
            export_id=result.export_id,
            files=result.files,
            bytes=result.bytes,
            sums_blake3=_blake3_of(work / BLAKE3_TAG_FILE),
            tagmanifest_blake3=_blake3_of(work / TAG_MANIFEST),
            made_at=now,
            made_by=actor,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError as exc:
            raise UsageError(f"{period.name} was handed over meanwhile by another run") from exc
        session.add_all(HandoverFile(handover_id=row.id, file_id=i) for i in result.file_ids)
        audit.record(
            session,
            at=now,
            station=config.station.id,
            actor=actor,
            action="handover.made",
            subject_type="handover",
            subject_id=period.name,
            details={
                "handover": row.id,
                "bag": row.path,
                "files": row.files,
                "bytes": row.bytes,
                "blake3sums": row.sums_blake3,
                "tagmanifest": row.tagmanifest_blake3,
                "approved_by": approved_by,
            },
        )
        made.append(row)

    export_bag(
        config=config,
        ledger=ledger,
        alerts=alerts,
        clock=clock,
        dest=dest,
        access=Access(
            by=actor,
            reason=f"quarterly hand-over of {period.name} to the archive",
            approved_by=approved_by,
            restricted_ok=True,  # the archive keeps restricted footage too, marked so
        ),
        file_ids=[r.id for r in rows],
        purpose=Purpose(
            identifier=f"handover-{config.station.id}-{period.name}",
            description=f"Quarterly hand-over {period.name}: {len(rows)} long-kept original(s)",
            tag_files={RECORD_HTML: record},
            validate=True,  # every payload and tag file re-read, as the archivist will
            record=register,
        ),
    )
    return made[0]


def scheduled(
    *, config: Config, ledger: Ledger, alerts: AlertSink, clock: Clock, actor: str
) -> Handover | None:
    """The scheduled check: hand over the quarter just ended unless it is done already
    or holds nothing to hand over (None then)."""
    period = previous_quarter(clock.now(), config)
    with ledger.read() as s:
        if _made(s, config.station.id, period.name) is not None:
            return None
        if not long_kept(s, config, period):
            return None
    return make(
        config=config,
        ledger=ledger,
        alerts=alerts,
        clock=clock,
        period=period,
        actor=actor,
        approved_by=POLICY,
    )


def _made(session: Session, station: str, name: str) -> Handover | None:
    return session.scalar(
        select(Handover).where(Handover.station == station, Handover.quarter == name)
    )


def receive(
    session: Session,
    config: Config,
    *,
    handover_id: int,
    actor: str,
    at: datetime,
    note: str | None,
    path: Path | None = None,
) -> Handover:
    """Record that ``actor`` received hand-over ``handover_id``, after checking the bag
    at ``path`` (default: where it was made) is complete, unaltered and the one made."""
    row = session.get(Handover, handover_id)
    if row is None or row.station != config.station.id:
        raise NotFound(f"no hand-over {handover_id} at this station; `dockd handover list`")
    if row.received_at is not None:
        raise UsageError(
            f"hand-over {handover_id} ({row.quarter}) was received by {row.received_by} on "
            f"{row.received_at.astimezone(config.station.tz):%Y-%m-%d %H:%M}"
        )
    if row.made_by == actor:
        raise UsageError(
            f"{actor} made hand-over {handover_id}: the receipt must come from the archivist "
            "who receives it, someone else"
        )
    where = (path or Path(row.path)).absolute()
    bag.validate(where)
    for name, expected in (
        (BLAKE3_TAG_FILE, row.sums_blake3),
        (TAG_MANIFEST, row.tagmanifest_blake3),
    ):
        if _blake3_of(where / name) != expected:
            raise UsageError(
                f"{where} is a valid bag but not the one handed over as {handover_id}: its "
                f"{name} differs from the one made on {row.made_at:%Y-%m-%d}; find the right one"
            )
    row.received_at, row.received_by, row.receipt_note = at, actor, note
    audit.record(
        session,
        at=at,
        station=config.station.id,
        actor=actor,
        action="handover.received",
        subject_type="handover",
        subject_id=row.quarter,
        details={"handover": row.id, "checked_at": str(where), "note": note},
    )
    return row


def list_handovers(session: Session, station: str) -> list[Handover]:
    return list(
        session.scalars(
            select(Handover).where(Handover.station == station).order_by(Handover.quarter)
        )
    )


def record_html(
    session: Session,
    config: Config,
    period: Quarter,
    rows: list[Recording],
    *,
    maker: str,
    at: datetime,
) -> str:
    """The hand-over record (移交清单), printable on A4, to be signed and sealed."""
    e = html.escape
    tz = config.station.tz
    total = sum(r.size_bytes for r in rows)
    lines = []
    for n, r in enumerate(rows, start=1):
        info = describe(session, r, config)
        who = " ".join(x for x in (info["officer_badge"], info["officer_name"]) if x)
        lines.append(
            f"<tr><td>{n}</td><td>{r.id}</td><td>{e(info['device_number'])}</td>"
            f"<td>{e(who)}</td><td>{r.recorded_start.astimezone(tz):%Y-%m-%d %H:%M}</td>"
            f"<td>{e(r.case_number or '')}</td><td>{r.size_bytes / 1e6:.1f}</td>"
            f"<td class=hash>{r.blake3}</td></tr>"
        )
    head = [
        ("单位", "Unit", config.station.unit),
        ("季度", "Quarter", f"{period.name} ({period.start:%Y-%m-%d} – {period.end:%Y-%m-%d})"),
        ("文件数", "Files", str(len(rows))),
        ("总大小 (MB)", "Total size (MB)", f"{total / 1e6:.1f}"),
        ("制作时间", "Made", f"{at.astimezone(tz):%Y-%m-%d %H:%M}"),
        ("移交人", "Handed over by", maker),
    ]
    head_rows = "".join(
        f"<tr><th>{e(zh)} <span class=en>{e(en)}</span></th><td>{e(v)}</td></tr>"
        for zh, en, v in head
    )
    sig = "".join(
        f"<div class=sig>{e(zh)} <span class=en>{e(en)}</span>: ____________________</div>"
        for zh, en in (
            ("移交人签名", "Handed over by (signature)"),
            ("接收人签名", "Received by (signature)"),
            ("日期", "Date"),
        )
    )
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>移交清单 Hand-over record {e(period.name)}</title>
<style>
@page {{ size: A4 portrait; margin: 12mm; }}
body {{ font-family: "Noto Sans CJK SC", "Source Han Sans SC", "SimSun", sans-serif;
       font-size: 10pt; }}
h1 {{ text-align: center; font-size: 16pt; }}
.en {{ font-size: 8pt; color: #333; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 10pt; }}
th, td {{ border: 1px solid #000; padding: 2pt 4pt; text-align: left; }}
td.hash {{ font-family: monospace; font-size: 7pt; word-break: break-all; }}
table.meta {{ width: auto; }}
.sig {{ display: inline-block; margin: 16pt 24pt 0 0; }}
.seal {{ display: inline-block; width: 40mm; height: 40mm; border: 1px dashed #000;
         text-align: center; vertical-align: top; margin-top: 12pt; }}
</style>
</head>
<body>
<h1>执法记录仪音视频资料移交清单<br>
<span class=en>Hand-over record of body-worn recorder footage</span></h1>
<table class=meta>{head_rows}</table>
<table>
<thead><tr><th>序号<br><span class=en>No.</span></th>
<th>文件编号<br><span class=en>File ID</span></th>
<th>记录仪<br><span class=en>Device</span></th><th>执法人员<br><span class=en>Officer</span></th>
<th>摄录时间<br><span class=en>Recorded</span></th><th>案件编号<br><span class=en>Case</span></th>
<th>大小 MB<br><span class=en>Size MB</span></th><th>BLAKE3</th></tr></thead>
<tbody>{"".join(lines)}</tbody>
</table>
{sig}
<div class=seal>单位盖章<br><span class=en>Unit seal</span></div>
</body>
</html>
"""
