"""``[handover]``: the quarterly hand-over of long-kept footage to the archivist (R3).

004 管理办法 §11, §12(一): footage that must be kept long-term is handed over to the
archive every quarter. ``dockd run`` checks on ``schedule`` (daily by default) and
makes the package of the quarter just ended at the first check after it ends, so a
day the daemon was down only delays it (``dockd handover --quarter 2026Q4`` makes
one by hand): a verified BagIt bag of the originals under ``root`` with a hand-over
record to be signed.
"""

from __future__ import annotations

from dockd.config.base import AbsolutePath, Section
from dockd.config.policy import Crontab


class HandoverConfig(Section):
    """When the quarter's package is made, where, and which footage it holds."""

    # When to check (a crontab expression read in [station] timezone; "" never): the
    # quarter just ended is handed over at the first check after it ends.
    schedule: Crontab = "0 6 * * *"
    # Where the packages go, one directory per quarter. Default: <store.root>/../handover.
    root: AbsolutePath | None = None
    # What "kept long-term" means: files in these retention categories ...
    categories: tuple[str, ...] = ("evidence",)
    # ... and files tagged with a case, and files under an active hold.
    include_cases: bool = True
    include_held: bool = True
