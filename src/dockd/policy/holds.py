"""Which holds cover a file, and the one decision the retention sweep acts on.

A hold is checked **before** anything else (as S3 Object Lock checks a legal hold
before retention): while any hold covering a file is active, the file is not
deleted, whatever its retention says. Retention ending never releases a hold;
releasing a hold never shortens retention, because holds and retention are two
separate answers that are only combined here, at the moment of deciding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dockd.config.policy import RetentionConfig
from dockd.policy.retention import CaseFacts, FileFacts, Retention, retention_of


class HoldReason(StrEnum):
    """Why footage is held (R7), as stored in ``holds.reason``."""

    EVIDENCE = "evidence"
    COMPLAINT = "complaint"  # also an objection or a petition
    RECONSIDERATION = "reconsideration"
    LITIGATION = "litigation"
    OBSTRUCTION = "obstruction"  # or violence against officers
    EMERGENCY = "emergency"  # emergencies and mass incidents
    MAJOR_CASE = "major_case"  # major or complex cases
    OTHER = "other"  # with a text saying why


REASON_ALIASES = {
    "objection": HoldReason.COMPLAINT,
    "petition": HoldReason.COMPLAINT,
    "lawsuit": HoldReason.LITIGATION,
    "violence": HoldReason.OBSTRUCTION,
    "mass_incident": HoldReason.EMERGENCY,
    "mass-incident": HoldReason.EMERGENCY,
    "major-case": HoldReason.MAJOR_CASE,
    "complex_case": HoldReason.MAJOR_CASE,
}


class HoldScope(StrEnum):
    """What a hold is on (``holds.scope``); a device or officer hold also has a window."""

    FILE = "file"
    CASE = "case"
    DEVICE = "device"
    OFFICER = "officer"


def normalize_reason(value: str) -> HoldReason:
    """A :class:`HoldReason` (aliases accepted), or ValueError naming the choices."""
    key = value.strip().lower()
    try:
        return REASON_ALIASES.get(key) or HoldReason(key)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a hold reason; use one of {', '.join(HoldReason)} "
            "(mass incidents are 'emergency'; anything else is 'other' with a text)"
        ) from None


@dataclass(frozen=True)
class HoldFacts:
    id: int
    reason: str
    scope: str
    file_id: int | None = None
    case_number: str | None = None
    device_ref: str | None = None
    officer_badge: str | None = None
    window_from: datetime | None = None
    window_until: datetime | None = None
    released_at: datetime | None = None

    def active(self, at: datetime) -> bool:
        return self.released_at is None or self.released_at > at


def _in_window(hold: HoldFacts, file: FileFacts) -> bool:
    """The recording overlaps the hold's window (open ends reach forever).

    A recording time that is not trusted (a reset clock stamps 2000-01-01) says
    nothing: all that is known is that it was recorded before its ingest, so it is
    covered when it was ingested at or after the window's start.
    """
    if not file.time_trusted and (
        hold.window_from is None or file.ingested_at is None or file.ingested_at >= hold.window_from
    ):
        return True
    if hold.window_from is not None and file.recorded_last < hold.window_from:
        return False
    return hold.window_until is None or file.recorded_start < hold.window_until


def covers(hold: HoldFacts, file: FileFacts) -> bool:
    """Whether ``hold`` is about ``file`` (active or not)."""
    if hold.scope == HoldScope.FILE:
        return hold.file_id == file.id
    if hold.scope == HoldScope.CASE:
        return bool(file.case_number) and hold.case_number == file.case_number
    if hold.scope == HoldScope.DEVICE:
        return hold.device_ref == file.device_ref and _in_window(hold, file)
    if hold.scope == HoldScope.OFFICER:
        return hold.officer_badge in file.officer_badges and _in_window(hold, file)
    return True  # an unknown scope holds everything rather than nothing


def holds_on(file: FileFacts, holds: Sequence[HoldFacts], at: datetime) -> list[HoldFacts]:
    """The active holds covering ``file`` at ``at``."""
    return [h for h in holds if h.active(at) and covers(h, file)]


@dataclass(frozen=True)
class Verdict:
    """Whether the retention sweep may take a file now, and why (or why not)."""

    delete: bool
    retention: Retention
    held_by: tuple[int, ...]
    why: str


def decide(
    file: FileFacts,
    cases: Sequence[CaseFacts],
    holds: Sequence[HoldFacts],
    policy: RetentionConfig,
    now: datetime,
) -> Verdict:
    """The sweep's question, answered: holds first, then retention."""
    retention = retention_of(file, cases, policy)
    held = holds_on(file, holds, now)
    if held:
        ids = tuple(h.id for h in held)
        reasons = ", ".join(f"#{h.id} ({h.reason})" for h in held)
        return Verdict(False, retention, ids, f"held by {reasons}")
    if retention.expires_at > now:
        return Verdict(False, retention, (), f"kept until {retention.expires_at.isoformat()}")
    return Verdict(True, retention, (), f"expired: {retention.rule}")


def select_for_deletion(
    files: Sequence[FileFacts],
    cases: Sequence[CaseFacts],
    holds: Sequence[HoldFacts],
    policy: RetentionConfig,
    now: datetime,
) -> list[tuple[FileFacts, Verdict]]:
    """The files the retention sweep may take at ``now``, with the verdict for each."""
    out = []
    for f in files:
        v = decide(f, cases, holds, policy, now)
        if v.delete:
            out.append((f, v))
    return out
