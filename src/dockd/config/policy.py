"""``[retention]``, ``[archive]``, ``[fixity]``, ``[schedule]``: how long footage lives and
how it is kept safe.

The floor is enforced here, at load time, so ``dockd config check`` (and the daemon's
start) refuse a policy that would delete footage earlier than the rules allow (R6).
So are the sweeps' schedules: APScheduler reads each one here, as the scheduler will
(this module and :mod:`dockd.daemon.scheduler` are the only APScheduler imports).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta
from functools import cache, cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from dockd.config.base import AbsolutePath, Section

# The regulations (001 §19, 004 §12) ask for at least six months: no config goes below.
LEGAL_FLOOR_DAYS = 180
LEGAL_FLOOR_MONTHS = 6
# The zone months are counted in when the station's is not known (the station's default).
DEFAULT_ZONE = "Asia/Shanghai"


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar ``months``; the end of a month clamps (31 Aug + 6 = 28/29 Feb)."""
    year, index = divmod(day.month - 1 + months, 12)
    year += day.year
    last = calendar.monthrange(year, index + 1)[1]
    return date(year, index + 1, min(day.day, last))


@cache
def month_span_days(months: int) -> tuple[int, int]:
    """The fewest and most days ``months`` calendar months can last (over a leap cycle)."""
    start = date(2000, 1, 1)
    spans = [
        (add_months(d, months) - d).days
        for d in (start + timedelta(days=i) for i in range(4 * 366))
    ]
    return min(spans), max(spans)


_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class Category(Section):
    """One retention category: how long its footage is kept, counted from the recording time."""

    # Days from the end of the recording (its start when the end is unknown) ...
    days: Annotated[int | None, Field(ge=0)] = None
    # ... or calendar months, counted in the station's calendar ([station] timezone).
    months: Annotated[int | None, Field(ge=1, le=1200)] = None
    # Evidence: keep at least until the file's case is closed, then ``after_close_days`` more.
    # A file of such a category without a case, or whose case is still open, is never deleted.
    until_case_closed: bool = False
    after_close_days: Annotated[int, Field(ge=0)] = 0
    description: str = ""

    @model_validator(mode="after")
    def _after_close_only_with_case(self) -> Category:
        if self.days is not None and self.months is not None:
            raise ValueError("give a category's length in days or in months, not both")
        if self.days is None and self.months is None:
            raise ValueError("a category needs days = N or months = N")
        if self.after_close_days and not self.until_case_closed:
            raise ValueError("after_close_days needs until_case_closed = true")
        return self

    @property
    def length(self) -> str:
        """``180 days`` or ``6 months``."""
        return f"{self.months} months" if self.months is not None else f"{self.days} days"


def _default_categories() -> dict[str, Category]:
    return {
        "routine": Category(days=180, description="routine footage: six months"),
        "evidence": Category(
            days=180,
            until_case_closed=True,
            after_close_days=180,
            description="evidence: as long as the case file, then six months",
        ),
    }


