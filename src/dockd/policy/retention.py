"""When may a file go? Pure functions of the file's facts, its cases and the policy.

Rules, in the order a reader should hold them in mind:

* every category that applies to a file is weighed, and the **longest wins**: the
  file's own category, the ``case_category`` when it is tagged with a case, the
  category of that case; the ``default_category`` only when none of these applies;
* days are counted from the **end** of the recording (its start when the end is
  unknown), so no second of footage is younger than its retention when it goes;
* a category kept ``until_case_closed`` never expires while the case is open, nor
  when the file has no case to wait for;
* a category the policy does not know never expires: a typo must not delete footage.

Holds are a separate question (:mod:`dockd.policy.holds`): retention ending never
releases a hold, releasing a hold never shortens retention.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockd.config.policy import RetentionConfig

# "Not before something that has not happened yet" (a case closing, a category being
# defined). Stored in files.expires_at so the sweep's indexed ``expires_at <= now``
# never selects such a file; NULL there means "not computed yet".
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class FileFacts:
    """What retention and holds need to know about one file."""

    id: int
    recorded_start: datetime
    recorded_end: datetime | None = None
    category: str | None = None
    case_number: str | None = None
    device_ref: str = ""
    officer_badges: frozenset[str] = frozenset()

    @property
    def recorded_last(self) -> datetime:
        """The last moment of footage in the file."""
        return max(self.recorded_start, self.recorded_end or self.recorded_start)


@dataclass(frozen=True)
class CaseFacts:
    case_number: str
    category: str | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Retention:
    """How long one file is kept, and which rule of which category decided it."""

    expires_at: datetime  # NEVER while it waits for something
    category: str
    rule: str

    @property
    def never(self) -> bool:
        return self.expires_at >= NEVER


def policy_digest(policy: RetentionConfig) -> str:
    """A short fingerprint of the rules that decide expiry: it changes when they do."""
    body = json.dumps(
        {
            "minimum_days": policy.minimum_days,
            "default_category": policy.default_category,
            "case_category": policy.case_category,
            "categories": {n: c.model_dump() for n, c in sorted(policy.categories.items())},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def applicable_categories(
    file: FileFacts, cases: Sequence[CaseFacts], policy: RetentionConfig
) -> list[tuple[str, str]]:
    """(category, why it applies) for every category that applies to ``file``."""
    found: list[tuple[str, str]] = []
    if file.category:
        found.append((file.category, "the file's category"))
    if file.case_number:
        if policy.case_category:
            found.append((policy.case_category, f"tagged with case {file.case_number}"))
        for case in cases:
            if case.case_number == file.case_number and case.category:
                found.append((case.category, f"category of case {file.case_number}"))
    if not found:
        found.append((policy.default_category, "default category"))
    unique: list[tuple[str, str]] = []
    for name, why in found:
        if all(name != other for other, _ in unique):
            unique.append((name, why))
    return unique


def _day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def retention_for(
    name: str, why: str, file: FileFacts, cases: Sequence[CaseFacts], policy: RetentionConfig
) -> Retention:
    """The expiry one category gives one file."""
    cat = policy.categories.get(name)
    if cat is None:
        return Retention(
            NEVER,
            name,
            f"{name} ({why}) is not a category of the policy: kept until it is defined",
        )
    base = file.recorded_last + timedelta(days=cat.days)
    rule = f"{name} ({why}): {cat.days} days from recording ({_day(file.recorded_last)})"
    if not cat.until_case_closed:
        return Retention(base, name, rule)
    if not file.case_number:
        return Retention(NEVER, name, f"{rule}, and until its case is closed: no case tagged")
    mine = [c for c in cases if c.case_number == file.case_number]
    open_ = not mine or any(c.closed_at is None for c in mine)
    if open_:
        return Retention(
            NEVER, name, f"{rule}, and until case {file.case_number} is closed: still open"
        )
    closed = max(c.closed_at for c in mine if c.closed_at is not None)
    after = closed + timedelta(days=cat.after_close_days)
    return Retention(
        max(base, after),
        name,
        f"{rule}, and {cat.after_close_days} days after case {file.case_number} "
        f"was closed ({_day(closed)})",
    )


def retention_of(file: FileFacts, cases: Sequence[CaseFacts], policy: RetentionConfig) -> Retention:
    """The retention of ``file``: the longest of every category that applies."""
    options = [
        retention_for(name, why, file, cases, policy)
        for name, why in applicable_categories(file, cases, policy)
    ]
    return max(options, key=lambda r: r.expires_at)  # first of equals: the file's own wins


def expired(
    file: FileFacts, cases: Sequence[CaseFacts], policy: RetentionConfig, now: datetime
) -> bool:
    return retention_of(file, cases, policy).expires_at <= now


def cases_of(file: FileFacts, cases: Iterable[CaseFacts]) -> list[CaseFacts]:
    return [c for c in cases if file.case_number and c.case_number == file.case_number]
