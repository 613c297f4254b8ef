"""The footage search of the web view (issue 13) on a ledger filled by a real ingest:
officer by a part of the name or badge in any case (the whole of it in double quotes),
a case by a part of its number,
recording times, flags meaning what the reports mean, holds as the retention sweep
sees them, sorted and paged with the total. On SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.errors import UsageError
from dockd.evidence import cases
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import registry
from dockd.ledger.db import Ledger
from dockd.ledger.models import Recording
from dockd.policy.placing import place_hold
from dockd.reports.base import Period
from dockd.reports.catalog import run_report
from dockd.reports.search import FLAGS, SORTS, SearchPage, SearchQuery, search
from dockd.web.routes.report_data import search_of
from fixtures.make_recorder import DEFAULT_START, Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.station import NOW

pytestmark = pytest.mark.parametrize("config", BACKENDS, indirect=True)

SHANGHAI = DEFAULT_START.tzinfo
# On DV-0001, badge 012345 (Zhang Wei), local time. Recorder 1, 2026-03-15: clips 06:30:00,
# 06:31:02, 06:32:04, photo 06:30:12, audio 06:30:22. Recorder 2: a clip at 08:30 (a break
# of 118 minutes) and its audio note (its photo is recorder 1's, already present).
# Recorder 3: the same the next day at 07:00. 9 files, ingested at NOW (03-16 10:00).


@pytest.fixture(scope="module")
def recs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recorder, ...]:
    base = tmp_path_factory.mktemp("recs")
    return (
        make_recorder(base / "r1", clips=3, extras=False),
        make_recorder(base / "r2", start=DEFAULT_START + timedelta(hours=2), clips=1, extras=False),
        make_recorder(
            base / "r3", start=DEFAULT_START + timedelta(days=1, minutes=30), clips=1, extras=False
        ),
    )


@pytest.fixture
def station(
    ctx: Context, clock: FixedClock, recs: tuple[Recorder, ...], tmp_path: Path
) -> Iterator[dict[str, int]]:
    """The three recorders docked once at NOW; the files' ids by their names."""
    register(ctx.ledger, clock, recs[0])
    docked = tmp_path / "docked"
    for rec in recs:
        shutil.copytree(rec.root, docked, dirs_exist_ok=True)
    assert run_ingest(ctx, docked).ok
    with ctx.ledger.read() as s:
        yield {Path(r.source_path).name: r.id for r in s.scalars(select(Recording))}


def find(ledger: Ledger, config: Config, now: datetime = NOW, **kw: object) -> SearchPage:
    with ledger.read() as s:
        return search(s, SearchQuery(**kw), config, now)  # type: ignore[arg-type]


def ids(page: SearchPage) -> set[int]:
    return {r.id for r in page.rows}


def test_officer_by_a_part_of_the_name_or_badge_in_any_case(
    config: Config, ledger: Ledger, station: dict[str, int]
) -> None:
    everything = set(station.values())
    for part in ("zhang", "WEI", "Zhang Wei", "2345", "0123"):
        page = find(ledger, config, officer=part)
        assert (ids(page), page.total) == (everything, 9), part
    assert find(ledger, config, officer="li").total == 0
    # LIKE's wildcards are only letters here
    assert find(ledger, config, officer="%").total == 0
    assert find(ledger, config, officer="_").total == 0
    row = find(ledger, config, officer="wei").rows[0]
    assert (row.officer, row.officer_name, row.device) == ("012345", "Zhang Wei", "DV-0001")
    assert find(ledger, config, device="dv-00").total == 9
    assert find(ledger, config, device="DV-0002").total == 0
    assert find(ledger, config, station="st-test").total == 9
    assert find(ledger, config, station="st-other").total == 0
    # in double quotes the whole badge, name or number: not a part of a longer one
    for whole in ('"012345"', '"zhang wei"'):
        assert find(ledger, config, officer=whole).total == 9, whole
    assert find(ledger, config, device='"dv-0001"').total == 9
    for part in ('"01234"', '"zhang"', '"%"'):
        assert find(ledger, config, officer=part).total == 0, part
    assert find(ledger, config, device='"DV-000"').total == 0


def test_a_file_named_with_an_unknown_badge_is_found_by_it(
    config: Config, ledger: Ledger, station: dict[str, int], ctx: Context, tmp_path: Path
) -> None:
    # An unregistered recorder: no assignment, only the badge in the file name.
    other = make_recorder(
        tmp_path / "r9",
        serial="ZFY2024000999",
        device_number="DV-0099",
        badge="998877",
        start=DEFAULT_START + timedelta(hours=5),
        clips=1,
        extras=False,
    )
    run_ingest(ctx, other.root)
    page = find(ledger, config, officer="9887")
    assert page.total == 3  # its clip, photo and audio note
    assert {r.officer for r in page.rows} == {"998877"}
    assert all("quarantined" in r.flags for r in page.rows)
    assert ids(find(ledger, config, flags=frozenset({"quarantined"}))) == ids(page)


