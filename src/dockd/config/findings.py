"""What ``dockd config check`` found beyond the file itself: one :class:`Finding` per
problem, naming the config key, the place, and what to do.

An error is something the daemon will fail on (exit non-zero); a warning is something a
person should know (a removable archive target that is not plugged in right now).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    OK = "ok"


@dataclass(frozen=True)
class Finding:
    level: Level
    key: str  # the config key it is about: "[store] root", "[archive.targets] usb path"
    message: str  # the place, what is wrong (or right), and what to do

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
