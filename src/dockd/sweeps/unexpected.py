"""Files in the store the ledger does not know: the completeness level of fixity.

The fixity sweep names every file under the store and the quarantine that no
stored row accounts for, except one an ingest is publishing right now (its file
is linked before its row is committed). BagIt calls this completeness; the
re-hash of what the ledger does know is :mod:`dockd.sweeps.fixity`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import structlog
from sqlalchemy import select

from dockd import store
from dockd.context import Context
from dockd.ledger.models import FileState, Recording
from dockd.sweeps import locations as loc

log = structlog.get_logger("dockd.sweeps.fixity")


def unexpected_files(ctx: Context) -> Iterator[tuple[str, Path]]:
    """Every file under the store (and quarantine) that no stored row accounts for: its
    path as shown (relative to the store, ``quarantine/...``) and where it is."""
    roots = [(ctx.config.store.root, False, PurePosixPath())]
    roots.append((ctx.config.store.quarantine_root, True, PurePosixPath(loc.QUARANTINE_PREFIX)))
    for root, unregistered, shown in roots:
        if not root.is_dir():
            continue
        stack = [PurePosixPath()]
        while stack:
            ctx.check_stop()
            rel_dir = stack.pop()
            files: list[str] = []
            try:
                entries = list(os.scandir(root / rel_dir))
            except OSError as exc:
                log.warning("cannot list", dir=str(root / rel_dir), error=str(exc))
                continue
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    if not (rel_dir == PurePosixPath() and e.name == store.INCOMING):
                        stack.append(rel_dir / e.name)
                else:
                    files.append(e.name)
            if not files:
                continue
            paths = [(rel_dir / name).as_posix() for name in sorted(files)]
            for rel in _unaccounted(ctx, root, paths, unregistered):
                yield (shown / rel).as_posix(), root / rel


def _unaccounted(ctx: Context, root: Path, paths: list[str], unregistered: bool) -> list[str]:
    """The ``paths`` (under ``root``) no stored row accounts for, ingests in flight excepted.

    An ingest publishes a file before it commits its row, so a file missing from
    the first look at the ledger may be one being stored right now. In this order:
    the publish markers of live processes (``store.in_flight``), then the ledger
    again: a marker goes only after its row is committed, so a file whose marker
    is gone by now has its row by now. What is left (and still there) is unexpected.
    """
    known = _known(ctx, paths, unregistered)
    missing = [p for p in paths if p not in known]
    if not missing:
        return []
    flying = {p.as_posix() for p in store.in_flight(root)}
    missing = [p for p in missing if p not in flying]
    if not missing:
        return []
    known = _known(ctx, missing, unregistered)
    return [p for p in missing if p not in known and os.path.lexists(root / p)]


def _known(ctx: Context, paths: list[str], unregistered: bool) -> set[str]:
    """Which of ``paths`` are stored rows (equality on the (station, store_path) index,
    right under any collation)."""
    found: set[str] = set()
    with ctx.ledger.read() as s:
        for i in range(0, len(paths), 500):
            found.update(
                s.scalars(
                    select(Recording.store_path).where(
                        Recording.station == ctx.config.station.id,
                        Recording.store_path.in_(paths[i : i + 500]),
                        Recording.state == FileState.STORED,
                        Recording.in_quarantine == unregistered,
                    )
                )
            )
    return found
