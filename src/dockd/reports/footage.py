"""Reports on the footage itself: late ingest (R2), gaps (R12), untagged (R5),
usage per officer and device (R16), clock-suspect devices (R13), badge mismatches (R1)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.ledger.models import Device, FileState, Officer, Recording
from dockd.reports.base import Period, Report, columns, iso


@dataclass(frozen=True)
class _File:
    row: Recording
    badge: str | None
    officer_name: str | None

    @property
    def end(self) -> datetime:
        return self.row.recorded_end or self.row.recorded_start


def _files(session: Session, period: Period, *, stored_only: bool = False) -> list[_File]:
    """Every file recorded in the period (all states unless ``stored_only``), in time order."""
    q = (
        select(Recording, Officer.badge, Officer.name)
        .outerjoin(Officer, Recording.officer_id == Officer.id)
        .where(*period.where(Recording.recorded_start))
        .order_by(Recording.recorded_start, Recording.id)
    )
    if stored_only:
        q = q.where(Recording.state == FileState.STORED)
    return [_File(row, badge or row.badge_hint, name) for row, badge, name in session.execute(q)]


def ingest_delay(row: Recording) -> timedelta:
    """From the end of the recording (its start when the end is unknown) to its ingest."""
    return row.ingested_at - (row.recorded_end or row.recorded_start)


def is_late(row: Recording, config: Config) -> bool:
    return ingest_delay(row) > timedelta(hours=config.reports.late_ingest_hours)


def late(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Files ingested more than ``late_ingest_hours`` after their recording ended (R2)."""
    tz = config.station.tz
    rows = [
        {
            "id": f.row.id,
            "device": f.row.device_ref,
            "officer": f.badge,
            "recorded_at": iso(f.row.recorded_start, tz),
            "recorded_end": iso(f.row.recorded_end, tz),
            "ingested_at": iso(f.row.ingested_at, tz),
            "delay_hours": round(ingest_delay(f.row).total_seconds() / 3600, 2),
            "session_id": f.row.session_id,
            "clock_suspect": f.row.clock_suspect,
            "case": f.row.case_number,
        }
        for f in _files(session, period)
        if is_late(f.row, config)
    ]
    return Report(
        "late",
        f"ingested more than {config.reports.late_ingest_hours:g} h after recording",
        columns(
            "id device officer recorded_at recorded_end ingested_at delay_hours session_id"
            " clock_suspect case"
        ),
        rows,
    )


