"""When may a file go? Pure functions of the file's facts, its cases and the policy.

Rules, in the order a reader should hold them in mind:

* every category that applies to a file is weighed, and the **longest wins**: the
  file's own category, the ``case_category`` when it is tagged with a case, the
  category of that case; the ``default_category`` only when none of these applies;
* days are counted from the **end** of the recording (its start when the end is
  unknown), so no second of footage is younger than its retention when it goes;
  months are calendar months in the station's zone (1 July + 6 = 1 January,
  31 August + 6 = the last day of February);
* a recording time that is not trusted (the file is ``clock_suspect``, or its time
  came only from the file's mtime) is not counted from: the file is counted from
  its **ingest** (or its recording, if that is later) until the time is corrected;
* whatever the recording time says, no file goes within the floor
  (``minimum_days`` / ``minimum_months``) of its **ingest**;
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
from datetime import UTC, datetime, timedelta, tzinfo

from dockd.config.policy import Category, RetentionConfig, add_months

# "Not before something that has not happened yet" (a case closing, a category being
# defined). Stored in files.expires_at so the sweep's indexed ``expires_at <= now``
# never selects such a file; NULL there means "not computed yet".
NEVER = datetime(9999, 12, 31, tzinfo=UTC)

# Where a recording time came from that is not trusted to count retention from: the
# file's mtime (set by the same recorder clock, and by anything that copied the file).
UNTRUSTED_SOURCES = frozenset({"mtime"})


class Basis:
    """Which clock a retention was counted from (``counted from`` in the listings)."""

    RECORDED = "recorded"
    INGESTED = "ingested"


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
    ingested_at: datetime | None = None  # None: not known, no floor from ingest
    clock_suspect: bool = False
    time_source: str = "container"

    @property
    def recorded_last(self) -> datetime:
        """The last moment of footage in the file."""
        return max(self.recorded_start, self.recorded_end or self.recorded_start)

    @property
    def time_trusted(self) -> bool:
        """Whether retention may be counted from the recording time."""
        return not self.clock_suspect and self.time_source not in UNTRUSTED_SOURCES

    def counted_from(self) -> tuple[datetime, str]:
        """The moment a category's length is counted from, and which clock it is."""
        if self.time_trusted or self.ingested_at is None or self.ingested_at <= self.recorded_last:
            return self.recorded_last, Basis.RECORDED
        return self.ingested_at, Basis.INGESTED


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
    counted_from: str = Basis.RECORDED  # which clock decided expires_at

    @property
    def never(self) -> bool:
        return self.expires_at >= NEVER


def policy_digest(policy: RetentionConfig) -> str:
    """A short fingerprint of the rules that decide expiry: it changes when they do."""
    rules: dict[str, object] = {
        "minimum_days": policy.minimum_days,
        "default_category": policy.default_category,
        "case_category": policy.case_category,
        "categories": {
            n: c.model_dump(exclude_none=True) for n, c in sorted(policy.categories.items())
        },
        "basis": 2,  # counted from ingest when the clock is not trusted, floor from ingest
    }
    if policy.minimum_months is not None or any(
        c.months is not None for c in policy.categories.values()
    ):
        rules |= {"minimum_months": policy.minimum_months, "zone": policy.zone.key}
    body = json.dumps(
        rules,
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


def _day(at: datetime, zone: tzinfo) -> str:
    return at.astimezone(zone).date().isoformat()


def months_after(at: datetime, months: int, zone: tzinfo) -> datetime:
    """``at`` plus calendar months in ``zone``: the same wall-clock time that many months
    on (the end of a month clamps), whatever daylight saving did in between."""
    local = at.astimezone(zone)
    try:
        day = add_months(local.date(), months)
    except (ValueError, OverflowError):  # past year 9999: a clock far in the future
        return NEVER
    wall = datetime.combine(day, local.time())
    # A wall-clock time in a fall-back fold happens twice: the later one, never short.
    return max(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))


def length_after(at: datetime, cat: Category, zone: tzinfo) -> datetime:
    """The end of a category's length counted from ``at``."""
    if cat.months is not None:
        return months_after(at, cat.months, zone)
    return _plus_days(at, cat.days or 0)


def _plus_days(at: datetime, days: int) -> datetime:
    try:
        return at + timedelta(days=days)
    except OverflowError:  # past year 9999: a clock far in the future
        return NEVER


def _why_counted(file: FileFacts) -> str:
    why = "clock suspect" if file.clock_suspect else f"time from {file.time_source}"
    return f"recording time not trusted ({why})"


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
    zone = policy.zone
    start, basis = file.counted_from()
    base = length_after(start, cat, zone)
    if basis == Basis.RECORDED:
        rule = f"{name} ({why}): {cat.length} from recording ({_day(start, zone)})"
    else:
        rule = (
            f"{name} ({why}): {cat.length} from ingest ({_day(start, zone)}), {_why_counted(file)}"
        )
    if not cat.until_case_closed:
        return Retention(base, name, rule, basis)
    if not file.case_number:
        return Retention(
            NEVER, name, f"{rule}, and until its case is closed: no case tagged", basis
        )
    mine = [c for c in cases if c.case_number == file.case_number]
    open_ = not mine or any(c.closed_at is None for c in mine)
    if open_:
        return Retention(
            NEVER, name, f"{rule}, and until case {file.case_number} is closed: still open", basis
        )
    closed = max(c.closed_at for c in mine if c.closed_at is not None)
    after = closed + timedelta(days=cat.after_close_days)
    return Retention(
        max(base, after),
        name,
        f"{rule}, and {cat.after_close_days} days after case {file.case_number} "
        f"was closed ({_day(closed, zone)})",
        basis,
    )


def ingest_floor(file: FileFacts, policy: RetentionConfig) -> datetime | None:
    """The earliest a file may go counted from its ingest: the floor, whatever its clock."""
    if file.ingested_at is None:
        return None
    floor = _plus_days(file.ingested_at, policy.minimum_days)
    if policy.minimum_months is not None:
        floor = max(floor, months_after(file.ingested_at, policy.minimum_months, policy.zone))
    return floor


def _floor_text(policy: RetentionConfig) -> str:
    if policy.minimum_months is not None:
        return f"minimum_months = {policy.minimum_months}"
    return f"minimum_days = {policy.minimum_days}"


def retention_of(file: FileFacts, cases: Sequence[CaseFacts], policy: RetentionConfig) -> Retention:
    """The retention of ``file``: the longest of every category that applies."""
    options = [
        retention_for(name, why, file, cases, policy)
        for name, why in applicable_categories(file, cases, policy)
    ]
    best = max(options, key=lambda r: r.expires_at)  # first of equals: the file's own wins
    floor = ingest_floor(file, policy)
    if floor is None or floor <= best.expires_at:
        return best
    assert file.ingested_at is not None
    day = _day(file.ingested_at, policy.zone)
    return Retention(
        floor,
        best.category,
        f"{best.rule}; kept the floor ({_floor_text(policy)}) from ingest ({day})",
        Basis.INGESTED,
    )


def expired(
    file: FileFacts, cases: Sequence[CaseFacts], policy: RetentionConfig, now: datetime
) -> bool:
    return retention_of(file, cases, policy).expires_at <= now


def cases_of(file: FileFacts, cases: Iterable[CaseFacts]) -> list[CaseFacts]:
    return [c for c in cases if file.case_number and c.case_number == file.case_number]
