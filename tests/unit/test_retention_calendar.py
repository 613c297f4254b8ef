"""Retention in calendar months and counted from ingest when the clock is in doubt (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from dockd.config.policy import Category, RetentionConfig, add_months, month_span_days
from dockd.policy.holds import HoldFacts, covers
from dockd.policy.retention import NEVER, FileFacts, months_after, policy_digest, retention_of

DAY = timedelta(days=1)
INGEST = datetime(2026, 3, 16, 2, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def flat_battery(*, clock_suspect: bool = False, time_source: str = "container") -> FileFacts:
    """A clip stamped 2000-01-01 by a recorder whose clock battery ran flat."""
    start = datetime(2000, 1, 1, tzinfo=UTC)
    end = start + timedelta(minutes=2)
    return FileFacts(
        1,
        start,
        end,
        ingested_at=INGEST,
        clock_suspect=clock_suspect,
        time_source=time_source,
    )


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (date(2026, 7, 1), 6, date(2027, 1, 1)),
        (date(2026, 8, 31), 6, date(2027, 2, 28)),
        (date(2027, 8, 31), 6, date(2028, 2, 29)),  # a leap year
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 12, 15), 12, date(2027, 12, 15)),
    ],
)
def test_calendar_months_clamp_at_the_end_of_the_month(start: date, months: int, end: date) -> None:
    assert add_months(start, months) == end


def test_six_months_are_181_to_184_days() -> None:
    assert month_span_days(6) == (181, 184)  # 180 days is always short of six months


def test_months_keep_the_wall_clock_time_across_daylight_saving() -> None:
    # 1 March 10:00 in Berlin is 09:00 UTC (CET); 1 September 10:00 is 08:00 UTC (CEST).
    start = datetime(2026, 3, 1, 10, 0, tzinfo=BERLIN)
    end = months_after(start, 6, BERLIN)
    assert end.astimezone(BERLIN) == datetime(2026, 9, 1, 10, 0, tzinfo=BERLIN)
    assert end == datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    # and back: 31 August 23:30 Berlin is already 1 September in Shanghai
    late = datetime(2026, 8, 31, 23, 30, tzinfo=BERLIN)
    assert months_after(late, 6, BERLIN).astimezone(BERLIN).date() == date(2027, 2, 28)


def test_a_category_in_months_counts_in_the_station_calendar() -> None:
    july = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)  # 1 July 01:00 in Shanghai
    facts = FileFacts(1, july, ingested_at=july)
    policy = RetentionConfig(categories={"routine": {"months": 6}})
    r = retention_of(facts, [], policy)
    assert r.expires_at.astimezone(ZoneInfo("Asia/Shanghai")).date() == date(2026, 1, 1)
    assert r.rule == "routine (default category): 6 months from recording (2025-07-01)"
    in_berlin = retention_of(facts, [], policy.in_zone("Europe/Berlin"))
    assert in_berlin.expires_at.astimezone(BERLIN).date() == date(2025, 12, 30)


def test_a_suspect_clock_counts_from_ingest() -> None:
    r = retention_of(flat_battery(clock_suspect=True), [], RetentionConfig())
    assert r.expires_at == INGEST + 180 * DAY
    assert r.counted_from == "ingested"
    assert "180 days from ingest (2026-03-16), recording time not trusted (clock suspect)" in r.rule


def test_a_time_from_mtime_is_not_trusted_either() -> None:
    p = RetentionConfig(categories={"routine": Category(days=400)})
    r = retention_of(flat_battery(time_source="mtime"), [], p)
    assert r.expires_at == INGEST + 400 * DAY and r.counted_from == "ingested"
    assert "time from mtime" in r.rule
    # the same file with a container time is counted from its recording: floor from ingest
    trusted = retention_of(flat_battery(time_source="container"), [], p)
    assert trusted.expires_at == INGEST + 180 * DAY
    assert trusted.counted_from == "ingested" and "kept the floor" in trusted.rule


def test_the_floor_from_ingest_holds_whatever_the_recording_time() -> None:
    year_ago = INGEST - 365 * DAY
    facts = FileFacts(1, year_ago, ingested_at=INGEST)
    r = retention_of(facts, [], RetentionConfig())
    assert r.expires_at == INGEST + 180 * DAY
    assert r.rule.endswith("kept the floor (minimum_days = 180) from ingest (2026-03-16)")
    six = {"months": 6}
    in_months = RetentionConfig(minimum_months=6, categories={"routine": six, "evidence": six})
    months = retention_of(facts, [], in_months)
    assert months.expires_at == datetime(2026, 9, 16, 2, 0, tzinfo=UTC)
    assert "minimum_months = 6" in months.rule


def test_a_correction_flows_through() -> None:
    """Retention is a function of the facts: a corrected time is counted from again."""
    p = RetentionConfig(categories={"routine": Category(days=300)})
    doubted = flat_battery(clock_suspect=True)
    assert retention_of(doubted, [], p).expires_at == INGEST + 300 * DAY
    fixed = replace(
        doubted, clock_suspect=False, recorded_start=INGEST - 10 * DAY, recorded_end=None
    )
    r = retention_of(fixed, [], p)
    assert r.expires_at == INGEST + 290 * DAY and r.counted_from == "recorded"


def test_a_clock_ahead_is_counted_from_the_later_recording_time() -> None:
    ahead = INGEST + 30 * DAY
    r = retention_of(
        FileFacts(1, ahead, ingested_at=INGEST, clock_suspect=True), [], RetentionConfig()
    )
    assert r.expires_at == ahead + 180 * DAY and r.counted_from == "recorded"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"categories": {"routine": {"days": 200, "months": 7}}}, "not both"),
        ({"categories": {"routine": {"months": 5}}}, "5 months is below the floor"),
        ({"minimum_months": 5}, "below the legal floor of 6 months"),
        ({"minimum_days": 200, "minimum_months": 7}, "minimum_days or minimum_months, not both"),
        (
            {"minimum_months": 6, "categories": {"routine": {"days": 180}}},
            "180 days is below the floor minimum_months = 6.*at least 184 days or 6 months",
        ),
        ({"minimum_months": 7, "categories": {"routine": {"months": 6}}}, "6 months is below"),
        ({"categories": {"extra": {"description": "x"}}}, "needs days = N or months = N"),
    ],
)
def test_config_refuses_lengths_below_the_floor(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        RetentionConfig(**kwargs)


def test_built_in_categories_not_given_follow_a_raised_floor() -> None:
    """A floor raised to a year, or given in months, raises routine and evidence with it;
    a category the admin gives keeps its own length (refused if below the floor)."""
    year = RetentionConfig(minimum_days=365)
    assert {n: (c.days, c.months) for n, c in year.categories.items()} == {
        "routine": (365, None),
        "evidence": (365, None),
    }
    six = RetentionConfig(minimum_months=6, categories={"routine": {"months": 9}})
    assert six.categories["routine"].months == 9
    assert (six.categories["evidence"].days, six.categories["evidence"].months) == (None, 6)
    assert six.categories["evidence"].until_case_closed  # only the length follows


def test_months_given_for_a_built_in_category_replace_its_days() -> None:
    p = RetentionConfig(
        minimum_months=6,
        categories={"routine": {"months": 6}, "evidence": {"months": 6}},
    )
    assert p.categories["routine"].days is None and p.categories["routine"].months == 6
    assert p.categories["evidence"].until_case_closed  # the other keys stay


def test_the_digest_follows_months_and_the_calendar() -> None:
    days = RetentionConfig()
    months = RetentionConfig(categories={"routine": {"months": 6}})
    assert policy_digest(days) != policy_digest(months)
    assert policy_digest(months) != policy_digest(months.in_zone("Europe/Berlin"))
    assert policy_digest(days) == policy_digest(days.in_zone("Europe/Berlin"))  # days: no zone


def test_a_device_hold_covers_a_doubted_time_by_when_it_was_docked() -> None:
    """A reset clock stamps 2000-01-01: the stamp places nothing, the dock does."""
    hold = HoldFacts(1, "complaint", "device", device_ref="DV-1", window_from=INGEST - 5 * DAY)
    stamp = datetime(2000, 1, 1, tzinfo=UTC)
    doubted = FileFacts(1, stamp, device_ref="DV-1", ingested_at=INGEST, clock_suspect=True)
    assert covers(hold, doubted)
    assert not covers(hold, replace(doubted, clock_suspect=False))  # a trusted stamp decides
    assert not covers(hold, replace(doubted, ingested_at=INGEST - 6 * DAY))  # docked before
    assert covers(hold, replace(doubted, clock_suspect=False, time_source="mtime"))


def test_months_across_a_fall_back_fold_take_the_later_instant() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 02:30 on 25 October 2026 happens twice in Berlin; from 25 April it is 6 months on.
    start = datetime(2026, 4, 25, 2, 30, tzinfo=berlin)
    end = months_after(start, 6, berlin)
    assert end == datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=berlin).astimezone(UTC)
    assert end == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_a_time_near_the_end_of_the_calendar_never_expires_instead_of_crashing() -> None:
    far = datetime(9999, 10, 1, tzinfo=UTC)  # 180 days or 12 months on: past year 9999
    by_days = retention_of(FileFacts(1, far, ingested_at=INGEST), [], RetentionConfig())
    assert by_days.expires_at == NEVER
    months = RetentionConfig(categories={"routine": {"months": 12}})
    assert retention_of(FileFacts(1, far, ingested_at=INGEST), [], months).expires_at == NEVER
