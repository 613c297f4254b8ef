"""``[calendar]`` and ``[inspection]``: which days are workdays, and how often supervisors inspect.

The daily reconciliation (R3, :mod:`dockd.reports.daily`) runs per workday: a day is
a workday unless its weekday is one of ``weekends`` or it is one of ``holidays``;
a date in ``workdays`` is a workday whatever its weekday (a make-up working day,
调休, e.g. a Saturday worked for a holiday week). A date both a holiday and a
make-up workday is refused: the calendar would say two things.

``[inspection] every_months``: supervisors inspect the use of the recorders at least
twice a year (R16); when no inspection is recorded within that many months, the
scheduled check raises an alert naming the last one.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from dockd.config.base import Section

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar with no workday at all within this many days is a mistake, not a policy.
SEARCH_DAYS = 366


class CalendarConfig(Section):
    """The station's workdays: weekdays off, holidays, make-up working days."""

    # Weekdays that are not workdays (mon tue wed thu fri sat sun).
    weekends: tuple[str, ...] = ("sat", "sun")
    # Dates off although their weekday is worked (public holidays).
    holidays: tuple[date, ...] = ()
    # Dates worked although their weekday is off (make-up working days, 调休).
    workdays: tuple[date, ...] = ()

    @field_validator("weekends")
    @classmethod
    def _weekday_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(v.strip().lower()[:3] for v in value)
        bad = [v for v, o in zip(value, out, strict=True) if o not in WEEKDAYS]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: weekdays are {' '.join(WEEKDAYS)}")
        if len(set(out)) == len(WEEKDAYS):
            raise ValueError("every weekday is a weekend: no day would be a workday")
        return out

    @model_validator(mode="after")
    def _one_meaning_per_date(self) -> CalendarConfig:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            days = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"{days} is both a holiday and a make-up workday; keep it in one")
        return self

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return WEEKDAYS[day.weekday()] not in self.weekends

    def why_not(self, day: date) -> str:
        """Why ``day`` is not a workday, in words (for messages)."""
        if day in self.holidays:
            return f"{day.isoformat()} is a holiday in [calendar] holidays"
        return f"{day.isoformat()} is a {WEEKDAYS[day.weekday()]}, in [calendar] weekends"

    def workdays_between(self, first: date, last: date) -> list[date]:
        """The workdays from ``first`` through ``last``."""
        days = (first + timedelta(days=i) for i in range((last - first).days + 1))
        return [d for d in days if self.is_workday(d)]

    def last_workday_before(self, day: date) -> date:
        """The last workday before ``day`` (the last one completed when ``day`` is today)."""
        for back in range(1, SEARCH_DAYS + 1):
            candidate = day - timedelta(days=back)
            if self.is_workday(candidate):
                return candidate
        raise ValueError(f"no workday in the {SEARCH_DAYS} days before {day.isoformat()}")


class InspectionConfig(Section):
    """How often supervisors must record an inspection (R16: at least twice a year)."""

    # An alert is raised when no inspection is recorded within this many months.
    every_months: Annotated[int, Field(ge=1, le=24)] = 6
