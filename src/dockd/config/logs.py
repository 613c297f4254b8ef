"""``[logging]``: how much dockd logs, and as JSON lines or readable ones."""

from __future__ import annotations

from typing import Literal

from dockd.config.base import Section


class LoggingConfig(Section):
    """How much dockd logs, and in which form (``auto``: readable on a terminal, else JSON)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
