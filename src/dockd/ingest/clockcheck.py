"""The recorder's clock, checked against every signal the recorder gives (R13).

A recording time is only as good as the recorder's clock, and recorders get it
wrong in a few well-known ways: the battery runs flat and the clock restarts at
2000-01-01 (or 1970, or the firmware's build date); the zone is set to UTC on a
station in Beijing (a whole-hour offset); the clock runs behind or ahead. Once per
dock session :func:`read_clock` gathers what is known of this recorder's clock:

    the time file   a file the recorder writes with its clock's time when docked
                    (``time_file`` of a naming rule that matched its files): the
                    clock's offset from the station's, recorded on the session
    the last dock   the device's last complete dock: every file on the recorder
                    then was taken, so a new file timed before it was not there
    the registry    when the device was registered and first assigned

and :func:`check` turns it, with the file's own times (name, container, file
time), into findings. Each :class:`Finding` names its evidence in words a person
can check; any finding makes the file ``clock-suspect``, so retention counts it
from its ingest until someone corrects its time (``dockd recordings retime``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path, PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.config.naming import NamingRule
from dockd.ingest.identify import Identity
from dockd.ingest.naming import NameInfo
from dockd.ingest.probe import ProbeResult
from dockd.ledger.models import Assignment, DockSession, SessionFailure

# A reset clock runs on from the date it fell back to: times this soon after it are suspect.
RESET_WINDOW = timedelta(days=31)
# Two times "agree" within this (whole seconds in names, MP4 and FAT; FAT's 2-s mtime).
AGREE = timedelta(seconds=120)
# Whole-hour offsets a zone set wrong can make (UTC-12 .. UTC+14, both ways).
MAX_ZONE_HOURS = 26
TIME_FILE_MAX_BYTES = 4096


class Check(StrEnum):
    """What a finding is about (``files.clock_findings[].check``)."""

    FUTURE = "future"  # after the station's clock at dock, beyond the tolerance
    NAME_CONTAINER = "name-container"  # the name's time and the container's disagree
    WHOLE_HOURS = "whole-hour-offset"  # two of the file's times differ by whole hours
    RESET_DATE = "reset-date"  # just after a date clocks fall back to
    BEFORE_LAST_DOCK = "before-last-dock"  # before the device's last complete dock
    BEFORE_REGISTRATION = "before-registration"  # before it was registered or assigned
    BEFORE_ASSIGNMENT = "before-assignment"  # registered, but not yet assigned to anyone
    TIME_FILE = "time-file"  # the recorder's own clock, read at dock, is off


@dataclass(frozen=True)
class Finding:
    check: Check
    evidence: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check.value, "evidence": self.evidence}


@dataclass(frozen=True)
class TimeReading:
    """The recorder's clock as its time file gave it, against the station's at that moment."""

    path: str
    text: str
    recorder_time: datetime
    station_time: datetime

    @property
    def offset(self) -> timedelta:
        """Recorder minus station: negative when the recorder's clock is behind."""
        return self.recorder_time - self.station_time


@dataclass(frozen=True)
class LastDock:
    session_id: int
    started_at: datetime
    not_taken: frozenset[str]  # files seen then but refused or failed (by recorder path)


@dataclass(frozen=True)
class RecorderClock:
    """What is known of one docked recorder's clock, before its files are taken."""

    now: datetime
    tolerance: timedelta  # [ingest] clock_tolerance_hours: name against container, future
    drift: timedelta  # [ingest] clock_drift_minutes: a measured offset, a previous dock
    reset_dates: tuple[date, ...]
    zone: tzinfo  # the recorder's clock zone (its naming rule's, else the station's)
    registered_at: datetime | None = None
    first_assigned: datetime | None = None
    last_dock: LastDock | None = None
    reading: TimeReading | None = None
    time_file_error: str | None = None

    @property
    def in_service(self) -> datetime | None:
        """Since when the device is known to be in use: registered, or assigned if that was
        earlier (an assignment dated back records use before the registration was typed in)."""
        known = [t for t in (self.registered_at, self.first_assigned) if t is not None]
        return min(known) if known else None

    @property
    def offset(self) -> timedelta | None:
        """The clock's measured offset from the station's, when a time file gave it."""
        return self.reading.offset if self.reading is not None else None


