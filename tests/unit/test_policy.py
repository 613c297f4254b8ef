"""Pure tests of the retention policy and holds, and the property the sweep rests on.

No I/O except the last test: categories, the floor, longest wins, hold beats expiry,
release never shortens, cron translation; then hypothesis: for random files, holds and
policies, no held file and no file younger than its retention is ever selected for
deletion, first by the pure selection, then by the real sweep on a real ledger.
"""

from __future__ import annotations

import calendar
import dataclasses
import itertools
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from dockd.alerts import AlertSink
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config.policy import Category, RetentionConfig, cron_fields, month_span_days
from dockd.context import Context
from dockd.errors import ConfigError
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import AuditEvent, Case, Hold, Recording, SweepRun
from dockd.policy.holds import HoldFacts, decide, normalize_reason, select_for_deletion
from dockd.policy.retention import (
    NEVER,
    CaseFacts,
    FileFacts,
    policy_digest,
    retention_of,
)
from dockd.sweeps.retention import run_retention
from tests.helpers.station import make_config

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)


def policy(**cats: Category) -> RetentionConfig:
    cats = cats or {
        "routine": Category(days=180),
        "evidence": Category(days=180, until_case_closed=True, after_close_days=365),
        "traffic": Category(days=730),
    }
    return RetentionConfig(categories=cats, case_category="evidence" if "evidence" in cats else "")


def f(
    file_id: int = 1,
    *,
    start: datetime = T0,
    seconds: float | None = 60,
    category: str | None = None,
    case: str | None = None,
    device: str = "DV-1",
    badges: frozenset[str] = frozenset({"0001"}),
) -> FileFacts:
    end = start + timedelta(seconds=seconds) if seconds is not None else None
    return FileFacts(file_id, start, end, category, case, device, badges)


# ------------------------------------------------------------------------- categories


def test_default_category_counts_from_the_end_of_the_recording() -> None:
    r = retention_of(f(seconds=3600), [], policy())
    assert r.category == "routine"
    assert r.expires_at == T0 + timedelta(hours=1) + 180 * DAY
    assert r.rule == "routine (default category): 180 days from recording (2026-01-01)"


def test_the_files_own_category_replaces_the_default() -> None:
    r = retention_of(f(category="traffic"), [], policy())
    assert (r.category, r.expires_at) == ("traffic", T0 + timedelta(minutes=1) + 730 * DAY)


def test_an_unknown_category_never_expires() -> None:
    r = retention_of(f(category="trafic"), [], policy())  # a typo must not delete footage
    assert r.never and "not a category of the policy" in r.rule


def test_evidence_waits_for_the_case_to_close_then_its_period() -> None:
    p = policy()
    file = f(category="evidence", case="A-1")
    assert retention_of(file, [CaseFacts("A-1")], p).never
    assert retention_of(f(category="evidence"), [], p).never  # no case to wait for
    closed = T0 + 400 * DAY
    r = retention_of(file, [CaseFacts("A-1", closed_at=closed)], p)
    assert r.expires_at == closed + 365 * DAY
    # Two rows of one case (two officers): open while either is open.
    both = [CaseFacts("A-1", closed_at=closed), CaseFacts("A-1")]
    assert retention_of(file, both, p).never


def test_longest_wins_when_several_categories_apply() -> None:
    p = policy()
    closed = T0 + 10 * DAY
    # Tagged with a closed case: routine (own) vs evidence (case_category): evidence is longer.
    r = retention_of(f(category="routine", case="A-1"), [CaseFacts("A-1", closed_at=closed)], p)
    assert (r.category, r.expires_at) == ("evidence", closed + 365 * DAY)
    # The case's own category (traffic, 730 days) beats evidence closed early.
    cases = [CaseFacts("A-1", category="traffic", closed_at=closed)]
    r = retention_of(f(case="A-1"), cases, p)
    assert (r.category, r.expires_at) == ("traffic", T0 + timedelta(minutes=1) + 730 * DAY)
    # And an open case beats everything.
    assert retention_of(f(category="traffic", case="A-1"), [CaseFacts("A-1")], p).never


