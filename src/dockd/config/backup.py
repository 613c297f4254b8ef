"""``[backup]``: the ledger backup ``dockd run`` makes on a schedule (off by default).

Each run is ``dockd ledger backup DEST`` into ``dest``, a file named
``ledger-<station>-<UTC time>.sqlite3`` (``.pgdump`` for PostgreSQL), verified like
``dockd audit verify``; then all but the ``keep`` newest backups of this station in
``dest`` are deleted. A failed run raises an alert. The schedule is read as the
sweeps' are (:func:`dockd.config.policy.cron_fields`), in ``[station] timezone``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from dockd.config.base import AbsolutePath, Section
from dockd.config.policy import Crontab


class BackupConfig(Section):
    """When and where ``dockd run`` backs the ledger up, and how many backups it keeps."""

    # A crontab expression (minute hour day-of-month month day-of-week), read in
    # [station] timezone; "" (the default) makes no scheduled backup.
    schedule: Crontab = ""
    # The directory the backups are written to (absolute); needed with a schedule.
    # Best on another disk than the ledger, and not inside the store.
    dest: AbsolutePath | None = None
    # Keep this many newest backups of this station in dest; older ones are deleted.
    keep: Annotated[int, Field(ge=1, le=10_000)] = 14

    @model_validator(mode="after")
    def _dest_with_schedule(self) -> BackupConfig:
        if self.schedule and self.dest is None:
            raise ValueError(
                'a backup schedule needs dest = "/absolute/directory" to write the backups to'
            )
        return self
