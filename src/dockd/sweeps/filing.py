"""The filing check of closed cases, run by the archive sweep (004 全过程 §25): a
closed case's footage must be filed (archived, or handed over) within
``[archive] case_filing_days`` of the close (:mod:`dockd.evidence.casefiling`)."""

from __future__ import annotations

from datetime import timedelta

from dockd.context import Context
from dockd.evidence import casefiling
from dockd.ledger.models import Severity
from dockd.sweeps.runs import alert_once


def unfiled_cases(ctx: Context) -> None:
    """One ``case.not_filed`` alert per closed case past its filing date (004 全过程 §25)."""
    now = ctx.clock.now()
    days = ctx.config.archive.case_filing_days
    with ctx.ledger.read() as s:
        late = [
            f
            for f in casefiling.filing(s, ctx.config, closed_before=now - timedelta(days=days))
            if f.unfiled
        ]
    tz = ctx.config.station.tz
    for f in late:
        alert_once(
            ctx,
            "case.not_filed",
            f.case_number,
            f"case {f.case_number} closed on {f.closed_at.astimezone(tz):%Y-%m-%d}: {f.unfiled} "
            f"of its {f.files} file(s) are not filed {days} days later (no archive copy, in "
            "no hand-over); configure an [archive] target, or hand them over "
            "(`dockd handover`), see `dockd report case-filing`",
            severity=Severity.WARNING,
            details={"case": f.case_number, "unfiled": f.unfiled, "files": f.files},
        )
