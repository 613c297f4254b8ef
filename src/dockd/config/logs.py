"""``[logging]``: how much dockd logs, and where: journald's fields, JSON lines or readable ones."""

from __future__ import annotations

from typing import Literal

from dockd.config.base import Section


class LoggingConfig(Section):
    """How much dockd logs, and in which form. ``auto``: journald's native fields when
    stderr is the journal (dockd under systemd), readable lines on a terminal, else JSON
    lines; ``journald`` sends to the journal whatever stderr is."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console", "journald"] = "auto"
