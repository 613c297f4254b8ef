"""``[ingest]``: what counts as a recording and how carefully it is copied."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from dockd.config.base import Section


def _lower_exts(values: Sequence[str]) -> tuple[str, ...]:
    out = []
    for v in values:
        v = v.strip().lower().lstrip(".")
        if not v or "/" in v:
            raise ValueError(f"bad extension {v!r}")
        out.append(v)
    return tuple(out)


class IngestConfig(Section):
    """What counts as a recording and how carefully it is copied."""

    video_extensions: tuple[str, ...] = ("mp4", "mov", "avi", "mkv", "ts", "3gp")
    audio_extensions: tuple[str, ...] = ("wav", "mp3", "aac", "m4a", "amr")
    photo_extensions: tuple[str, ...] = ("jpg", "jpeg", "png")
    verify: Literal["none", "reread"] = "reread"
    unknown_device: Literal["quarantine", "refuse"] = "quarantine"
    # A recorder whose evidence (ID file, filesystem UUID/label, USB serial, file names)
    # points at two different registered devices.
    device_conflict: Literal["quarantine", "refuse"] = "quarantine"
    id_files: tuple[str, ...] = ("DEVICE.ID", "SYSTEM/devinfo.txt", "devinfo.txt")
    copy_buffer_kib: Annotated[int, Field(ge=16, le=65536)] = 1024
    clock_tolerance_hours: Annotated[float, Field(ge=0)] = 24.0
    # How far a recorder's clock may be off when it is measured (its time file, its
    # last dock) before its files are clock-suspect.
    clock_drift_minutes: Annotated[float, Field(ge=0)] = 10.0
    # Dates recorders' clocks fall back to when reset; times within 31 days after one
    # are clock-suspect. A brand's own (firmware build date): [[naming]] reset_dates.
    clock_reset_dates: tuple[date, ...] = (date(1970, 1, 1), date(1980, 1, 1), date(2000, 1, 1))

    _norm = field_validator(
        "video_extensions", "audio_extensions", "photo_extensions", mode="after"
    )(classmethod(lambda cls, v: _lower_exts(v)))

    @field_validator("id_files")
    @classmethod
    def _relative(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for v in value:
            if v.startswith("/") or ".." in Path(v).parts:
                raise ValueError(f"{v!r} must be a path inside the recorder, without '..'")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> IngestConfig:
        seen: dict[str, str] = {}
        for kind in ("video", "audio", "photo"):
            for ext in getattr(self, f"{kind}_extensions"):
                if ext in seen:
                    raise ValueError(f"extension {ext!r} is listed as both {seen[ext]} and {kind}")
                seen[ext] = kind
        return self

    def kind_of(self, suffix: str) -> str | None:
        """``video``/``audio``/``photo`` for a file suffix, or None when not a recording."""
        ext = suffix.lower().lstrip(".")
        for kind in ("video", "audio", "photo"):
            if ext in getattr(self, f"{kind}_extensions"):
                return kind
        return None
