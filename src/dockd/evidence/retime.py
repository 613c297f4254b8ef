"""Correcting recording times: one file, a dock session, or a device in a window.

A recorder's clock can be wrong (a flat clock battery resets it to 2000-01-01, a
recorder set to UTC at a station in UTC+8 runs eight hours off). The ingest keeps the
time the recorder gave and flags doubt; a person who knows better corrects it here,
by an offset or to an explicit time, with a reason.

What a correction changes: ``recorded_start`` (and ``recorded_end`` by the same
amount), ``time_source`` becomes ``corrected`` and the clock-suspect flag is cleared,
so retention counts from the corrected time (``expires_at`` is recomputed), the
officer is the one assigned at the corrected time (a ``file.officer`` event when that
changes), and the day views and reports, which read the ledger, follow. A file
already in the trash stays there: the command says so, and ``dockd trash restore``
brings it back. Each file gets a
``file.retime`` audit event with the old and new times, the offset and the reason.

The stored file does NOT move to the day folder of its corrected date: its store path
is where it was verified and is named in the audit trail, archive copies and exports.
The ledger's time, not the folder, is the recording time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.errors import NotFound, UsageError
from dockd.ledger import attribution, audit
from dockd.ledger.models import DockSession, FileState, Recording
from dockd.ledger.registry import device_by_number
from dockd.policy.adapter import refresh_expiry

CORRECTED = "corrected"  # files.time_source of a corrected recording time
_CLOCK = re.compile(r"^(?P<sign>[+-])(?P<h>\d{1,4}):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?$")
_UNITS = re.compile(r"(?P<n>\d+)(?P<unit>[dhms])")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_offset(text: str) -> timedelta:
    """``+8h``, ``-1d2h30m``, ``+08:00`` or ``-00:05:30`` as a signed timedelta."""
    text = text.strip()
    m = _CLOCK.match(text)
    if m:
        seconds = int(m["h"]) * 3600 + int(m["m"]) * 60 + int(m["s"] or 0)
        return timedelta(seconds=seconds if m["sign"] == "+" else -seconds)
    body = text[1:] if text[:1] in "+-" else ""
    parts = list(_UNITS.finditer(body))
    if not body or "".join(p.group() for p in parts) != body:
        raise UsageError(
            f"--offset {text!r}: give a sign and an amount, e.g. +8h, -1d2h, +08:00 or -00:05:30"
        )
    seconds = sum(int(p["n"]) * _SECONDS[p["unit"]] for p in parts)
    return timedelta(seconds=seconds if text[0] == "+" else -seconds)


@dataclass(frozen=True)
class Selection:
    """Which files to correct: ids, a dock session, or a device's files in a window."""

    file_ids: Sequence[int] = ()
    session_id: int | None = None
    device: str | None = None
    window_from: datetime | None = None
    window_until: datetime | None = None


def select_files(session: Session, sel: Selection) -> list[Recording]:
    """The files a selection names, oldest first; an error if it names none."""
    given = [bool(sel.file_ids), sel.session_id is not None, sel.device is not None]
    if sum(given) != 1:
        raise UsageError("name the files one way: file ids, --session or --device")
    if sel.device is None and (sel.window_from is not None or sel.window_until is not None):
        raise UsageError("--from and --until choose a device's files: give --device too")
    q = select(Recording).where(Recording.state != FileState.PURGED)
    if sel.file_ids:
        rows = list(session.scalars(q.where(Recording.id.in_(sel.file_ids))))
        missing = sorted(set(sel.file_ids) - {r.id for r in rows})
        if missing:
            raise NotFound(f"no file with id {', '.join(map(str, missing))} (or it was purged)")
        return sorted(rows, key=lambda r: (r.recorded_start, r.id))
    if sel.session_id is not None:
        if session.get(DockSession, sel.session_id) is None:
            raise NotFound(f"no dock session {sel.session_id}: see `dockd ledger sessions`")
        q = q.where(Recording.session_id == sel.session_id)
    else:
        assert sel.device is not None
        if sel.window_from is None or sel.window_until is None:
            raise UsageError("--device needs --from and --until (the recorded times to correct)")
        dev = device_by_number(session, sel.device)
        q = q.where(
            Recording.device_id == dev.id,
            Recording.recorded_start >= sel.window_from,
            Recording.recorded_start < sel.window_until,
        )
    rows = list(session.scalars(q.order_by(Recording.recorded_start, Recording.id)))
    if not rows:
        raise NotFound("no recording matches: nothing was corrected")
    return rows


@dataclass(frozen=True)
class Retimed:
    """One corrected file: its id and the start before and after."""

    file_id: int
    old_start: datetime
    new_start: datetime
    state: str
    expires_at: datetime | None


def retime(
    session: Session,
    config: Config,
    rows: Sequence[Recording],
    *,
    offset: timedelta | None,
    to: datetime | None,
    reason: str,
    at: datetime,
    actor: str,
) -> list[Retimed]:
    """Move the recording times of ``rows`` by ``offset`` or (one file) ``to`` a time."""
    if (offset is None) == (to is None):
        raise UsageError("give exactly one of --offset and --to")
    if to is not None and len(rows) != 1:
        raise UsageError(f"--to sets one file's time; {len(rows)} files are selected: use --offset")
    if not reason.strip():
        raise UsageError("--reason is required: say why the time is corrected")
    done = []
    for row in rows:
        delta = offset if offset is not None else _minus(to, row.recorded_start)
        if not delta:
            continue
        old_start, old_end, old_source = row.recorded_start, row.recorded_end, row.time_source
        row.recorded_start = old_start + delta
        row.recorded_end = old_end + delta if old_end is not None else None
        row.time_source, row.clock_suspect = CORRECTED, False
        refresh_expiry(session, row, config.retention)
        details = {
            "reason": reason,
            "offset_s": delta.total_seconds(),
            "old": {
                "recorded_start": _iso(old_start),
                "recorded_end": _iso(old_end),
                "time_source": old_source,
            },
            "new": {"recorded_end": _iso(row.recorded_end), "time_source": CORRECTED},
        }
        audit.record_file_change(
            session,
            row,
            at=at,
            actor=actor,
            action="file.retime",
            changed=("recorded_start",),
            details=details,
        )
        # The officer in force at the corrected time: a shift of hours often crosses a
        # hand-over, where assignments change (a file.officer event when it changes);
        # an officer set by hand stays.
        if not row.officer_by_hand:
            who = attribution.attribute(session, row.device_id, row.recorded_start, row.badge_hint)
            attribution.set_officer(
                session,
                row,
                who.officer,
                who.badge_mismatch,
                at=at,
                actor=actor,
                reason=f"recording time corrected: {reason}",
            )
        done.append(Retimed(row.id, old_start, row.recorded_start, row.state, row.expires_at))
    return done


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _minus(to: datetime | None, start: datetime) -> timedelta:
    assert to is not None
    return to - start
