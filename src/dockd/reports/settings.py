"""``[reports]``: thresholds of the compliance reports."""

from __future__ import annotations

from dockd.configbase import Section


class ReportsConfig(Section):
    """Thresholds for late ingest, gaps and untagged footage (R2, R12, R5)."""
