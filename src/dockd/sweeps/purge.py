"""The retention sweep's last phase: files trashed longer than the grace period go for good.

Each file is decided again first (a hold placed, or a case reopened, since it was
trashed): one that must stay is restored to the store instead, and the restores of a
batch come before any unlink, so a failed restore stops the batch with nothing lost.
A purge unlinks the file from the trash and its case links; if other hard links
still hold its bytes, the event says so and an alert asks for them to be found.
The phases before it, and what the sweep as a whole promises, are in
:mod:`dockd.sweeps.retention`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dockd.ledger import audit
from dockd.ledger.models import FileState, Recording
from dockd.policy.holds import Verdict
from dockd.sweeps import locations as loc
from dockd.sweeps.retention_pass import Alert, Pass
from dockd.sweeps.trash import Action, Item, restore_row


def purge_batch(p: Pass, ids: list[int]) -> None:
    """Purge a batch of files trashed longer than the grace period, in one transaction;
    each decided again, and restored instead when it must stay (restores go first, so
    one that fails stops the batch before any file is unlinked)."""
    ctx, report = p.ctx, p.report
    alerts: list[Alert] = []
    emptied: set[Path] = set()  # directories a file left: pruned once each at the end
    restored: list[tuple[Path, Path]] = []  # (trash, store) of the files moved back
    # If the batch's rows are rolled back, ``p.batch`` moves the files it put back in the
    # store to the trash again, where their rows say they are (a file already unlinked
    # is found gone by the next sweep, and its purge says so).
    with p.batch(restored, alerts), p.tx() as s:
        rows, facts = p.take(s, ids, FileState.TRASHED)
        decided = [(row, facts.verdict(row.id, ctx.config.retention, p.now)) for row in rows]
        for row, v in decided:
            if v.delete:
                continue
            if p.run.dry_run:
                item = Item.of(row, Action.RESTORE, v.retention, f"would restore: {v.why}")
            else:
                moved = (
                    p.trash / (row.trash_path or loc.rel_path(row).as_posix()),
                    loc.root_of(ctx.config, row) / row.store_path,
                )
                item = restore_row(
                    ctx, s, row, p.trash, p.now, actor=ctx.actor, why=v.why, verdict=v
                )
                restored.append(moved)
            report.restored.append(item)
        events: list[audit.Event] = []
        for row, v in decided:
            if not v.delete:
                continue
            if p.run.dry_run:
                report.purged.append(Item.of(row, Action.PURGE, v.retention, "would be purged"))
                continue
            note, alert = _unlink(p, row, emptied)
            if alert is not None:
                alerts.append(alert)
            events.append(_purged(p, row, v, note))
            report.purged.append(Item.of(row, Action.PURGE, v.retention, note))
        unsynced: set[Path] = set()
        for folder in sorted(emptied, key=lambda f: len(f.parts), reverse=True):
            loc.prune_emptied(p.trash, folder, unsynced=unsynced)
        loc.fsync_dirs(unsynced)
        audit.record_many(s, events)


def _unlink(p: Pass, row: Recording, emptied: set[Path]) -> tuple[str, Alert | None]:
    """Remove a trashed file for good; a note for its event, and an alert if its bytes live on."""
    path = p.trash / (row.trash_path or loc.rel_path(row).as_posix())
    loc.drop_case_links(p.ctx.config, row, path)
    try:
        links = os.lstat(path).st_nlink
        os.unlink(path)
    except FileNotFoundError:
        return f"{path} was already gone from the trash", None
    emptied.add(path.parent)
    if links <= 1:
        return "", None
    return f"{links - 1} other hard link(s) to it remain outside the trash", (
        "retention.links_remain",
        row.store_path,
        f"file {row.id} ({row.store_path}) was purged but {links - 1} other hard "
        "link(s) still hold its bytes; find them (find / -samefile) and remove them",
    )


def _purged(p: Pass, row: Recording, v: Verdict, note: str) -> audit.Event:
    """The file is gone: set its row; its event."""
    row.state = FileState.PURGED
    row.purged_at = p.now
    return audit.file_change(
        row,
        p.now,
        p.ctx.actor,
        "file.purge",
        ("state", "purged_at"),
        {
            "hash": {"blake3": row.blake3},
            "path": row.store_path,
            "trash_path": row.trash_path,
            "trashed_at": row.trashed_at.isoformat() if row.trashed_at else None,
            "policy": p.report.policy,
            "category": v.retention.category,
            "rule": v.retention.rule,
            "grace_days": p.ctx.config.retention.trash_grace_days,
            "note": note or None,
            "sweep_run": p.run.id,
        },
    )
