"""The daily reconciliation (R3): each workday, was every assigned recorder docked?

The regulations have each workday's footage collected at the end of the day. For a
workday (``[calendar]``: weekends, holidays, make-up workdays) in the station's zone,
one row per device assigned that day (the ``assignments`` table) and per device that
docked without an assignment: its officer, whether it docked (a dock session started
that day), the files it brought and how many of them late (``[reports]
late_ingest_hours``), the files of its officer from any device, the dock sessions that
did not end ``complete``, and the open alerts about it. An assigned device that did not
dock is listed with the officer who held it: an officer on duty (holding a recorder
on a workday) whose footage was not collected.

``dockd report daily [--date D]`` shows it (default: the last completed workday); the
scheduled run (``[schedule] daily_report``) records it as a ``daily_report`` sweep run,
writes it beside the weekly report if ``weekly_report_dir`` is set, and raises a
``dock.missed`` alert per device that did not dock (once per device and day).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.context import Context
from dockd.errors import UsageError
from dockd.ledger.models import Alert, Assignment, Device, DockSession, Officer, Recording
from dockd.reports.base import Period, Report, columns, dialect_of
from dockd.reports.footage import late_sql
from dockd.sweeps.runs import sweep_run

MAX_DAYS = 92  # a quarter: longer spans are the weekly summaries' or SQL's
ALERT_KIND = "dock.missed"
COLUMNS = columns(
    "date device officer name docked sessions incomplete files late officer_files open_alerts"
)


def workdays(config: Config, period: Period, now: datetime) -> list[date]:
    """The workdays a report covers: those in ``period`` (local dates), or, with no
    period, the last completed workday before today."""
    tz = config.station.tz
    cal = config.calendar
    today = now.astimezone(tz).date()
    if period.start is None and period.end is None:
        return [cal.last_workday_before(today)]
    first = period.start.astimezone(tz).date() if period.start else today
    last = (period.end - timedelta(microseconds=1)).astimezone(tz).date() if period.end else today
    if (last - first).days >= MAX_DAYS:
        raise UsageError(f"the daily report covers at most {MAX_DAYS} days; narrow --from/--to")
    days = cal.workdays_between(first, last)
    if not days:
        why = cal.why_not(first) if first == last else "none of them is a workday"
        raise UsageError(
            f"no workday from {first} through {last}: {why}; the last workday before it "
            f"was {cal.last_workday_before(first)}"
        )
    return days


def _day_rows(session: Session, config: Config, day: date) -> list[dict[str, Any]]:
    tz = config.station.tz
    station = config.station.id
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = start + timedelta(days=1)
    held = session.execute(
        select(Device.id, Device.number, Officer.id.label("oid"), Officer.badge, Officer.name)
        .join(Assignment, Assignment.device_id == Device.id)
        .join(Officer, Officer.id == Assignment.officer_id)
        .where(
            Assignment.valid_from < end,
            or_(Assignment.valid_until.is_(None), Assignment.valid_until > start),
            or_(Device.retired_at.is_(None), Device.retired_at > start),
        )
        .order_by(Device.number, Assignment.valid_from)
    ).all()
    sessions: dict[int, list[DockSession]] = defaultdict(list)
    for ds in session.scalars(
        select(DockSession)
        .where(
            DockSession.station == station,
            DockSession.device_id.is_not(None),
            DockSession.started_at >= start,
            DockSession.started_at < end,
        )
        .order_by(DockSession.id)
    ):
        assert ds.device_id is not None
        sessions[ds.device_id].append(ds)
    ingested = (
        Recording.station == station,
        Recording.ingested_at >= start,
        Recording.ingested_at < end,
    )
    late = late_sql(config, dialect_of(session))
    files: dict[int, tuple[int, int]] = {
        dev: (int(n), int(n_late or 0))
        for dev, n, n_late in session.execute(
            select(Recording.device_id, func.count(), func.sum(case((late, 1), else_=0)))
            .where(*ingested, Recording.device_id.is_not(None))
            .group_by(Recording.device_id)
        )
    }
    by_officer: dict[int | None, int] = {
        oid: int(n)
        for oid, n in session.execute(
            select(Recording.officer_id, func.count())
            .where(*ingested, Recording.officer_id.is_not(None))
            .group_by(Recording.officer_id)
        )
    }
    numbers = {d.id: d.number for d in session.scalars(select(Device))}
    # Open alerts name a device as their subject, or "<device>:<file>": few rows.
    alerts = Counter[str]()
    for (subject,) in session.execute(
        select(Alert.subject).where(Alert.station == station, Alert.acknowledged_at.is_(None))
    ):
        alerts[subject.split(":", 1)[0]] += 1

    def row(dev_id: int, badge: str | None, name: str | None, oid: int | None) -> dict[str, Any]:
        mine = sessions.get(dev_id, [])
        n, n_late = files.get(dev_id, (0, 0))
        number = numbers[dev_id]
        return {
            "date": day.isoformat(),
            "device": number,
            "officer": badge,
            "name": name,
            "docked": "yes" if mine else "no",
            "sessions": len(mine),
            "incomplete": [f"#{s.id} {s.outcome}" for s in mine if s.outcome != "complete"],
            "files": n,
            "late": n_late,
            "officer_files": by_officer.get(oid, 0) if oid is not None else None,
            "open_alerts": alerts.get(number, 0),
        }

    rows = [row(h.id, h.badge, h.name, h.oid) for h in held]
    seen = {h.id for h in held}
    rows += [row(dev, None, None, None) for dev in sorted(sessions) if dev not in seen]
    return sorted(rows, key=lambda r: (r["device"], r["officer"] or ""))


def daily(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Per workday, every assigned device: docked or not, files, late, incomplete sessions."""
    rows: list[dict[str, Any]] = []
    for day in workdays(config, period, now):
        rows += _day_rows(session, config, day)
    return Report(
        "daily",
        "per workday, each assigned device: docked or not, its files, late ones, "
        "sessions not complete, open alerts (R3)",
        COLUMNS,
        rows,
    )


