"""Ledger queries at scale, on SQLite and on PostgreSQL (issues 6 and 16). Not a test.

Fills a ledger with N synthetic file rows (default 1,000,000: 100 devices, 200
officers, two years of footage, 10% tagged with a case, 1% ingested late, 0.5%
clock-suspect, 0.3% with another officer's badge in the name, 7% audio and 3%
photos) and reports the median and spread of repeated runs of what auditors ask:

* the recordings of one officer in one month (``dockd ledger query --officer --from --to``)
* the recordings of one case (``dockd ledger query --case``)
* every footage report for one month (``dockd report NAME --from --to``: late, gaps,
  untagged, untagged-files, usage-officer, usage-device, clock, badge-mismatch), and
  the web's last page of 500 of untagged-files (``/reports/untagged-files``)
* the weekly summary of one week
* what the retention sweep takes in the next 30 days (``dockd sweep upcoming 30``), and
  its first and last page of 500 as the web shows them (``/reports/upcoming``)

Rows are filled as a station running for two years leaves them: each file's
``expires_at`` as the default policy gives it, and what expired before the fill's
"now" already trashed or purged by the nightly sweep. The month reported on is
September 2026, two months before that "now", when its footage is all stored.

    .venv/bin/python bench/ledger.py [--files 1000000] [--repeat 3]
                                     [--backend sqlite|postgresql|both] [--json PATH]
                                     [--reuse]   # measure the ledger a --keep run left

PostgreSQL is a throw-away server started from Debian's binaries (tests/helpers/pgserver.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from common import analyze, context, machine, parser, say, timed, work_dir, write_results
from ledger_fill import DEVICES, NOW, OFFICERS, ORDERS
from ledger_fill import fill as fill  # search.py fills its ledger with it
from sqlalchemy import event, func, select

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.config.station import StationConfig
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Recording
from dockd.ledger.queries import FileFilter, find_files
from dockd.reports.base import Period
from dockd.reports.catalog import run_report
from dockd.reports.footage import untagged_files_page
from dockd.reports.weekly import weekly_summary
from dockd.sweeps.listings import upcoming, upcoming_page
from tests.helpers.pgserver import running_server

TZ = ZoneInfo("Asia/Shanghai")
MONTH_REPORTS = (
    "late",
    "gaps",
    "untagged",
    "untagged-files",
    "usage-officer",
    "usage-device",
    "clock",
    "badge-mismatch",
)


Timing = tuple[list[float], int]  # wall seconds of each run, rows of the last


def measure(led: Ledger, repeat: int, *, plan: bool = False) -> dict[str, Timing]:
    def runs_of(fn: Callable[[], int], repeat: int) -> Timing:
        if plan:
            for line in plans(led, fn):
                say(f"    plan: {line}")
        runs = [timed(fn) for _ in range(repeat)]
        return [t for t, _ in runs], runs[-1][1]

    cfg = Config()
    month = Period(datetime(2026, 9, 1, tzinfo=TZ), datetime(2026, 10, 1, tzinfo=TZ))
    now = NOW  # the month is two months old: all of it stored, untagged footage is due

    def by_officer() -> int:
        with led.read() as s:
            return len(
                find_files(
                    s,
                    FileFilter(officer="000042", recorded_from=month.start, recorded_to=month.end),
                    TZ,
                )
            )

    def by_case() -> int:
        with led.read() as s:
            return len(find_files(s, FileFilter(case="C-01234"), TZ))

    def report(name: str) -> Callable[[], int]:
        def run() -> int:
            with led.read() as s:
                return len(run_report(name, s, cfg, month, now).rows)

        return run

    def untagged_last_page() -> int:  # the web's last page of 500 (a page reads its own)
        with led.read() as s:
            total = untagged_files_page(s, cfg, month, now, 0, 0)[1]
            skip = max(0, (total - 1) // 500 * 500)
            return len(untagged_files_page(s, cfg, month, now, skip, 500)[0].rows)

    one_station = cfg.model_copy(update={"station": StationConfig(id="st-0")})

    def weekly() -> int:
        start = datetime(2026, 9, 7, tzinfo=TZ)
        with led.read() as s:
            summary = weekly_summary(s, one_station, start=start, end=start + timedelta(days=7))
            return summary.ingested_files

    sweep_ctx = context(one_station, led, FixedClock(now))

    def coming() -> int:
        return len(upcoming(sweep_ctx, 30))

    def coming_page(number: int) -> Callable[[], int]:
        def run() -> int:  # the web's page of 500 (a number past the end: the last)
            return len(upcoming_page(sweep_ctx, 30, number=number, size=500).rows)

        return run

    queries: dict[str, Callable[[], int]] = {"officer+month": by_officer, "case": by_case}
    queries |= {f"report {name}": report(name) for name in MONTH_REPORTS}
    queries["untagged-files, last page"] = untagged_last_page
    queries |= {"weekly summary": weekly, "upcoming 30 days": coming}
    queries |= {"upcoming, page 1": coming_page(1), "upcoming, last page": coming_page(10**6)}
    out = {}
    for name, fn in queries.items():
        if plan:
            say(f"  {name}")
        out[name] = runs_of(fn, repeat)
    return out


@contextmanager
def backend(name: str, workdir: Path) -> Iterator[Ledger]:
    if name == "sqlite":
        led = open_ledger(f"sqlite:///{workdir}/bench.sqlite3")
        try:
            yield led
        finally:
            led.close()
        return
    with running_server() as server:
        led = open_ledger(server.new_database())
        try:
            yield led
        finally:
            led.close()


def plans(led: Ledger, fn: Callable[[], int]) -> list[str]:
    """The plan of every query ``fn`` runs (``EXPLAIN QUERY PLAN`` on SQLite,
    ``EXPLAIN`` on PostgreSQL), as the database will run it."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, params))

    event.listen(led.engine, "before_cursor_execute", grab)
    try:
        fn()
    finally:
        event.remove(led.engine, "before_cursor_execute", grab)
    out: list[str] = []
    explain = "EXPLAIN QUERY PLAN " if led.dialect == "sqlite" else "EXPLAIN "
    with led.engine.connect() as conn:
        for statement, params in seen:
            found = conn.exec_driver_sql(explain + statement, params).fetchall()
            out.append(" | ".join(str(r[-1]) for r in found))
    return out


