"""The weekly summary (R3 "weekly consolidation"): one page for the unit's supervisor.

For the seven days ``[start, end)``: what was ingested and how much of it late
(``[reports] late_ingest_hours`` after the recording ended, R2), what was trashed,
purged and restored, which holds were placed and released and how many are
active, what was archived, the fixity problems standing, and the alerts raised.
Read from the ledger alone. The scheduled run records it as a ``weekly_report``
sweep run and, if ``[schedule] weekly_report_dir`` is set, writes it there.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.context import Context
from dockd.ledger.models import Alert, ArchiveCopy, AuditEvent, FileState, Hold, Recording
from dockd.reports.base import dialect_of
from dockd.reports.footage import late_sql
from dockd.reports.output import localize_times
from dockd.sweeps.fixity import FixityStatus
from dockd.sweeps.runs import sweep_run

WEEK = timedelta(days=7)
LATE_LISTED = 50


@dataclass
class WeeklySummary:
    station: str
    start: str
    end: str
    ingested_files: int = 0
    ingested_bytes: int = 0
    late_files: int = 0
    late: list[dict[str, Any]] = field(default_factory=list)  # the latest LATE_LISTED
    trashed: int = 0
    purged: int = 0
    restored: int = 0
    holds_placed: int = 0
    holds_released: int = 0
    holds_active: int = 0
    archived: int = 0
    archived_by_target: dict[str, int] = field(default_factory=dict)
    fixity_problems: dict[str, int] = field(default_factory=dict)
    alerts_raised: int = 0
    alerts_by_kind: dict[str, int] = field(default_factory=dict)
    alerts_open: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        lines = [
            f"dockd weekly summary, station {self.station}",
            f"period: {self.start} to {self.end}",
            "",
            f"ingested:  {self.ingested_files} file(s), {self.ingested_bytes / 1e9:.2f} GB",
            f"late:      {self.late_files} file(s) ingested later than the limit",
            f"deleted:   {self.trashed} trashed, {self.purged} purged, "
            f"{self.restored} restored from the trash",
            f"held:      {self.holds_placed} hold(s) placed, {self.holds_released} released, "
            f"{self.holds_active} active",
            f"archived:  {self.archived} verified cop(ies)"
            + (
                " ("
                + ", ".join(f"{t}: {n}" for t, n in sorted(self.archived_by_target.items()))
                + ")"
                if self.archived_by_target
                else ""
            ),
            "fixity:    "
            + (
                ", ".join(f"{n} {k}" for k, n in sorted(self.fixity_problems.items()))
                or "no problem standing"
            ),
            f"alerts:    {self.alerts_raised} raised, {self.alerts_open} open in all",
        ]
        lines += [f"           {n:5d} {k}" for k, n in sorted(self.alerts_by_kind.items())]
        if self.late:
            lines += ["", "late files (latest first):"]
            lines += [
                f"  #{d['id']} {d['device']} recorded {d['recorded_end']} "
                f"ingested {d['ingested_at']} ({d['hours_late']:.1f} h)"
                for d in self.late
            ]
        # Read by a person: the times in the station's wall-clock time, no offset.
        return localize_times("\n".join(lines) + "\n")


def week_ending(config: Config, now: datetime) -> tuple[datetime, datetime]:
    """The seven whole local days before today: [midnight 7 days ago, last midnight)."""
    tz = config.station.tz
    end = datetime.combine(now.astimezone(tz).date(), time.min, tzinfo=tz)
    return end - WEEK, end


def weekly_summary(
    session: Session, config: Config, *, start: datetime, end: datetime
) -> WeeklySummary:
    tz = config.station.tz
    station = config.station.id
    s = session
    out = WeeklySummary(station, start.astimezone(tz).isoformat(), end.astimezone(tz).isoformat())
    in_station = Recording.station == station

    # Counted and picked by the database: the week's ingests by the indexed ingest time.
    ingested = (in_station, Recording.ingested_at >= start, Recording.ingested_at < end)
    late = late_sql(config, dialect_of(s))
    files, size, n_late = s.execute(
        select(
            func.count(Recording.id),
            func.sum(Recording.size_bytes),
            func.sum(case((late, 1), else_=0)),
        ).where(*ingested)
    ).one()
    out.ingested_files, out.ingested_bytes, out.late_files = (
        int(files),
        int(size or 0),
        int(n_late or 0),
    )
    for row in s.execute(
        select(
            Recording.id,
            Recording.device_ref,
            func.coalesce(Recording.recorded_end, Recording.recorded_start).label("ended"),
            Recording.ingested_at,
        )
        .where(*ingested, late)
        .order_by(Recording.ingested_at.desc(), Recording.id.desc())
        .limit(LATE_LISTED)
    ):
        out.late.append(
            {
                "id": row.id,
                "device": row.device_ref,
                "recorded_end": row.ended.astimezone(tz).isoformat(timespec="seconds"),
                "ingested_at": row.ingested_at.astimezone(tz).isoformat(timespec="seconds"),
                "hours_late": round((row.ingested_at - row.ended).total_seconds() / 3600, 1),
            }
        )

    def count(q: Any) -> int:
        return int(s.scalar(q) or 0)

    def events(action: str) -> int:
        return count(
            select(func.count(AuditEvent.id)).where(
                AuditEvent.action == action,
                AuditEvent.station == station,
                AuditEvent.at >= start,
                AuditEvent.at < end,
            )
        )

    n = func.count(Recording.id)
    out.trashed = events("file.trash")
    out.purged = events("file.purge")
    out.restored = events("file.restore")
    out.holds_placed = count(
        select(func.count(Hold.id)).where(Hold.placed_at >= start, Hold.placed_at < end)
    )
    out.holds_released = count(
        select(func.count(Hold.id)).where(Hold.released_at >= start, Hold.released_at < end)
    )
    out.holds_active = count(
        select(func.count(Hold.id)).where(
            Hold.placed_at < end, (Hold.released_at.is_(None)) | (Hold.released_at >= end)
        )
    )
    out.archived_by_target = {
        t: int(c)
        for t, c in s.execute(
            select(ArchiveCopy.target, func.count(ArchiveCopy.id))
            .join(Recording, Recording.id == ArchiveCopy.file_id)
            .where(in_station, ArchiveCopy.copied_at >= start, ArchiveCopy.copied_at < end)
            .group_by(ArchiveCopy.target)
        )
    }
    out.archived = sum(out.archived_by_target.values())
    out.fixity_problems = {
        str(st): int(c)
        for st, c in s.execute(
            select(Recording.fixity_status, n)
            .where(
                in_station,
                Recording.state == FileState.STORED,
                Recording.fixity_status.in_((FixityStatus.MISSING, FixityStatus.MODIFIED)),
            )
            .group_by(Recording.fixity_status)
        )
    }
    out.alerts_by_kind = {
        k: int(c)
        for k, c in s.execute(
            select(Alert.kind, func.count(Alert.id))
            .where(Alert.station == station, Alert.at >= start, Alert.at < end)
            .group_by(Alert.kind)
        )
    }
    out.alerts_raised = sum(out.alerts_by_kind.values())
    out.alerts_open = count(
        select(func.count(Alert.id)).where(
            Alert.station == station, Alert.acknowledged_at.is_(None)
        )
    )
    return out


def run_weekly_report(ctx: Context, *, dry_run: bool = False) -> WeeklySummary:
    """The scheduled weekly report: recorded as a sweep run, written to the report dir."""
    start, end = week_ending(ctx.config, ctx.clock.now())
    with sweep_run(ctx, "weekly_report", dry_run=dry_run) as run:
        with ctx.ledger.read() as s:
            summary = weekly_summary(s, ctx.config, start=start, end=end)
        run.summary = summary.as_dict()
        folder = ctx.config.schedule.weekly_report_dir
        if folder is not None and not dry_run:
            write_report(folder, summary, end.astimezone(ctx.config.station.tz))
    return summary


def write_report(folder: Path, summary: WeeklySummary, end: datetime) -> Path:
    """weekly-YYYY-MM-DD.json and .txt (the day the week ended) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"weekly-{(end - timedelta(days=1)).date().isoformat()}"
    for suffix, body in (
        (".json", json.dumps(summary.as_dict(), ensure_ascii=False, indent=2) + "\n"),
        (".txt", summary.text()),
    ):
        path = stem.with_suffix(suffix)
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    return stem.with_suffix(".json")