def missed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of assigned devices that did not dock."""
    return [r for r in rows if r["docked"] == "no" and r["officer"] is not None]


def run_daily_report(ctx: Context, *, dry_run: bool = False) -> Report:
    """The scheduled reconciliation of the last completed workday: a sweep run, one
    ``dock.missed`` alert per assigned device not docked, the report written out."""
    cfg = ctx.config
    now = ctx.clock.now()
    (day,) = workdays(cfg, Period(), now)
    with sweep_run(ctx, "daily_report", dry_run=dry_run) as run:
        with ctx.ledger.read() as s:
            report = daily(s, cfg, Period(), now)
            raised = _alerted(s, cfg.station.id, day)
        gone = missed(report.rows)
        run.summary = {
            "date": day.isoformat(),
            "devices": len(report.rows),
            "docked": sum(r["docked"] == "yes" for r in report.rows),
            "not_docked": [f"{r['device']} ({r['officer']})" for r in gone],
            "files": sum(r["files"] for r in report.rows),
            "late": sum(r["late"] for r in report.rows),
            "incomplete_sessions": sum(len(r["incomplete"]) for r in report.rows),
            "open_alerts": sum(r["open_alerts"] for r in report.rows),
        }
        if dry_run:
            return report
        for r in gone:
            group = f"{r['device']}:{day.isoformat()}"
            if group in raised:  # raised by an earlier run, or for its other holder
                continue
            raised.add(group)
            ctx.alerts.raise_alert(
                ALERT_KIND,
                r["device"],
                f"recorder {r['device']}, held by officer {r['officer']} ({r['name']}), was "
                f"not docked on workday {day.isoformat()}: its footage was not collected "
                "that day (R3); dock it, or explain why",
                details={"date": day.isoformat(), "officer": r["officer"]},
                group=group,
            )
        folder = cfg.schedule.weekly_report_dir
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"daily-{day.isoformat()}.json"
            tmp = path.with_name(path.name + ".part")
            body = {"summary": run.summary, "rows": report.rows}
            tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", "utf-8")
            os.replace(tmp, path)
    return report


def _alerted(session: Session, station: str, day: date) -> set[str]:
    """The ``dock.missed`` groups already raised for ``day`` (acknowledged or not)."""
    return set(
        g
        for (g,) in session.execute(
            select(Alert.group_key).where(
                and_(
                    Alert.station == station,
                    Alert.kind == ALERT_KIND,
                    Alert.group_key.endswith(f":{day.isoformat()}"),
                )
            )
        )
        if g is not None
    )