def test_the_digest_follows_the_rules() -> None:
    assert policy_digest(policy()) == policy_digest(policy())
    longer = policy(routine=Category(days=181))
    assert policy_digest(longer) != policy_digest(policy(routine=Category(days=180)))


# ------------------------------------------------------------------------------ floor


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[retention.categories.routine]\ndays = 90\n",
            "retention.categories.routine.days: 90 days is below the floor",
        ),
        ("[retention]\nminimum_days = 90\n", "below the legal floor of 180 days"),
        (
            "[retention]\nminimum_days = 365\n[retention.categories.routine]\ndays = 200\n",
            "routine.days: 200 days is below the floor minimum_days = 365",
        ),
        ("[retention]\ndefault_category = 'normal'\n", "default_category 'normal' is not one"),
        (
            "[retention.categories.routine]\ndays = 200\nafter_close_days = 3\n",
            "after_close_days needs until_case_closed",
        ),
        ("[retention]\nlifetime = 3\n", "retention.lifetime: unknown key"),
        ("[schedule]\nretention = '61 2 * * *'\n", "minute: 61 is outside 0-59"),
        ("[schedule]\nfixity = '0 1 * *'\n", "must have 5 fields"),
    ],
)
def test_config_refuses_what_breaks_the_policy(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, toml)
    assert any(message in p for p in err.value.problems), err.value.problems


def test_dockd_config_check_refuses_a_category_below_the_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "dockd.toml"
    cfg.write_text(
        f'[store]\nroot = "{tmp_path}/store"\n[ledger]\nurl = "sqlite:///{tmp_path}/l.db"\n'
        "[retention.categories.routine]\ndays = 30\n"
    )
    assert main(["--config", str(cfg), "config", "check"]) == 78
    err = capsys.readouterr().err
    assert "line 6: retention.categories.routine.days: 30 days is below the floor" in err
    cfg.write_text(cfg.read_text().replace("days = 30", "days = 365"))
    assert main(["--config", str(cfg), "config", "check"]) == 0


# ------------------------------------------------------------------------------ holds


def hold(hold_id: int = 1, scope: str = "file", **kw: object) -> HoldFacts:
    values: dict[str, object] = {"file_id": 1} if scope == "file" else {}
    values.update(kw)
    return HoldFacts(hold_id, "complaint", scope, **values)  # type: ignore[arg-type]


def test_a_hold_beats_expiry() -> None:
    p = policy()
    file = f()
    late = T0 + 1000 * DAY
    assert decide(file, [], [], p, late).delete
    v = decide(file, [], [hold()], p, late)
    assert not v.delete and v.held_by == (1,) and v.why == "held by #1 (complaint)"


def test_hold_scopes_and_windows() -> None:
    file = f(start=T0 + 10 * DAY, case="A-1")
    later = T0 + 1000 * DAY
    p = policy(routine=Category(days=180), evidence=Category(days=180))
    cases: list[CaseFacts] = []
    assert not decide(file, cases, [hold(scope="case", case_number="A-1")], p, later).delete
    assert decide(file, cases, [hold(scope="case", case_number="A-2")], p, later).delete
    dev = {"scope": "device", "device_ref": "DV-1"}
    inside = hold(**dev, window_from=T0, window_until=T0 + 20 * DAY)  # type: ignore[arg-type]
    before = hold(**dev, window_from=T0, window_until=T0 + 5 * DAY)  # type: ignore[arg-type]
    open_ = hold(**dev, window_from=T0 + 10 * DAY)  # type: ignore[arg-type]
    # The recording runs 60 s: a window ending inside it still covers it.
    edge = hold(**dev, window_from=T0 + 10 * DAY + timedelta(seconds=30))  # type: ignore[arg-type]
    assert not decide(file, cases, [inside], p, later).delete
    assert decide(file, cases, [before], p, later).delete
    assert not decide(file, cases, [open_], p, later).delete
    assert not decide(file, cases, [edge], p, later).delete
    other = hold(scope="officer", officer_badge="0002", window_from=T0)
    mine = hold(scope="officer", officer_badge="0001", window_from=T0)
    assert decide(file, cases, [other], p, later).delete
    assert not decide(file, cases, [mine], p, later).delete


