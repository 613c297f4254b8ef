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

from dockd.config.policy import RetentionConfig
from dockd.policy.retention import CaseFacts, FileFacts, Retention, retention_of

# R7: evidence; complaint / objection / petition; reconsideration; lawsuit; obstruction
# or violence against officers; emergencies and mass incidents; major or complex cases.
REASONS: tuple[str, ...] = (
    "evidence",
    "complaint",
    "reconsideration",
    "litigation",
    "obstruction",
    "emergency",
    "major_case",
    "other",
)
REASON_ALIASES = {
    "objection": "complaint",
    "petition": "complaint",
    "lawsuit": "litigation",
    "violence": "obstruction",
    "mass_incident": "emergency",
    "mass-incident": "emergency",
    "major-case": "major_case",
    "complex_case": "major_case",
}
SCOPES: tuple[str, ...] = ("file", "case", "device", "officer")


def normalize_reason(value: str) -> str:
    """A reason from :data:`REASONS` (aliases accepted), or ValueError naming the choices."""
    key = value.strip().lower()
    key = REASON_ALIASES.get(key, key)
    if key not in REASONS:
        raise ValueError(
            f"{value!r} is not a hold reason; use one of {', '.join(REASONS)} "
            "(mass incidents are 'emergency'; anything else is 'other' with a text)"
        )
    return key


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
    """The recording overlaps the hold's window (open ends reach forever)."""
    if hold.window_from is not None and file.recorded_last < hold.window_from:
        return False
    return hold.window_until is None or file.recorded_start < hold.window_until


def covers(hold: HoldFacts, file: FileFacts) -> bool:
    """Whether ``hold`` is about ``file`` (active or not)."""
    if hold.scope == "file":
        return hold.file_id == file.id
    if hold.scope == "case":
        return bool(file.case_number) and hold.case_number == file.case_number
    if hold.scope == "device":
        return hold.device_ref == file.device_ref and _in_window(hold, file)
    if hold.scope == "officer":
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