def read_clock(
    s: Session,
    config: Config,
    source: Path,
    names: dict[PurePosixPath, NameInfo | None],
    identity: Identity,
    now: datetime,
) -> RecorderClock:
    """Everything known of this recorder's clock at dock (ledger reads, one small file)."""
    rules = _matched_rules(config, names)
    zone = next((r.zone for r in rules if r.zone is not None), config.station.tz)
    extra = tuple(d for r in rules for d in r.reset_dates)
    reading, error = _read_time_file(source, rules, config.station.tz, now)
    device = identity.device
    clock = RecorderClock(
        now=now,
        tolerance=timedelta(hours=config.ingest.clock_tolerance_hours),
        drift=timedelta(minutes=config.ingest.clock_drift_minutes),
        reset_dates=tuple(sorted(set(config.ingest.clock_reset_dates) | set(extra))),
        zone=zone,
        reading=reading,
        time_file_error=error,
    )
    if device is None:
        return clock
    first = s.scalar(
        select(func.min(Assignment.valid_from)).where(Assignment.device_id == device.id)
    )
    last = s.execute(
        select(DockSession.id, DockSession.started_at)
        .where(DockSession.device_id == device.id, DockSession.outcome == "complete")
        .order_by(DockSession.started_at.desc(), DockSession.id.desc())
        .limit(1)
    ).first()
    last_dock = None
    if last is not None:
        gone = s.scalars(
            select(SessionFailure.source_path).where(SessionFailure.session_id == last.id)
        )
        last_dock = LastDock(last.id, _aware(last.started_at), frozenset(gone))
    return RecorderClock(
        **{
            **clock.__dict__,
            "registered_at": _aware(device.registered_at),
            "first_assigned": _aware(first) if first is not None else None,
            "last_dock": last_dock,
        }
    )


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _matched_rules(config: Config, names: dict[PurePosixPath, NameInfo | None]) -> list[NamingRule]:
    """The naming rules that matched at least one of this recorder's files, in config order."""
    used = {n.rule for n in names.values() if n is not None}
    return [r for r in config.naming if r.name in used]


def _read_time_file(
    source: Path, rules: list[NamingRule], station_zone: tzinfo, now: datetime
) -> tuple[TimeReading | None, str | None]:
    """The first configured time file the recorder holds, parsed; or why it could not be."""
    for rule in rules:
        if rule.time_file is None:
            continue
        path = source.joinpath(*PurePosixPath(rule.time_file).parts)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return None, f"time file {rule.time_file} cannot be read: {exc.strerror}"
        try:
            raw = os.read(fd, TIME_FILE_MAX_BYTES)
        except OSError as exc:
            return None, f"time file {rule.time_file} cannot be read: {exc.strerror}"
        finally:
            os.close(fd)
        text = raw.decode("utf-8", "replace").strip().splitlines()[0:1]
        line = text[0].strip() if text else ""
        fmt = rule.time_file_format or "%Y-%m-%d %H:%M:%S"
        try:
            naive = datetime.strptime(line, fmt)
        except ValueError:
            return None, (
                f"time file {rule.time_file} says {line[:60]!r}, which is not a time in "
                f"the format {fmt!r} (naming rule {rule.name}: time_file_format)"
            )
        zone = rule.zone or station_zone
        when = naive.replace(tzinfo=zone) if naive.tzinfo is None else naive
        return TimeReading(rule.time_file, line, when, now), None
    return None, None


def _hours(delta: timedelta) -> str:
    """A duration as a person says it: '8 h', '3 d 2 h', '45 min'."""
    secs = abs(delta.total_seconds())
    if secs >= 2 * 86400:
        days, rest = divmod(secs, 86400)
        return f"{int(days)} d {int(rest // 3600)} h" if rest >= 3600 else f"{int(days)} d"
    if secs >= 3600:
        hours = secs / 3600
        return f"{hours:.0f} h" if abs(hours - round(hours)) < 0.05 else f"{hours:.1f} h"
    return f"{max(1, round(secs / 60))} min"


def signed(delta: timedelta) -> str:
    """'+8h' / '-3h' / '+45m': an offset as ``dockd recordings retime --offset`` takes it."""
    secs = round(delta.total_seconds())
    sign = "-" if secs < 0 else "+"
    secs = abs(secs)
    hours, rest = divmod(secs, 3600)
    mins = round(rest / 60)
    if mins == 60:
        hours, mins = hours + 1, 0
    out = (f"{hours}h" if hours else "") + (f"{mins}m" if mins or not hours else "")
    return sign + out


def _whole_hours(delta: timedelta, duration: timedelta) -> int | None:
    """Whole hours (1..26 either way) by which two times differ, allowing one of them to
    be the recording's end rather than its start; None when they agree or differ otherwise."""
    for d in (delta, delta - duration, delta + duration):
        if abs(d) <= AGREE:
            return None
    for d in (delta, delta - duration, delta + duration):
        hours = round(d.total_seconds() / 3600)
        if 1 <= abs(hours) <= MAX_ZONE_HOURS and abs(d - timedelta(hours=hours)) <= AGREE:
            return hours
    return None


def _stamp(t: datetime, zone: tzinfo) -> str:
    return t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")