def test_releasing_a_hold_never_shortens_retention() -> None:
    p = policy()
    file = f(category="traffic")
    unheld = retention_of(file, [], p)
    released = hold(released_at=T0 + 20 * DAY)
    for now in (T0 + 10 * DAY, T0 + 100 * DAY, unheld.expires_at - DAY, unheld.expires_at):
        with_released = decide(file, [], [released], p, now)
        never_held = decide(file, [], [], p, now)
        assert with_released.retention == never_held.retention == unheld
        assert with_released.delete == never_held.delete == (now >= unheld.expires_at)
    # While it was active it held; the moment it is released, retention alone decides.
    assert not decide(file, [], [released], p, T0 + 10 * DAY).delete


def test_hold_reasons() -> None:
    assert normalize_reason("Mass-Incident") == "emergency"
    assert normalize_reason("petition") == "complaint"
    assert normalize_reason("major_case") == "major_case"
    with pytest.raises(ValueError, match="not a hold reason; use one of evidence"):
        normalize_reason("boredom")


def test_cron_fields_follow_crontab_weekdays() -> None:
    assert cron_fields("30 2 * * *") == ("30", "2", "*", "*", "*")
    assert cron_fields("0 7 * * 1")[4] == "mon"  # APScheduler 3 alone would read 1 as Tuesday
    assert cron_fields("0 7 * * 0")[4] == cron_fields("0 7 * * 7")[4] == "sun"
    assert cron_fields("0 7 * * 1-5")[4] == "mon,tue,wed,thu,fri"
    assert cron_fields("0 7 * * sat,sun")[4] == "sun,sat"
    assert cron_fields("0 7 1 jan-mar *")[3] == "1,2,3"
    with pytest.raises(ValueError, match="runs backwards"):
        cron_fields("0 7 * * 5-1")


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("0 0 last * *", "day of month: cannot read 'last'"),  # APScheduler's extra, not cron
        ("0 0 1st mon * *", "must have 5 fields"),
        ("61 * * * *", "minute: 61 is outside 0-59"),
        ("0 25 * * *", "hour: 25 is outside 0-23"),
        ("*/90 * * * *", "step value \\(90\\) is higher than the total range"),
        ("0 0 * foo *", "month: cannot read 'foo'"),
        ("0 */0 * * *", "Increment must be higher than 0"),
    ],
)
def test_cron_fields_refuse_what_crontab_would_not_run_as_written(expr: str, says: str) -> None:
    """APScheduler checks the ranges and steps; only crontab's grammar gets that far."""
    with pytest.raises(ValueError, match=says):
        cron_fields(expr)


# ------------------------------------------------------------------ the property (pure)

NAMES = ("routine", "evidence", "traffic")
CASES = ("A-1", "A-2", "A-3")
DEVICES = ("DV-1", "DV-2")
BADGES = ("0001", "0002")


@st.composite
def policies(draw: st.DrawFn) -> RetentionConfig:
    floor_months = draw(st.sampled_from([None, None, 6, 9, 12]))
    floor = 180 if floor_months else draw(st.sampled_from([180, 200, 365]))
    # a length in days covers the longest run of the floor's months
    least_days = max(floor, month_span_days(floor_months)[1] if floor_months else 0)
    cats = {}
    # routine and evidence are built in: they are always there.
    for name in ["routine", "evidence"] + (["traffic"] if draw(st.booleans()) else []):
        until = draw(st.booleans())
        in_months = draw(st.booleans())
        cats[name] = Category(
            # often exactly the floor: where counting from ingest matters most
            days=None
            if in_months
            else draw(st.just(least_days) | st.integers(least_days, least_days + 800)),
            months=draw(st.integers(12, 30)) if in_months else None,
            until_case_closed=until,
            after_close_days=draw(st.integers(0, 400)) if until else 0,
        )
    floor_key = {"minimum_months": floor_months} if floor_months else {"minimum_days": floor}
    return RetentionConfig(
        **floor_key,
        categories=cats,
        default_category=draw(st.sampled_from(sorted(cats))),
        case_category=draw(st.sampled_from(["", *sorted(cats)])),
    )


