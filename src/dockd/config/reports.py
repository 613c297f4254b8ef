"""``[reports]``: thresholds of the compliance reports, and where the per-case view lives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from dockd.config.base import Section


class ReportsConfig(Section):
    """Thresholds for late ingest, gaps and untagged footage (R2, R12, R5)."""

    # A recording ingested more than this long after it ended is late (R2: 24 h).
    late_ingest_hours: Annotated[float, Field(gt=0)] = 24.0
    # Two consecutive clips of one device further apart than this are a gap (R12).
    gap_minutes: Annotated[float, Field(gt=0)] = 10.0
    # Footage still without a case this many days after recording is listed.
    untagged_days: Annotated[int, Field(ge=0)] = 7
    # A unit holds at least one recorder in service per this many officers (004
    # 管理办法 §3: three; five where the agency's rule allows): `dockd report coverage`.
    officers_per_device: Annotated[int, Field(ge=1)] = 3
    # A gap still without a written explanation this many days after it ended raises
    # an alert (the scheduled duties check; R12).
    explain_gaps_within_days: Annotated[int, Field(ge=0)] = 7
    # Root of the read-only per-case view of each day (R4): hard links to the originals
    # under <by_case_root>/<case>/<YYYY>/<MM>/<DD>/. Default: <store.root>/../by-case.
    # Must be on the same filesystem as the store (hard links).
    by_case_root: Path | None = None

    @field_validator("by_case_root")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path (on the same filesystem as the store)")
        return value
