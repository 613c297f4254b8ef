"""One retention sweep as its phases share it: the report, and the pass they hand on.

The sweep's phases (:mod:`dockd.sweeps.retention` refreshes and trashes,
:mod:`dockd.sweeps.purge` purges) each work batch by batch; what they share lives
here, below them both, so each phase is a module of its own: the report that counts
what they did, the run, the sweep's one "now" and trash, the transaction a batch
takes (a read one for a dry run) and the facts the policy decides a batch on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.context import Context
from dockd.ledger.models import Recording
from dockd.policy import adapter as pledger
from dockd.policy.holds import Verdict
from dockd.sweeps.runs import Run, RunStatus, alert_once
from dockd.sweeps.trash import Item

Alert = tuple[str, str, str]  # kind, subject, message: raised once the transaction is over


@dataclass
class RetentionReport:
    """What one sweep did (or, for a dry run, would do), file by file: the command
    prints it, and its counts are the run's summary and its audit event."""

    run_id: int
    dry_run: bool
    policy: str
    status: RunStatus = RunStatus.RUNNING
    refreshed: int = 0
    trashed: list[Item] = field(default_factory=list)
    purged: list[Item] = field(default_factory=list)
    restored: list[Item] = field(default_factory=list)
    kept: list[Item] = field(default_factory=list)
    problems: list[Item] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "refreshed": self.refreshed,
            "trashed": len(self.trashed),
            "purged": len(self.purged),
            "restored": len(self.restored),
            "kept": len(self.kept),
            "problems": len(self.problems),
        }

    def items(self) -> list[Item]:
        return [*self.trashed, *self.purged, *self.restored, *self.kept, *self.problems]


@dataclass
class Pass:
    """One sweep as its phases share it: the run, its report, its time and trash."""

    ctx: Context
    run: Run
    report: RetentionReport
    now: datetime
    trash: Path
    seen: set[int] = field(default_factory=set)  # reported by a dry run's refresh already

    def tx(self) -> contextlib.AbstractContextManager[Session]:
        """A write transaction (the ledger's write lock), or a read one for a dry run."""
        return self.ctx.ledger.read() if self.run.dry_run else self.ctx.ledger.session()

    def verdict(self, s: Session, row: Recording) -> Verdict:
        return pledger.verdict_now(s, row, self.ctx.config.retention, self.now)

    def take(self, s: Session, ids: list[int], state: str) -> tuple[list[Recording], pledger.Facts]:
        """The rows of ``ids`` still in ``state``, locked and ordered against hold
        placement, in the order of ``ids``; and what the policy needs to decide them."""
        pledger.serialize_with_holds(s)
        q = select(Recording).where(Recording.id.in_(ids), Recording.state == state)
        by_id = {r.id: r for r in s.scalars(q.with_for_update())}
        rows = [by_id[i] for i in ids if i in by_id]
        return rows, pledger.facts_of(s, rows)

    @contextlib.contextmanager
    def batch(self, moved: list[tuple[Path, Path]], alerts: list[Alert]) -> Iterator[None]:
        """Around one batch's transaction: if it does not commit, every ``(src, dst)``
        in ``moved`` is renamed back to ``src``, newest first, so the files are where
        the ledger (rolled back) says they are; ``alerts`` are raised either way, once
        the transaction is over."""
        try:
            yield
        except BaseException:
            for src, dst in reversed(moved):
                with contextlib.suppress(OSError):
                    os.rename(dst, src)
            raise
        finally:
            for alert in alerts:
                alert_once(self.ctx, *alert)
