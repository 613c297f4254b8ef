"""``[reports]``: thresholds of the compliance reports."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dockd.configbase import Section


class ReportsConfig(Section):
    """Thresholds for late ingest, gaps and untagged footage (R2, R12, R5)."""

    # A recording ingested more than this long after it ended is late (R2: 24 h).
    late_ingest_hours: Annotated[float, Field(gt=0)] = 24.0
    # Two consecutive clips of one device further apart than this are a gap (R12).
    gap_minutes: Annotated[float, Field(gt=0)] = 10.0
    # Footage still without a case this many days after recording is listed.
    untagged_days: Annotated[int, Field(ge=0)] = 7
