"""What one recording is: its time, its officer and its flags, decided once it is copied.

The recording time comes from the best source there is::

    the container's creation time  >  the time in the file name  >  the file's mtime

and is ``clock-suspect`` when any check of the recorder's clock finds it wrong
(``clockcheck``: future, reset date, whole-hour offset, before the last dock, the
registration or the first assignment, the recorder's own time file), each finding
kept on the row with its evidence. The officer is whoever wore the device at that
time (the registry's assignments), else the badge the file name carries; a name
whose badge is not the assigned officer's is flagged ``badge-mismatch``
(:func:`badge_mismatch_alert`).
No I/O but ledger reads: the row is returned for the caller to publish and commit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from dockd import store
from dockd.context import Context
from dockd.ingest import clockcheck
from dockd.ingest.discover import Candidate
from dockd.ingest.identify import Identity
from dockd.ingest.naming import NameInfo
from dockd.ingest.probe import ProbeResult
from dockd.ledger import attribution
from dockd.ledger.models import Recording


def recording_time(
    cand: Candidate, name: NameInfo | None, info: ProbeResult
) -> tuple[datetime, str]:
    """(start, time_source): the container's time, else the file name's, else the mtime."""
    if info.creation_time is not None:
        return info.creation_time, "container"
    if name is not None and name.timestamp is not None:
        return name.timestamp, "filename"
    return datetime.fromtimestamp(cand.mtime, UTC), "mtime"


def describe(
    ctx: Context,
    conn: Connection,
    cand: Candidate,
    name: NameInfo | None,
    identity: Identity,
    info: ProbeResult,
    incoming: store.Incoming,
    session_id: int,
    clock: clockcheck.RecorderClock,
) -> tuple[Recording, str | None]:
    """The file's row (no store path yet) and the badge it is tagged with; ``conn`` reads
    the ledger (who wore the recorder)."""
    cfg = ctx.config
    now = ctx.clock.now()
    start, time_source = recording_time(cand, name, info)
    findings = clockcheck.check(
        clock,
        start=start,
        time_source=time_source,
        name=name,
        info=info,
        mtime=cand.mtime,
        relpath=cand.display,
        station_zone=cfg.station.tz,
    )
    badge = name.badge if name is not None else None
    found = attribution.who(conn, identity.device.id if identity.device else None, start, badge)
    row = Recording(
        station=cfg.station.id,
        session_id=session_id,
        device_id=identity.device.id if identity.device else None,
        device_ref=identity.ref,
        officer_id=found.officer_id,
        badge_hint=badge,
        kind=cand.kind,
        recorded_start=start.astimezone(UTC),
        recorded_end=(start + timedelta(seconds=info.duration_s)).astimezone(UTC)
        if info.duration_s
        else None,
        time_source=time_source,
        duration_s=info.duration_s,
        container=info.container,
        video_codec=info.video_codec,
        audio_codec=info.audio_codec,
        width=info.width,
        height=info.height,
        size_bytes=incoming.size,
        blake3=incoming.blake3,
        source_path=cand.display,
        source_path_raw=cand.raw,
        store_path="",
        ingested_at=now,
        verified=False,
        probe_failed=info.error is not None,
        probe_error=info.error,
        clock_suspect=bool(findings),
        clock_findings=json.dumps([f.as_dict() for f in findings], ensure_ascii=False)
        if findings
        else None,
        unregistered=identity.device is None and identity.conflict is None,
        device_conflict=identity.conflict is not None,
        badge_mismatch=found.badge_mismatch,
        access_class="normal",
        state="stored",
    )
    return row, found.badge if found.officer_id is not None else badge


def badge_mismatch_alert(ctx: Context, session_id: int, relpath: str, file_id: int) -> None:
    """A stored file whose name's badge is not the assigned officer's: lending a recorder
    is forbidden (003 §20(二)). One alert per dock session, each file an occurrence."""
    with ctx.ledger.read() as s:
        row = s.get_one(Recording, file_id)
        assigned = row.officer.badge if row.officer is not None else None
        device, named = row.device_ref, row.badge_hint
    ctx.alerts.raise_alert(
        "officer.badge_mismatch",
        f"{device}:{relpath}",
        f"{relpath} from device {device} carries badge {named} in its name but the device "
        f"is assigned to badge {assigned}: it is attributed to {assigned} and flagged "
        "badge-mismatch; check who wore the recorder and correct the assignment or "
        "`dockd tag FILE_ID --officer BADGE --reason ...`",
        severity="warning",
        details={
            "file_id": file_id,
            "session_id": session_id,
            "device": device,
            "assigned_badge": assigned,
            "name_badge": named,
        },
        group=f"session:{session_id}",
        item=relpath,
    )
