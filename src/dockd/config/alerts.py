"""``[alerts]``: where alerts go besides the ledger."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dockd.config.base import Section


class AlertsConfig(Section):
    """Where alerts go besides the ledger: a command fed each alert as JSON on stdin."""

    notify_command: tuple[str, ...] = ()
    notify_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