def check(
    clock: RecorderClock,
    *,
    start: datetime,
    time_source: str,
    name: NameInfo | None,
    info: ProbeResult,
    mtime: float,
    relpath: str,
    station_zone: tzinfo,
) -> list[Finding]:
    """What is wrong with this file's recording time, each finding with its evidence."""
    found: list[Finding] = []
    z = station_zone
    duration = timedelta(seconds=info.duration_s or 0)
    name_t = name.timestamp if name is not None else None
    box_t = info.creation_time
    file_t = datetime.fromtimestamp(mtime, UTC)

    if start > clock.now + clock.tolerance:
        found.append(
            Finding(
                Check.FUTURE,
                f"recorded {_stamp(start, z)} (from the {time_source}), "
                f"{_hours(start - clock.now)} after the station's clock at dock "
                f"({_stamp(clock.now, z)})",
            )
        )
    if name_t is not None and box_t is not None:
        hours = _whole_hours(box_t - name_t, duration)
        if hours is not None:
            found.append(
                Finding(
                    Check.WHOLE_HOURS,
                    f"the container's time {_stamp(box_t, z)} is {signed(timedelta(hours=hours))}"
                    f" from the file name's {_stamp(name_t, z)}: a clock or zone set "
                    "whole hours wrong (UTC against local time)",
                )
            )
        elif abs(box_t - name_t) > clock.tolerance:
            found.append(
                Finding(
                    Check.NAME_CONTAINER,
                    f"the container's time {_stamp(box_t, z)} and the file name's "
                    f"{_stamp(name_t, z)} are {_hours(box_t - name_t)} apart",
                )
            )
    if time_source != "mtime":
        hours = _whole_hours(file_t - start, duration)
        if hours is not None and not _mount_shift(hours, start, clock.zone):
            found.append(
                Finding(
                    Check.WHOLE_HOURS,
                    f"the file time (mtime) {_stamp(file_t, z)} is "
                    f"{signed(timedelta(hours=hours))} from the {time_source}'s "
                    f"{_stamp(start, z)}",
                )
            )
    times = [("file name's", name_t), ("container's", box_t)]
    if time_source == "mtime":
        times.append(("file's modification", start))
    for label, t in times:
        reset = _reset_date(t, clock.reset_dates, clock.zone) if t is not None else None
        if reset is not None and t is not None:
            found.append(
                Finding(
                    Check.RESET_DATE,
                    f"the {label} time {_stamp(t, z)} is within {RESET_WINDOW.days} days after "
                    f"{reset.isoformat()}, a date recorders fall back to when the clock is reset",
                )
            )
            break
    last = clock.last_dock
    if last is not None and start < last.started_at - clock.drift and relpath not in last.not_taken:
        found.append(
            Finding(
                Check.BEFORE_LAST_DOCK,
                f"recorded {_stamp(start, z)}, before this device's last complete dock at "
                f"{_stamp(last.started_at, z)} (dock session {last.session_id}), which did not "
                f"find this file: the clock runs at least {_hours(last.started_at - start)} behind",
            )
        )
    in_service = clock.in_service
    if in_service is not None and start < in_service - clock.drift:
        assigned = (
            f", first assigned {_stamp(clock.first_assigned, z)}"
            if clock.first_assigned is not None
            else ""
        )
        found.append(
            Finding(
                Check.BEFORE_REGISTRATION,
                f"recorded {_stamp(start, z)}, {_hours(in_service - start)} before the device "
                f"was in service (registered {_stamp(clock.registered_at or in_service, z)}"
                f"{assigned})",
            )
        )
    elif clock.first_assigned is not None and start < clock.first_assigned - clock.drift:
        found.append(
            Finding(
                Check.BEFORE_ASSIGNMENT,
                f"recorded {_stamp(start, z)}, before the device was first assigned to an "
                f"officer ({_stamp(clock.first_assigned, z)})",
            )
        )
    offset = clock.offset
    if offset is not None and abs(offset) > clock.drift:
        assert clock.reading is not None
        way = "ahead of" if offset > timedelta(0) else "behind"
        found.append(
            Finding(
                Check.TIME_FILE,
                f"the recorder's time file {clock.reading.path} read {clock.reading.text!r} "
                f"when docked at {_stamp(clock.reading.station_time, z)}: its clock is "
                f"{_hours(offset)} {way} the station's",
            )
        )
    return found


def _reset_date(t: datetime, dates: tuple[date, ...], zone: tzinfo) -> date | None:
    """The reset date ``t`` follows, read on the recorder's wall clock (a day early too:
    a reset clock's local midnight may be labelled UTC, or the other way round)."""
    day = t.astimezone(zone).date()
    for d in dates:
        if d - timedelta(days=1) <= day < d + RESET_WINDOW:
            return d
    return None


def _mount_shift(hours: int, at: datetime, recorder_zone: tzinfo) -> bool:
    """Is a file time ``hours`` off explained by how the mount read it? FAT and exFAT keep
    local wall-clock times without a zone; a mount reads them as UTC (the kernel's
    vfat under systemd) or in this process's zone, shifting every file the same way."""
    rec = at.astimezone(recorder_zone).utcoffset() or timedelta(0)
    with contextlib.suppress(OverflowError, OSError, ValueError):
        local = at.astimezone().utcoffset() or timedelta(0)
        return timedelta(hours=hours) in (rec, rec - local)
    return timedelta(hours=hours) == rec