def test_recording_time_in_the_station_zone(
    config: Config, ledger: Ledger, station: dict[str, int]
) -> None:
    day_two = datetime(2026, 3, 16, tzinfo=SHANGHAI)
    page = find(ledger, config, start=day_two, end=day_two + timedelta(days=1))
    assert {r.recorded_start.astimezone(SHANGHAI).date() for r in page.rows} == {day_two.date()}
    assert page.total == 2
    assert find(ledger, config, end=day_two).total == 7
    with pytest.raises(UsageError, match="time zone"):
        SearchQuery(start=datetime(2026, 3, 16))
    with pytest.raises(UsageError, match="after its start"):
        SearchQuery(start=day_two, end=day_two)


def test_flags_mean_what_the_reports_mean(
    config: Config, ledger: Ledger, station: dict[str, int]
) -> None:
    with ledger.read() as s:
        late = {r["id"] for r in run_report("late", s, config, Period(), NOW).rows}
        gaps = {r["file_after"] for r in run_report("gaps", s, config, Period(), NOW).rows}
        later = NOW + timedelta(days=8)
        untagged = {r["id"] for r in run_report("untagged-files", s, config, Period(), later).rows}
        summary = run_report("untagged", s, config, Period(), later).rows
    assert len(late) == 7 and gaps == {station["ZFY2024000123_012345_20260315083000_0001.MP4"]}
    assert ids(find(ledger, config, flags=frozenset({"late"}))) == late
    assert ids(find(ledger, config, flags=frozenset({"gap"}))) == gaps
    assert ids(find(ledger, config, flags=frozenset({"gap", "late"}))) == gaps
    assert find(ledger, config, flags=frozenset({"untagged"})).total == 0  # not a week old
    assert ids(find(ledger, config, later, flags=frozenset({"untagged"}))) == untagged
    # each row of the untagged summary: the files the search lists for it (as the web
    # links it), the officer's, the device's, that local day's
    assert len(summary) == 2
    for line in summary:
        day = datetime.fromisoformat(line["day"]).replace(tzinfo=config.station.tz)
        page = find(
            ledger,
            config,
            later,
            officer=line["officer"],
            device=line["device"],
            start=day,
            end=day + timedelta(days=1),
            flags=frozenset({"untagged"}),
        )
        assert page.total == line["files"], line
    for flag in ("clock-suspect", "badge-mismatch", "probe-failed", "quarantined"):
        assert find(ledger, config, flags=frozenset({flag})).total == 0, flag
    # each row carries its flags, the gap too (seen from the page alone)
    for row in find(ledger, config, page_size=3, sort="recorded", descending=False).rows:
        assert ("late" in row.flags) == (row.id in late)
        assert ("gap" in row.flags) == (row.id in gaps)
    (row,) = find(ledger, config, flags=frozenset({"gap"})).rows
    assert row.flags == ("late", "gap")
    # a tighter gap limit finds the breaks between the first day's clips too
    tight = config.model_copy(
        update={"reports": config.reports.model_copy(update={"gap_minutes": 0.5})}
    )
    assert find(ledger, tight, flags=frozenset({"gap"})).total == 3
    with pytest.raises(UsageError, match="no flag named loud"):
        SearchQuery(flags=frozenset({"loud"}))


def test_case_by_a_part_of_its_number_and_holds(
    config: Config, ledger: Ledger, station: dict[str, int], clock: FixedClock
) -> None:
    clip = station["ZFY2024000123_012345_20260315063000_0001.MP4"]
    with ledger.session() as s:
        rows = cases.select_files(s, file_ids=[clip])
        cases.tag_files(s, rows, cases.Tag(case_number="A4401-2026-000123"), at=NOW, actor="t")
    for part in ("a4401", "2026-0001", "A4401-2026-000123"):
        assert ids(find(ledger, config, case=part)) == {clip}, part
    assert find(ledger, config, case="B44").total == 0
    assert find(ledger, config, held=True).total == 0
    assert find(ledger, config, held=False).total == 9

    with ledger.session() as s:
        place_hold(
            s, station="st-test", at=NOW, by="chief", reason="complaint", case_number="A4401-2026"
        )  # another case: covers nothing
        place_hold(
            s,
            station="st-test",
            at=NOW,
            by="chief",
            reason="complaint",
            case_number="A4401-2026-000123",
        )
    held = find(ledger, config, held=True)
    assert (ids(held), [r.held for r in held.rows]) == ({clip}, [True])
    assert find(ledger, config, held=False).total == 8
    assert all(not r.held for r in find(ledger, config, held=False).rows)

    # an officer hold over day two's morning covers its two files
    day_two = datetime(2026, 3, 16, tzinfo=SHANGHAI)
    with ledger.session() as s:
        place_hold(
            s,
            station="st-test",
            at=NOW,
            by="chief",
            reason="litigation",
            officer_badge="012345",
            window_from=day_two,
            window_until=day_two + timedelta(hours=12),
        )
    assert find(ledger, config, held=True).total == 3
    assert find(ledger, config, held=True, officer="zhang", case="A44").total == 1


