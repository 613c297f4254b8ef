"""``[retention]``, ``[archive]``, ``[fixity]``, ``[schedule]``: how long footage lives and
how it is kept safe."""

from __future__ import annotations

from dockd.configbase import Section


class RetentionConfig(Section):
    """Retention categories and the floor no category may go below (R6)."""


class ArchiveConfig(Section):
    """Archive targets for held / evidence footage (R8)."""


class FixityConfig(Section):
    """How often and how fast the store is re-hashed (R9)."""


class ScheduleConfig(Section):
    """Cron-style schedules of the sweeps inside ``dockd run``."""
