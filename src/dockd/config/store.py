"""``[store]``: where originals live, how their paths are built, and which directories
can never be the store or the quarantine.

:func:`relation` says how two places lie to each other (as written and through
symlinks); the whole config uses it to keep everything else dockd writes apart
from the store.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

from pydantic import field_validator

from dockd.config.base import Section

# Placeholders a store path template may use; the template must begin with the
# recording's local date so the store is laid out year / month / day (R4).
TEMPLATE_FIELDS = frozenset(
    {
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "device",
        "badge",
        "station",
        "stem",
        "ext",
        "name",
        "kind",
    }
)

# Directories dockd must never take as its store or quarantine: it would write its
# YYYY/ folders and .incoming/ straight into them. Exactly these; a directory below
# one of them (/tmp/xyz, /var/lib/dockd/store) is fine.
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/lost+found",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/run/media",
        "/sbin",
        "/snap",
        "/srv",
        "/sys",
        "/tmp",  # noqa: S108 (a name refused, not a file used)
        "/usr",
        "/usr/bin",
        "/usr/include",
        "/usr/lib",
        "/usr/lib32",
        "/usr/lib64",
        "/usr/libexec",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/lib",
        "/usr/local/sbin",
        "/usr/local/share",
        "/usr/sbin",
        "/usr/share",
        "/usr/src",
        "/var",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/local",
        "/var/log",
        "/var/mail",
        "/var/opt",
        "/var/run",
        "/var/spool",
        "/var/tmp",  # noqa: S108
    }
)


def _forms(path: Path) -> tuple[Path, Path]:
    """The path normalised as written (``..`` folded) and with symlinks resolved."""
    lexical = Path(os.path.normpath(os.path.abspath(path)))
    return lexical, Path(os.path.realpath(lexical))


def _system_dir(path: Path) -> str | None:
    """The system directory ``path`` is (as written or through a symlink), else None."""
    for form in _forms(path):
        if str(form) in SYSTEM_DIRS:
            return str(form)
    return None


def _own_directory(value: Any, what: str, example: str) -> Any:
    """Refuse an empty path, ``/`` or a system directory for a place dockd fills."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"must not be empty: give the directory {what}, e.g. {example}")
    if isinstance(value, str | Path):
        system = _system_dir(Path(value))
        if system is not None:
            kind = "the filesystem root" if system == "/" else f"the system directory {system}"
            seen = "" if os.path.normpath(str(value)) == system else f" ({value} is {system})"
            raise ValueError(
                f"{kind}{seen} cannot be the directory {what}: dockd writes its YYYY/ "
                f"folders and .incoming/ straight into it; give a directory of its own, "
                f"e.g. {example}"
            )
    return value


class StoreConfig(Section):
    """Where originals live and how their paths are built."""

    root: Path = Path("/var/lib/dockd/store")
    path_template: str = "{year}/{month}/{day}/{device}/{name}"
    quarantine: Path | None = None  # default: <root>/../quarantine

    @field_validator("root", mode="before")
    @classmethod
    def _root_own(cls, value: Any) -> Any:
        return _own_directory(value, "of the store", "/var/lib/dockd/store")

    @field_validator("quarantine", mode="before")
    @classmethod
    def _quarantine_own(cls, value: Any) -> Any:
        return _own_directory(value, "of the quarantine", "/var/lib/dockd/quarantine")

    @field_validator("path_template")
    @classmethod
    def _template_ok(cls, value: str) -> str:
        names = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        unknown = sorted({n for n in names if n not in TEMPLATE_FIELDS})
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {unknown}; allowed: {sorted(TEMPLATE_FIELDS)}"
            )
        if not value.startswith("{year}/{month}/{day}/"):
            raise ValueError("must begin with '{year}/{month}/{day}/' (store by recording day)")
        if "{name}" not in value and "{stem}" not in value:
            raise ValueError("must contain '{name}' or '{stem}' so stored files keep their names")
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be relative to the store root and must not contain '..'")
        return value

    @property
    def quarantine_root(self) -> Path:
        return self.quarantine if self.quarantine is not None else self.root.parent / "quarantine"


def relation(path: Path, other: Path, *, file: bool = False) -> str | None:
    """How ``path`` lies to the directory ``other``: same, inside, containing, or None."""
    for a, b in zip(_forms(path), _forms(other), strict=True):
        if a == b:
            return "is the same path as" if file else "is the same directory as"
        if a.is_relative_to(b):
            return "is inside"
        if not file and b.is_relative_to(a):
            return "contains"
    return None