times = st.integers(0, 3 * 365 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m))
maybe_times = st.none() | times
# "now" is as often past every recording as among them, so plenty of files expire.
nows = times | st.integers(3 * 365, 6 * 365).map(lambda d: T0 + timedelta(days=d))


@st.composite
def files(draw: st.DrawFn, n: int) -> list[FileFacts]:
    out = []
    for i in range(1, n + 1):
        out.append(
            FileFacts(
                id=i,
                recorded_start=(start := draw(times)),
                recorded_end=start + timedelta(seconds=draw(st.integers(0, 7200)))
                if draw(st.booleans())
                else None,
                category=draw(st.sampled_from([None, None, *NAMES, "unknown"])),
                case_number=draw(st.none() | st.sampled_from(CASES)),
                device_ref=draw(st.sampled_from(DEVICES)),
                officer_badges=frozenset(draw(st.sets(st.sampled_from(BADGES), max_size=1))),
                # docked up to ~2.5 years after the recording (or its clock) says
                ingested_at=draw(
                    st.none()
                    | st.integers(0, 900 * 24).map(lambda h: start + timedelta(hours=h))
                    | st.integers(0, 900).map(lambda d: start + timedelta(days=d))
                ),
                clock_suspect=draw(st.booleans()),
                time_source=draw(st.sampled_from(["container", "filename", "mtime"])),
            )
        )
    return out


@st.composite
def cases(draw: st.DrawFn) -> list[CaseFacts]:
    return [
        CaseFacts(
            draw(st.sampled_from(CASES)),
            draw(st.none() | st.sampled_from(NAMES)),
            draw(maybe_times),
        )
        for _ in range(draw(st.integers(0, 4)))
    ]


@st.composite
def holds(draw: st.DrawFn, n_files: int) -> list[HoldFacts]:
    out = []
    for i in range(1, draw(st.integers(0, 5)) + 1):
        scope = draw(st.sampled_from(["file", "case", "device", "officer"]))
        out.append(
            HoldFacts(
                id=i,
                reason="evidence",
                scope=scope,
                file_id=draw(st.integers(1, n_files)) if scope == "file" else None,
                case_number=draw(st.sampled_from(CASES)) if scope == "case" else None,
                device_ref=draw(st.sampled_from(DEVICES)) if scope == "device" else None,
                officer_badge=draw(st.sampled_from(BADGES)) if scope == "officer" else None,
                window_from=draw(maybe_times) if scope in ("device", "officer") else None,
                window_until=draw(maybe_times) if scope in ("device", "officer") else None,
                released_at=draw(
                    st.sampled_from([None, None, "t"]).flatmap(
                        lambda v: st.none() if v is None else times
                    )
                ),
            )
        )
    return out


def held_oracle(file: FileFacts, hs: Sequence[HoldFacts], now: datetime) -> bool:
    """Straight from the rules: an active hold on the file, its case, or its device /
    officer over a window the recording overlaps."""
    last = file.recorded_end or file.recorded_start
    for h in hs:
        if h.released_at is not None and h.released_at <= now:
            continue
        if h.scope == "file" and h.file_id == file.id:
            return True
        if h.scope == "case" and file.case_number is not None and h.case_number == file.case_number:
            return True
        who = (h.scope == "device" and h.device_ref == file.device_ref) or (
            h.scope == "officer" and h.officer_badge in file.officer_badges
        )
        after_start = h.window_from is None or max(last, file.recorded_start) >= h.window_from
        before_end = h.window_until is None or file.recorded_start < h.window_until
        if who and after_start and before_end:
            return True
        # A doubted recording time places nothing: it was recorded before its ingest,
        # so a window that starts by then may hold it.
        doubted = file.clock_suspect or file.time_source == "mtime"
        ingested_in = h.window_from is None or file.ingested_at is None
        if who and doubted and (ingested_in or file.ingested_at >= h.window_from):  # type: ignore[operator]
            return True
    return False