def _rows(led: Ledger) -> int:
    with led.read() as s:
        return s.scalar(select(func.count()).select_from(Recording)) or 0


def ms(runs: list[float], rows: int) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(runs) * 1000, 1),
        "min_ms": round(min(runs) * 1000, 1),
        "max_ms": round(max(runs) * 1000, 1),
        "rows": rows,
    }


def cell(r: dict[str, Any]) -> str:
    return f"{r['median_ms']} ({r['min_ms']}-{r['max_ms']}) {r['rows']:>6}"


def main() -> int:
    ap = parser(__doc__, results="ledger.json")
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--devices", type=int, default=DEVICES, help=f"recorders (default {DEVICES})")
    ap.add_argument("--officers", type=int, default=OFFICERS, help=f"officers (default {OFFICERS})")
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--plans", action="store_true", help="print the plan of every query")
    ap.add_argument(
        "--order",
        choices=ORDERS,
        default="ingest",
        help="the order the rows are written in: ingest (as dockd writes them, the"
        " default) or random (the runs before 2026-11-27; see ledger_fill.py);"
        " with --reuse, the order the kept ledger was filled in, for the JSON",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="measure the SQLite ledger in --workdir as a --keep run left it (no fill)",
    )
    args = ap.parse_args()
    names = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: dict[str, dict[str, Any]] = {}
    with work_dir(args.workdir, "dockd-bench-", keep=args.keep) as tmp:
        for name in names:
            with backend(name, tmp) as led:
                fill_s = 0.0
                reused = _rows(led) if args.reuse else 0
                if reused:  # measured as filled, whatever --files says
                    args.files = reused
                else:
                    fill_s, _ = timed(
                        lambda: fill(
                            led,
                            args.files,
                            devices=args.devices,
                            officers=args.officers,
                            order=args.order,
                        )
                    )
                analyze(led)
                m = measure(led, args.repeat, plan=args.plans)
                results[name] = {"fill_s": round(fill_s, 1), **{k: ms(*v) for k, v in m.items()}}
                say(f"{name}: filled {args.files:,} rows in {fill_s:.1f} s")
    say(f"\nmedian (min-max) of {args.repeat} runs in ms, {args.files:,} files; rows found")
    say(f"{'query':28} " + " ".join(f"{n:>28}" for n in names))
    for q in results[names[0]]:
        if q not in ("fill_s", "order"):
            say(f"{q:28} " + " ".join(f"{cell(results[n][q]):>28}" for n in names))
    shape = {
        "files": args.files,
        "devices": args.devices,
        "officers": args.officers,
        "order": args.order,
    }
    write_results(args.json, {**shape, "machine": machine(), **results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
