"""``dockd ledger query`` reads plain columns, not ORM objects (issue 16: one officer's
month at ten million rows). On SQLite and PostgreSQL each file's JSON record is still
what the file's row says: every field, the officer's badge or the name's badge, each
flag, ``empty``, the clock findings, and times to the microsecond in the station's zone,
also across a daylight-saving change."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.models import FileState, Recording
from dockd.ledger.queries import FILE_FIELDS, FileFilter, find_files
from fixtures.make_recorder import Recorder
from tests.helpers.ledgers import BACKENDS, register

BERLIN = ZoneInfo("Europe/Berlin")  # a zone with a daylight-saving change


def _from_object(row: Recording, tz: ZoneInfo) -> dict[str, Any]:
    """The record as the file's ORM object gives each fact."""

    def local(ts: datetime | None) -> str | None:
        return ts.astimezone(tz).isoformat() if ts is not None else None

    return {
        "id": row.id,
        "station": row.station,
        "device": row.device_ref,
        "officer": row.officer.badge if row.officer is not None else row.badge_hint,
        "case": row.case_number,
        "case_cause": row.case_cause,
        "party": row.party,
        "category": row.category,
        "access_class": row.access_class,
        "kind": row.kind,
        "recorded_at": local(row.recorded_start),
        "recorded_end": local(row.recorded_end),
        "time_source": row.time_source,
        "duration_s": row.duration_s,
        "container": row.container,
        "video_codec": row.video_codec,
        "audio_codec": row.audio_codec,
        "width": row.width,
        "height": row.height,
        "size_bytes": row.size_bytes,
        "blake3": row.blake3,
        "store_path": row.store_path,
        "source_path": row.source_path,
        "ingested_at": local(row.ingested_at),
        "session_id": row.session_id,
        "verified": row.verified,
        "flags": row.flags,
        "clock_findings": json.loads(row.clock_findings) if row.clock_findings else [],
        "state": row.state,
    }


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_each_record_is_what_the_files_row_says(
    ctx: Context, clock: FixedClock, recorder: Recorder
) -> None:
    register(ctx.ledger, clock, recorder)
    result = run_ingest(ctx, recorder.root)
    assert result.count("stored") >= 5
    with ctx.ledger.session() as s:
        rows = list(s.scalars(select(Recording).where(Recording.size_bytes > 0)))
        # Make the rows say everything a record can: an officer-less file named by its
        # badge, every flag, an empty file, clock findings, a trashed file, and times
        # on both sides of Berlin's change to summer time (2026-03-29 01:00 UTC).
        first, second, third, *_ = rows
        first.officer_id, first.badge_hint = None, "777777"
        for name in ("probe_failed", "clock_suspect", "badge_mismatch"):
            setattr(first, name, True)
        first.recorded_start = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)
        first.recorded_end = datetime(2026, 3, 29, 1, 0, 0, 1, tzinfo=UTC)
        second.unregistered, second.device_conflict, second.size_bytes = True, True, 0
        second.clock_findings = json.dumps([{"check": "ahead", "evidence": "2 h"}])
        second.recorded_start = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
        third.state = FileState.TRASHED.value
    tz = BERLIN
    with ctx.ledger.read() as s:
        everything = find_files(s, FileFilter(include_removed=True), tz)
        stored = find_files(s, FileFilter(), tz)
        objects = {r.id: r for r in s.scalars(select(Recording))}
        expected = [
            _from_object(objects[i], tz)
            for i in sorted(objects, key=lambda i: (objects[i].recorded_start, i))
        ]
    assert everything == expected
    assert [r["id"] for r in stored] == [r["id"] for r in expected if r["id"] != third.id]
    assert all(list(r) == list(FILE_FIELDS) for r in everything)
    by_id = {r["id"]: r for r in everything}
    one, two = by_id[first.id], by_id[second.id]
    assert one["officer"] == "777777"
    assert one["flags"] == ["probe-failed", "clock-suspect", "badge-mismatch"]
    assert one["recorded_at"] == "2026-03-29T01:59:59.999999+01:00"
    assert one["recorded_end"] == "2026-03-29T03:00:00.000001+02:00"
    assert two["flags"] == ["unregistered", "device-conflict", "empty"]
    assert two["clock_findings"] == [{"check": "ahead", "evidence": "2 h"}]
    assert two["recorded_at"] == "2026-03-29T03:00:00+02:00"
    assert by_id[third.id]["state"] == "trashed"
    assert {r["officer"] for r in everything if r["id"] != first.id} == {recorder.badge}
    assert ["empty"] in [r["flags"][-1:] for r in everything]  # the recorder's empty clip