def test_sorted_and_paged_with_the_total(
    config: Config, ledger: Ledger, station: dict[str, int]
) -> None:
    seen: list[int] = []
    for page in (1, 2, 3):
        p = find(ledger, config, sort="recorded", descending=False, page=page, page_size=4)
        assert p.total == 9 and p.pages(4) == 3
        seen += [r.id for r in p.rows]
    assert len(seen) == 9 and set(seen) == set(station.values())
    with ledger.read() as s:
        order = [r.id for r in s.scalars(select(Recording).order_by(Recording.recorded_start))]
    assert seen == order
    assert find(ledger, config, page=4, page_size=4).rows == []
    # past the last page, narrowed or not, the total is still told
    assert find(ledger, config, page=4, page_size=4, officer="zhang").total == 9
    assert find(ledger, config, page=3, page_size=4, flags=frozenset({"late"})).total == 7
    assert find(ledger, config, officer="nobody").total == 0
    newest = find(ledger, config).rows
    assert [r.recorded_start for r in newest] == sorted(
        (r.recorded_start for r in newest), reverse=True
    )
    for sort in SORTS:
        for descending in (False, True):
            every = find(ledger, config, sort=sort, descending=descending, page_size=500)
            assert every.total == 9 and len(every.rows) == 9, sort
    sizes = [r.size_bytes for r in find(ledger, config, sort="size", descending=False).rows]
    assert sizes == sorted(sizes)
    # the photo and the audio have no duration: last either way
    durations = [r.duration_s for r in find(ledger, config, sort="duration", descending=True).rows]
    known = [d for d in durations if d is not None]
    assert known == sorted(known, reverse=True)
    assert durations[: len(known)] == known
    for bad in ({"sort": "store_path; drop table files"}, {"page": 0}, {"page_size": 100_000}):
        with pytest.raises(UsageError):
            SearchQuery(**bad)
    assert set(FLAGS) == {
        "late",
        "gap",
        "untagged",
        "clock-suspect",
        "badge-mismatch",
        "probe-failed",
        "quarantined",
    }


def test_trashed_footage_only_when_asked(
    config: Config, ledger: Ledger, station: dict[str, int]
) -> None:
    clip = station["ZFY2024000123_012345_20260315063000_0001.MP4"]
    with ledger.session() as s:
        row = s.get(Recording, clip)
        assert row is not None
        row.state = "trashed"
        row.trashed_at = NOW
    assert clip not in ids(find(ledger, config, page_size=100))
    assert clip in ids(find(ledger, config, page_size=100, include_removed=True))
    with ledger.session() as s:
        registry.add_officer(s, badge="777777", name="Li Na", at=NOW, station="st-test", actor="a")
    assert find(ledger, config, officer="li na").total == 0


def test_officer_in_empty_quotes_finds_the_footage_no_officer_is_known_for(
    config: Config, ledger: Ledger, station: dict[str, int], ctx: Context, tmp_path: Path
) -> None:
    """A recorder that names no badge and is assigned to no one: its footage is
    nobody's. The untagged summary's row for it opens exactly its files (it opened the
    device's whole day, everyone's untagged files with it)."""
    nobodys = make_recorder(
        tmp_path / "rb",
        vendor="b",
        serial="ZFY2024000777",
        device_number="DV-0077",
        start=DEFAULT_START + timedelta(hours=3),
        clips=2,
        extras=False,
    )
    with ctx.ledger.session() as s:  # registered, assigned to no one
        registry.add_device(s, number="DV-0077", serial="ZFY2024000777", brand="Test",
                            model="BWC-2", at=NOW - timedelta(days=30), station="st-test",
                            actor="admin")  # fmt: skip
    assert run_ingest(ctx, nobodys.root).ok
    n = len(nobodys.recordings)
    page = find(ledger, config, officer='""')
    assert page.total == n and {(r.officer, r.device) for r in page.rows} == {(None, "DV-0077")}
    assert find(ledger, config).total == len(station) + n

    later = NOW + timedelta(days=8)
    with ledger.read() as s:
        summary = run_report("untagged", s, config, Period(), later).rows
    (line,) = [r for r in summary if r["officer"] is None]
    asked = search_of("untagged", line)
    assert asked is not None and asked["officer"] == '""'
    day = datetime.fromisoformat(line["day"]).replace(tzinfo=config.station.tz)
    untagged = frozenset({"untagged"})
    listed = find(ledger, config, later, officer=asked["officer"], device=asked["device"],
                  start=day, end=day + timedelta(days=1), flags=untagged)  # fmt: skip
    assert ids(listed) == ids(page) and line["files"] == n