def within_months(now: datetime, since: datetime, months: int) -> bool:
    """``now`` is less than calendar ``months`` after ``since``, read on Shanghai's wall
    clock (no daylight saving): the same day of the month, or the month's last day."""
    local = since.astimezone(SHANGHAI).replace(tzinfo=None)
    year, month = local.year + (local.month - 1 + months) // 12, (local.month - 1 + months) % 12 + 1
    last_day = calendar.monthrange(year, month)[1]
    end = local.replace(year=year, month=month, day=min(local.day, last_day))
    return now.astimezone(SHANGHAI).replace(tzinfo=None) < end


def young_oracle(
    file: FileFacts, cs: Sequence[CaseFacts], p: RetentionConfig, now: datetime
) -> bool:
    """Younger than the retention of any category that applies (or than the floor),
    counted from the ingest when the recording time is not trusted; and younger than
    the floor counted from the ingest, whatever the recording time says."""
    last = max(file.recorded_start, file.recorded_end or file.recorded_start)
    if now - last < timedelta(days=p.minimum_days):
        return True
    ingested = file.ingested_at
    if ingested is not None:
        if now - ingested < timedelta(days=p.minimum_days):
            return True
        if p.minimum_months and within_months(now, ingested, p.minimum_months):
            return True
        if (file.clock_suspect or file.time_source == "mtime") and ingested > last:
            last = ingested
    names = {file.category} if file.category else set()
    mine = [c for c in cs if file.case_number and c.case_number == file.case_number]
    if file.case_number:
        names |= {p.case_category} if p.case_category else set()
        names |= {c.category for c in mine if c.category}
    for name in names or {p.default_category}:
        cat = p.categories.get(name)
        if cat is None:
            return True
        if cat.months is not None and within_months(now, last, cat.months):
            return True
        if cat.days is not None and now - last < timedelta(days=cat.days):
            return True
        if cat.until_case_closed:
            if not mine or any(c.closed_at is None for c in mine):
                return True
            closed = max(c.closed_at for c in mine if c.closed_at is not None)
            if now - closed < timedelta(days=cat.after_close_days):
                return True
    return False


@settings(max_examples=200, deadline=None)
@given(data=st.data(), p=policies(), now=nows)
def test_no_held_or_young_file_is_ever_selected(
    data: st.DataObject, p: RetentionConfig, now: datetime
) -> None:
    fs = data.draw(files(8))
    cs = data.draw(cases())
    hs = data.draw(holds(8))
    chosen = {file.id for file, _ in select_for_deletion(fs, cs, hs, p, now)}
    for file in fs:
        must_stay = held_oracle(file, hs, now) or young_oracle(file, cs, p, now)
        assert file.id not in chosen or not must_stay, (file, hs, cs)
        # ... and nothing else is kept back: an expired unheld file is selected.
        assert file.id in chosen or must_stay


# ------------------------------------------------------------ the property (real sweep)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Ledger]]:
    base = tmp_path_factory.mktemp("prop")
    led = open_ledger(make_config(base).ledger.url)
    yield base, led
    led.close()


