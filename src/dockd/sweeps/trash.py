"""Out of the trash: a file put back in the store, by a person or by the retention sweep.

``restore`` is ``dockd trash restore``: a file the policy would take again at once
comes back only under a hold, placed in the same transaction. ``restore_covered``
brings back every trashed file a newly placed hold covers (``dockd hold add``).
Both, and the retention sweep's purge phase when a trashed file must stay, go
through :func:`restore_row`: the rename back and its audit event, in the caller's
transaction (a failed commit renames the file back into the trash).

:class:`Item` is what the sweep and these actions say about each file they touched.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from dockd.context import Context
from dockd.errors import NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.models import FileState, Hold, Recording
from dockd.policy import adapter as pledger
from dockd.policy import placing
from dockd.policy.holds import Verdict
from dockd.policy.retention import Retention
from dockd.sweeps import locations as loc


class Action(StrEnum):
    """What was done to one file (in a dry run: what would be done)."""

    TRASH = "trash"
    PURGE = "purge"
    RESTORE = "restore"
    KEEP = "keep"
    PROBLEM = "problem"  # it should have moved and could not: an alert says why


@dataclass
class Item:
    """One file the sweep acted on (or would act on, in a dry run), or a person restored."""

    file_id: int
    action: Action
    store_path: str
    blake3: str
    category: str = ""
    rule: str = ""
    note: str = ""
    expires_at: str | None = None

    @classmethod
    def of(cls, row: Recording, action: Action, r: Retention | None = None, note: str = "") -> Item:
        """The item for ``row``, with the category and rule that decided it."""
        return cls(
            file_id=row.id,
            action=action,
            store_path=row.store_path,
            blake3=row.blake3,
            category=r.category if r else "",
            rule=r.rule if r else "",
            note=note,
            expires_at=None if r is None or r.never else r.expires_at.isoformat(),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_row(
    ctx: Context,
    s: Session,
    row: Recording,
    trash: Path,
    now: datetime,
    *,
    actor: str,
    why: str,
    verdict: Verdict,
) -> Item:
    """Move a trashed file back to its place in the store (inside the caller's transaction)."""
    src = trash / (row.trash_path or loc.rel_path(row).as_posix())
    root = loc.root_of(ctx.config, row)
    dst = root / row.store_path
    if dst.exists() or dst.is_symlink():
        raise UsageError(
            f"cannot restore file {row.id}: {dst} is taken in the store; move that file "
            "aside first (it is not in the ledger under this id)"
        )
    if not src.is_file():
        raise NotFound(
            f"file {row.id} should be in the trash at {src} but is not there; it cannot be "
            "restored (check the trash directory)"
        )
    loc.makedirs(root, PurePosixPath(row.store_path).parent)
    os.rename(src, dst)
    try:
        loc.fsync_dir(dst.parent)
        loc.prune_emptied(trash, src.parent)
        from_path = row.trash_path
        row.state = FileState.STORED
        row.trashed_at = None
        row.trash_path = None
        row.expires_at = verdict.retention.expires_at
        audit.record_file_change(
            s,
            row,
            at=now,
            actor=actor,
            action="file.restore",
            changed=("state", "trashed_at", "trash_path"),
            details={
                "hash": {"blake3": row.blake3},
                "path": row.store_path,
                "trash_path": from_path,
                "why": why,
                "held_by": list(verdict.held_by),
                "category": verdict.retention.category,
                "rule": verdict.retention.rule,
            },
        )
        s.flush()
    except BaseException:
        with contextlib.suppress(OSError):
            os.rename(dst, src)
        raise
    return Item.of(row, Action.RESTORE, verdict.retention, why)


def restore(
    ctx: Context,
    file_id: int,
    *,
    by: str,
    reason: str,
    hold_reason: str | None = None,
    hold_text: str | None = None,
) -> Item:
    """``dockd trash restore``: bring a file back from the trash.

    A file that the policy would trash again at once is only restored with a hold
    (``hold_reason``), placed in the same transaction; otherwise it is refused.
    """
    if not by.strip():
        raise UsageError("say who restores the file (--by NAME)")
    if not reason.strip():
        raise UsageError("say why the file is restored (--reason '...')")
    now = ctx.clock.now()
    trash = loc.trash_root(ctx.config)
    with ctx.ledger.session() as s:
        pledger.serialize_with_holds(s)
        row = s.get(Recording, file_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no file with id {file_id}; `dockd trash list` shows the trash")
        if row.state != FileState.TRASHED:
            raise UsageError(
                f"file {file_id} is {row.state}, not in the trash"
                + ("; purged files cannot come back" if row.state == FileState.PURGED else "")
            )
        if hold_reason is not None:
            placing.place_hold(
                s,
                station=ctx.config.station.id,
                at=now,
                by=by,
                reason=hold_reason,
                text_=hold_text or reason,
                file_id=file_id,
            )
        v = pledger.verdict_now(s, row, ctx.config.retention, now)
        if v.delete:
            raise UsageError(
                f"file {file_id} is still expired under the policy ({v.retention.rule}); "
                "restored it would be trashed again by the next sweep. Give --hold REASON to "
                "keep it under a hold, or change its category or case first"
            )
        return restore_row(
            ctx, s, row, trash, now, actor=by, why=f"restored by {by}: {reason}", verdict=v
        )


def restore_covered(ctx: Context, hold_id: int, *, by: str) -> list[Item]:
    """Restore every trashed file a (just placed) hold covers."""
    with ctx.ledger.read() as s:
        hold = s.get(Hold, hold_id)
        if hold is None:
            raise NotFound(f"no hold with id {hold_id}")
        ids = [r.id for r in pledger.covered_files(s, hold, states=(FileState.TRASHED,))]
    return [restore(ctx, file_id, by=by, reason=f"covered by hold #{hold_id}") for file_id in ids]