class RetentionConfig(Section):
    """Retention categories and the floor no category may go below (R6)."""

    # No category may keep footage fewer days than this; it cannot itself be set below
    # the legal floor of 180 days, only raised (e.g. 365 for units that keep a year).
    minimum_days: Annotated[int, Field(ge=1)] = LEGAL_FLOOR_DAYS
    # The floor in calendar months instead (at least 6), counted in the station's calendar.
    minimum_months: Annotated[int | None, Field(ge=1, le=1200)] = None
    # Category of a file that has none of its own and no case.
    default_category: str = "routine"
    # Category that applies to every file tagged with a case number ("" for none).
    case_category: str = "evidence"
    # Built in: routine (180 days) and evidence (180 days, and until the case is closed
    # plus 180 days). A [retention.categories.NAME] table adds a category or changes
    # some keys of a built-in one.
    categories: dict[str, Category] = Field(default_factory=dict, validate_default=True)
    # Where trashed files wait before they are purged; must be on the store's filesystem.
    # Default: <store.root>/../trash.
    trash: AbsolutePath | None = None
    # How long a trashed file can still be restored before it is purged.
    trash_grace_days: Annotated[int, Field(ge=0, le=3650)] = 7
    # Files handled per database query in the sweep.
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 500
    # The zone months are counted in: the station's, set by :func:`in_zone` when the
    # whole configuration is loaded (not a key of [retention]).
    _zone: str = PrivateAttr(default=DEFAULT_ZONE)

    @cached_property
    def zone(self) -> ZoneInfo:
        # Kept: a listing asks it twice per file, and reading a private attribute of a
        # pydantic model costs 3 us (a tenth of what upcoming deletions spent per file).
        return ZoneInfo(self._zone)

    def in_zone(self, timezone: str) -> RetentionConfig:
        """This policy, counting months in ``timezone`` (the station's)."""
        if timezone == self._zone:
            return self
        copy = self.model_copy()
        copy._zone = timezone
        copy.__dict__.pop("zone", None)  # the copy's own zone, not this one's kept
        return copy

    @field_validator("minimum_days")
    @classmethod
    def _legal_floor(cls, value: int) -> int:
        if value < LEGAL_FLOOR_DAYS:
            raise ValueError(
                f"{value} days is below the legal floor of {LEGAL_FLOOR_DAYS} days (six months, "
                f"R6); the floor can be raised, never lowered"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_floor(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"minimum_days", "minimum_months"} <= data.keys():
            raise ValueError("give the floor as minimum_days or minimum_months, not both")
        return data

    @field_validator("minimum_months")
    @classmethod
    def _legal_floor_months(cls, value: int | None) -> int | None:
        if value is not None and value < LEGAL_FLOOR_MONTHS:
            raise ValueError(
                f"{value} months is below the legal floor of {LEGAL_FLOOR_MONTHS} months (R6); "
                "the floor can be raised, never lowered"
            )
        return value

    @field_validator("categories", mode="before")
    @classmethod
    def _over_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        """A table adds a category or changes keys of a default one (never drops keys).

        A built-in category whose length the admin does not give follows the floor: a
        floor raised to a year, or given in months, raises routine and evidence with it.
        """
        if not isinstance(value, dict):
            return value
        floor_months = info.data.get("minimum_months")
        follow: dict[str, Any] = (
            {"months": floor_months}
            if floor_months
            else {"days": max(LEGAL_FLOOR_DAYS, info.data.get("minimum_days", 0))}
        )
        merged: dict[str, Any] = {}
        for n, c in _default_categories().items():
            dumped = {k: v for k, v in c.model_dump().items() if k not in ("days", "months")}
            merged[n] = {**dumped, **follow}
        for name, given in value.items():
            if isinstance(given, dict) and name in merged:
                base = dict(merged[name])
                if "days" in given or "months" in given:  # a new length replaces the old
                    base.pop("days", None)
                    base.pop("months", None)
                merged[name] = {**base, **given}
            else:
                merged[name] = given
        return merged

    @field_validator("categories")
    @classmethod
    def _names_and_floor(
        cls, value: dict[str, Category], info: ValidationInfo
    ) -> dict[str, Category]:
        if not value:
            raise ValueError("at least one category is needed")
        bad = sorted(n for n in value if not re.match(_NAME, n))
        if bad:
            raise ValueError(
                f"bad category name(s) {bad}: use lower-case letters, digits, '_' or '-', "
                "at most 32 characters, starting with a letter"
            )
        floor = info.data.get("minimum_days", LEGAL_FLOOR_DAYS)
        floor_months = info.data.get("minimum_months")
        floor_text = (
            f"minimum_months = {floor_months}" if floor_months else f"minimum_days = {floor}"
        )
        longest = month_span_days(floor_months)[1] if floor_months else 0
        need = f"{max(floor, longest)} days" + (f" or {floor_months} months" * bool(floor_months))
        below = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "value_error",
                    "{length} is below the floor {floor}: `dockd config check` refuses it; "
                    "keep this category at least {need}",
                    {"length": c.length, "floor": floor_text, "need": need},
                ),
                loc=(name, "months" if c.months is not None else "days"),
                input=c.months if c.months is not None else c.days,
            )
            for name, c in sorted(value.items())
            if _shorter(c, floor, floor_months)
        ]
        if below:  # one error per category, each at its own key and line
            raise ValidationError.from_exception_data("RetentionConfig", below)
        return value

    @model_validator(mode="after")
    def _references(self) -> RetentionConfig:
        if self.default_category not in self.categories:
            raise ValueError(
                f"default_category {self.default_category!r} is not one of the categories "
                f"{sorted(self.categories)}"
            )
        if self.case_category and self.case_category not in self.categories:
            raise ValueError(
                f"case_category {self.case_category!r} is not one of the categories "
                f'{sorted(self.categories)}; set it to "" to apply none'
            )
        return self


def _shorter(cat: Category, floor_days: int, floor_months: int | None) -> bool:
    """Whether a category can keep footage less than the floor: months against months,
    days against the floor's days and the longest run of the floor's months."""
    if cat.months is not None:
        return cat.months < (floor_months or 0) or month_span_days(cat.months)[0] < floor_days
    longest = month_span_days(floor_months)[1] if floor_months else 0
    return (cat.days or 0) < max(floor_days, longest)