_counter = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking a ledger is slow
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), p=policies(), now=nows)
def test_the_real_sweep_never_trashes_a_held_or_young_file(
    shared: tuple[Path, Ledger], data: st.DataObject, p: RetentionConfig, now: datetime
) -> None:
    """The same property through the indexed query, the stored expires_at (stale or
    not) and the decision inside the transaction that moves each file."""
    base, led = shared
    root = base / f"ex{next(_counter)}"
    cats = "".join(
        f"[retention.categories.{n}]\n{c.length.split()[1]} = {c.length.split()[0]}\n"
        f"until_case_closed = {str(c.until_case_closed).lower()}\n"
        f"after_close_days = {c.after_close_days}\n"
        for n, c in p.categories.items()
    )
    floor_line = (
        f"minimum_months = {p.minimum_months}"
        if p.minimum_months
        else f"minimum_days = {p.minimum_days}"
    )
    cfg = make_config(
        root,
        f"[retention]\n{floor_line}\ndefault_category = '{p.default_category}'\n"
        f"case_category = '{p.case_category}'\n{cats}",
    )
    cfg = cfg.model_copy(update={"ledger": make_config(base).ledger})
    # A ledger row always knows when it was ingested (the pure facts may not): the
    # oracle must judge the facts the sweep reads.
    fs = [
        dataclasses.replace(f, ingested_at=f.ingested_at or f.recorded_start)
        for f in data.draw(files(6))
    ]
    cs = data.draw(cases())
    stale = data.draw(st.lists(st.none() | times, min_size=len(fs), max_size=len(fs)))
    with led.session() as s:
        for t in (AuditEvent, Hold, SweepRun, Case, Recording):
            s.execute(delete(t))
        for file, expires in zip(fs, stale, strict=True):
            rel = f"2026/01/01/{file.device_ref}/f{file.id}.mp4"
            (cfg.store.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (cfg.store.root / rel).write_bytes(b"x")
            s.add(
                Recording(
                    id=file.id,
                    station="st-test",
                    device_ref=file.device_ref,
                    badge_hint=next(iter(file.officer_badges), None),
                    kind="video",
                    category=file.category,
                    case_number=file.case_number,
                    recorded_start=file.recorded_start,
                    recorded_end=file.recorded_end,
                    time_source=file.time_source,
                    clock_suspect=file.clock_suspect,
                    size_bytes=1,
                    blake3="0" * 64,
                    source_path=rel,
                    store_path=rel,
                    ingested_at=file.ingested_at,
                    state="stored",
                    expires_at=expires,
                )
            )
        for c in cs:
            s.add(
                Case(
                    case_number=c.case_number,
                    category=c.category,
                    closed_at=c.closed_at,
                    imported_at=T0,
                    imported_by="test",
                )
            )
        s.flush()
        hs = data.draw(holds(6))
        for h in hs:
            s.add(
                Hold(
                    id=h.id,
                    reason=h.reason,
                    scope=h.scope,
                    file_id=h.file_id,
                    case_number=h.case_number,
                    device_ref=h.device_ref,
                    officer_badge=h.officer_badge,
                    window_from=h.window_from,
                    window_until=h.window_until,
                    placed_at=T0,
                    placed_by="test",
                    released_at=h.released_at,
                )
            )
    clock = FixedClock(now)
    ctx = Context(cfg, led, clock, AlertSink(led, "st-test", clock, cfg.alerts))
    run_retention(ctx)
    with led.session() as s:
        state = {i: st for i, st in s.execute(select(Recording.id, Recording.state))}
    for file, expires in zip(fs, stale, strict=True):
        must_stay = held_oracle(file, hs, now) or young_oracle(file, cs, p, now)
        if must_stay:
            assert state[file.id] == "stored", (file, hs, cs)
        elif expires is None:  # freshly computed: an expired, unheld file goes
            assert state[file.id] == "trashed", (file, hs, cs)


_ = NEVER


def test_the_pure_policy_loads_no_database_or_store_code() -> None:
    """What import-linter checks in the source, checked in a fresh interpreter: importing
    the decisions (and the configuration they read) loads no ledger, store or SQLAlchemy."""
    probe = (
        "import sys, dockd.policy.holds, dockd.policy.retention\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'"
        " or m.startswith(('dockd.ledger', 'dockd.store', 'dockd.policy.adapter',"
        " 'dockd.policy.placing'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