def gaps(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Breaks longer than ``gap_minutes`` between consecutive clips of one device (R12).

    Only video and audio clips count; a break is measured from the latest end so
    far to the next start, and only within one local day (a night off duty is not
    an interrupted recording).
    """
    tz = config.station.tz
    limit = timedelta(minutes=config.reports.gap_minutes)
    by_device: dict[str, list[_File]] = defaultdict(list)
    for f in _files(session, period):
        if f.row.kind in ("video", "audio"):
            by_device[f.row.device_ref].append(f)
    rows: list[dict[str, Any]] = []
    for device in sorted(by_device):
        clips = by_device[device]
        latest = clips[0]
        for clip in clips[1:]:
            gap = clip.row.recorded_start - latest.end
            same_day = (
                latest.end.astimezone(tz).date() == clip.row.recorded_start.astimezone(tz).date()
            )
            if gap > limit and same_day:
                rows.append(
                    {
                        "device": device,
                        "officer": clip.badge,
                        "gap_from": iso(latest.end, tz),
                        "gap_to": iso(clip.row.recorded_start, tz),
                        "gap_minutes": round(gap.total_seconds() / 60, 1),
                        "file_before": latest.row.id,
                        "file_after": clip.row.id,
                        "case": clip.row.case_number,
                    }
                )
            if clip.end > latest.end:
                latest = clip
    return Report(
        "gaps",
        f"breaks over {config.reports.gap_minutes:g} min between clips of one device, same day",
        columns("device officer gap_from gap_to gap_minutes file_before file_after case"),
        rows,
    )


def untagged(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Stored footage still without a case ``untagged_days`` after it was recorded (R5)."""
    tz = config.station.tz
    cutoff = now - timedelta(days=config.reports.untagged_days)
    rows = [
        {
            "id": f.row.id,
            "device": f.row.device_ref,
            "officer": f.badge,
            "kind": f.row.kind,
            "recorded_at": iso(f.row.recorded_start, tz),
            "age_days": (now - f.row.recorded_start).days,
            "store_path": f.row.store_path,
        }
        for f in _files(session, period, stored_only=True)
        if f.row.case_number is None and f.row.recorded_start <= cutoff
    ]
    return Report(
        "untagged",
        f"footage without a case {config.reports.untagged_days} day(s) after recording",
        columns("id device officer kind recorded_at age_days store_path"),
        rows,
    )


@dataclass
class _Usage:
    files: int = 0
    seconds: float = 0.0
    late: int = 0
    days: set[date] | None = None
    first: datetime | None = None
    last: datetime | None = None

    def add(self, f: _File, config: Config) -> None:
        self.files += 1
        self.seconds += f.row.duration_s or 0.0
        self.late += is_late(f.row, config)
        if self.days is None:
            self.days = set()
        self.days.add(f.row.recorded_start.astimezone(config.station.tz).date())
        start = f.row.recorded_start
        self.first = start if self.first is None or start < self.first else self.first
        self.last = start if self.last is None or start > self.last else self.last

    def as_row(self, config: Config) -> dict[str, Any]:
        tz = config.station.tz
        return {
            "files": self.files,
            "hours_recorded": round(self.seconds / 3600, 2),
            "days_active": len(self.days or ()),
            "late_files": self.late,
            "late_share": round(self.late / self.files, 3) if self.files else 0.0,
            "first_recorded": iso(self.first, tz),
            "last_recorded": iso(self.last, tz),
        }


_USAGE_COLS = columns(
    "files hours_recorded days_active late_files late_share first_recorded last_recorded"
)


def usage_officer(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Per officer over the period: hours recorded, files, days active, share ingested late
    (R16). Every registered officer is listed, also those who recorded nothing."""
    usage: dict[str, _Usage] = defaultdict(_Usage)
    names: dict[str, str | None] = {}
    for badge, name in session.execute(select(Officer.badge, Officer.name)):
        usage[badge]
        names[badge] = name
    for f in _files(session, period):
        key = f.badge or "(unknown)"
        usage[key].add(f, config)
        names.setdefault(key, f.officer_name)
    rows = [{"officer": k, "name": names.get(k), **usage[k].as_row(config)} for k in sorted(usage)]
    return Report("usage-officer", "use per officer", ("officer", "name", *_USAGE_COLS), rows)


def usage_device(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Per device over the period (R16); every registered device is listed."""
    usage: dict[str, _Usage] = defaultdict(_Usage)
    models: dict[str, str] = {}
    for number, brand, model in session.execute(select(Device.number, Device.brand, Device.model)):
        usage[number]
        models[number] = " ".join(x for x in (brand, model) if x)
    for f in _files(session, period):
        usage[f.row.device_ref].add(f, config)
    rows = [
        {"device": k, "model": models.get(k, ""), **usage[k].as_row(config)} for k in sorted(usage)
    ]
    return Report("usage-device", "use per device", ("device", "model", *_USAGE_COLS), rows)


def clock(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Devices whose clock looks wrong (R13): files flagged clock-suspect at ingest
    (time in the future, far from the dock time, or before the device was registered)."""
    tz = config.station.tz
    per: dict[str, list[_File]] = defaultdict(list)
    totals: dict[str, int] = defaultdict(int)
    for f in _files(session, period):
        totals[f.row.device_ref] += 1
        if f.row.clock_suspect:
            per[f.row.device_ref].append(f)
    rows = []
    for device in sorted(per):
        suspect = per[device]
        future = [f for f in suspect if f.row.recorded_start > f.row.ingested_at]
        rows.append(
            {
                "device": device,
                "suspect_files": len(suspect),
                "files": totals[device],
                "future_dated": len(future),
                "earliest_recorded_at": iso(min(f.row.recorded_start for f in suspect), tz),
                "latest_recorded_at": iso(max(f.row.recorded_start for f in suspect), tz),
                "last_ingest": iso(max(f.row.ingested_at for f in suspect), tz),
                "file_ids": [f.row.id for f in suspect][:20],
            }
        )
    return Report(
        "clock",
        "devices with clock-suspect footage",
        columns(
            "device suspect_files files future_dated earliest_recorded_at latest_recorded_at"
            " last_ingest file_ids"
        ),
        rows,
    )


def badge_mismatch(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Files whose name carries a badge other than the assigned officer's: a recorder
    lent to someone else (003 §20(二)), or an assignment entered wrong."""
    tz = config.station.tz
    rows = [
        {
            "id": f.row.id,
            "device": f.row.device_ref,
            "assigned": f.badge,
            "badge_in_name": f.row.badge_hint,
            "recorded_at": iso(f.row.recorded_start, tz),
            "session_id": f.row.session_id,
            "source_path": f.row.source_path,
        }
        for f in _files(session, period)
        if f.row.badge_mismatch
    ]
    return Report(
        "badge-mismatch",
        "footage whose file name names another officer than the assignment",
        columns("id device assigned badge_in_name recorded_at session_id source_path"),
        rows,
    )