class ArchiveTarget(Section):
    """One place archive copies go: a second disk, removable media, an optical staging area."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    path: AbsolutePath
    kind: Literal["directory", "removable", "optical"] = "directory"
    # Only copy when ``path`` is a mount point, so an unplugged disk's empty mount point
    # is never filled instead. Default: true for removable, false otherwise.
    require_mount: bool | None = None
    # Leave at least this much free on the target.
    reserve_mb: Annotated[int, Field(ge=0)] = 512
    # Optical staging: never stage more than one disc's worth (e.g. 23000 for a 25 GB BD-R).
    capacity_mb: Annotated[int | None, Field(gt=0)] = None
    # The fixity sweep re-hashes every copy here once in this many days (default:
    # ``[fixity] cycle_days``), whenever the target is present.
    fixity_cycle_days: Annotated[int | None, Field(ge=1, le=3650)] = None

    @property
    def must_be_mounted(self) -> bool:
        return self.require_mount if self.require_mount is not None else self.kind == "removable"


class ArchiveConfig(Section):
    """Archive targets for held / evidence footage (R8)."""

    targets: tuple[ArchiveTarget, ...] = ()
    # Besides every held file, also archive files in these retention categories.
    include_categories: tuple[str, ...] = ()
    # And the footage of closed cases, which must be filed within case_filing_days of
    # the close (004 全过程 §25): the sweep alerts (case.not_filed) for a case past it.
    closed_cases: bool = True
    case_filing_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # At most this many files per target per sweep (one batch, one manifest).
    batch_max_files: Annotated[int, Field(ge=1)] = 1000
    # Optical targets: run after each verified disc image when a burner is attached; an
    # argument list (no shell) where {image} is the image's path.
    burn_command: tuple[str, ...] = ()

    @field_validator("burn_command")
    @classmethod
    def _burn_ok(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value and {f for a in value for f in re.findall(r"\{([^{}]*)\}", a)} != {"image"}:
            raise ValueError(
                "must be an argument list using {image} (the image's path) and no other "
                'placeholder, e.g. ["xorriso", "-as", "cdrecord", "dev=/dev/sr0", "{image}"]'
            )
        return value

    @field_validator("targets")
    @classmethod
    def _unique(cls, value: tuple[ArchiveTarget, ...]) -> tuple[ArchiveTarget, ...]:
        names = [t.name for t in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"archive target names must be unique; repeated: {dupes}")
        return value


class FixityConfig(Section):
    """How often and how fast the store is re-hashed (R9)."""

    # Every stored file is re-hashed at least once in this many days.
    cycle_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # Read at most this many MB (10^6 bytes) per second, so ingest is never starved.
    rate_mb_s: Annotated[float, Field(gt=0)] = 20.0
    # Also walk the store for files the ledger does not know.
    scan_unexpected: bool = True
    # At most this many alerts of one kind per run; the rest are counted in one more.
    max_alerts_per_kind: Annotated[int, Field(ge=1)] = 20
    # Restore a missing or modified store file from a verified archive copy, and make a
    # damaged archive copy again from the verified store file.
    repair: bool = True


# ----------------------------------------------------------------------------- cron
# APScheduler 3 checks a crontab expression (``CronTrigger.from_crontab``) and reads
# its minute, hour, day and month as cron does. Its weekdays differ: it counts Monday
# as 0 where crontab counts Sunday as 0 (and 7), so "0 7 * * 1" would run on Tuesdays.
# The weekday field is therefore read here, the way crontab reads it, and handed on
# as names, which both read alike. Month names are handed on as numbers: APScheduler
# reads a range of names with a step ("jan-jun/2") as if it had none.

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAME = re.compile(r"\b(?:" + "|".join(MONTHS) + r")\b")
# One item of a crontab field: *, a number or name, or a range, with an optional step.
_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")
# The other fields and their ranges, to name the number APScheduler refused.
_RANGES = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12))


def _weekday(token: str) -> int:
    """A crontab weekday: a name, or 0-7 (Sunday is both 0 and 7)."""
    if token in WEEKDAYS:
        return WEEKDAYS.index(token)
    if not token.isdigit():
        raise ValueError(f"day of week: {token!r} is not a number or {WEEKDAYS}")
    if int(token) > 7:
        raise ValueError(f"day of week: {token} is outside 0-7")
    return int(token)


def _weekdays(field: str) -> str:
    """Crontab's weekday field as names for APScheduler 3 (``*`` for every day)."""
    days: set[int] = set()
    for item in field.lower().split(","):
        m = _ITEM.match(item)
        if not m:
            raise ValueError(f"day of week: cannot read {item!r}")
        rng, step = m.group("range"), int(m.group("step") or 1)
        if step < 1:
            raise ValueError("day of week: step must be at least 1")
        if rng == "*":
            first, last = 0, 7
        elif "-" in rng:
            first, last = (_weekday(t) for t in rng.split("-"))
            if first > last:
                raise ValueError(f"day of week: range {rng!r} runs backwards")
        else:
            first = _weekday(rng)
            last = 7 if m.group("step") else first
        days.update(d % 7 for d in range(first, last + 1, step))
    return "*" if len(days) == 7 else ",".join(WEEKDAYS[d] for d in sorted(days))


def _month_numbers(field: str) -> str:
    """The month field with its names as numbers (an unknown name is left to APScheduler)."""
    return _MONTH_NAME.sub(lambda m: str(MONTHS.index(m.group()) + 1), field.lower())


def _months(trigger: CronTrigger) -> str:
    """The months a trigger fires in, as numbers (``*`` for every month)."""
    field = trigger.fields[CronTrigger.FIELD_NAMES.index("month")]
    months = [m for m in range(1, 13) if field.get_next_value(datetime(2001, m, 1)) == m]
    return "*" if len(months) == 12 else ",".join(map(str, months))


def _crontab_items(fields: list[str]) -> None:
    """Only crontab's grammar: APScheduler's own extras (``last``, ``2nd fri``) are not cron."""
    for (what, _, _), text in zip(_RANGES, fields, strict=False):
        for item in text.lower().split(","):
            m = _ITEM.match(item)
            names = MONTHS if what == "month" else ()
            if not m or not all(
                tok == "*" or tok.isdigit() or tok in names for tok in m.group("range").split("-")
            ):
                raise ValueError(f"{what}: cannot read {item!r}")


def _refusal(expr: str, fields: list[str], exc: ValueError) -> str:
    """Why APScheduler refused the fields: the field and number out of range, if one is."""
    for (what, lo, hi), text in zip(_RANGES, fields, strict=False):
        for item in text.split(","):
            for number in re.findall(r"\d+", item.partition("/")[0]):
                if not lo <= int(number) <= hi:
                    return f"{what}: {number} is outside {lo}-{hi}"
    return f"{expr!r} is not a crontab expression: {exc}"


def cron_fields(expr: str) -> tuple[str, str, str, str, str]:
    """Check a 5-field crontab expression with APScheduler; return its fields for APScheduler 3.

    The weekdays come back as names (see above), the months as numbers. The zone
    (UTC here) changes when a schedule fires, never whether it reads.
    """
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(
            f"{expr!r} must have 5 fields (minute hour day-of-month month day-of-week), "
            "e.g. '30 2 * * *' for 02:30 every day"
        )
    minute, hour, day, month, weekday = parts
    _crontab_items(parts[:4])
    fields = [minute, hour, day, _month_numbers(month), _weekdays(weekday)]
    try:
        trigger = CronTrigger.from_crontab(" ".join(fields), timezone=UTC)
    except ValueError as exc:
        raise ValueError(_refusal(expr, fields, exc)) from None
    return minute, hour, day, _months(trigger), fields[4]


def _crontab(value: str) -> str:
    value = value.strip()
    if value:
        cron_fields(value)
    return value


# A schedule: a crontab expression (checked as cron reads it), or "" for none.
Crontab = Annotated[str, AfterValidator(_crontab)]


SWEEP_KINDS = (
    "retention",
    "archive",
    "fixity",
    "weekly_report",
    "daily_report",
    "duties",
)


class ScheduleConfig(Section):
    """Cron-style schedules of the sweeps inside ``dockd run`` ("" turns one off)."""

    # Times are read in [station] timezone.
    retention: Crontab = "30 2 * * *"
    archive: Crontab = "0 3 * * *"
    fixity: Crontab = "0 1 * * *"
    weekly_report: Crontab = "0 7 * * 1"
    # The daily reconciliation of the last completed workday ([calendar]; R3).
    daily_report: Crontab = "30 7 * * *"
    # The duty checks: gaps left unexplained, an inspection overdue (R12, R16).
    duties: Crontab = "0 8 * * *"
    # A run missed (daemon down, machine asleep) by less than this is still run late.
    misfire_grace_minutes: Annotated[int, Field(ge=1)] = 60
    # Several missed runs of one sweep are run once, not once each.
    coalesce: bool = True
    # A sweep marked running whose process has not reported for this long is taken over.
    stale_after_minutes: Annotated[int, Field(ge=1)] = 60
    # Where the weekly (and daily) report is also written as JSON and text (none:
    # ledger and log only).
    weekly_report_dir: AbsolutePath | None = None

    def jobs(self) -> dict[str, str]:
        """Sweep kind -> crontab expression, for the sweeps that are switched on."""
        return {k: getattr(self, k) for k in SWEEP_KINDS if getattr(self, k)}
