"""The web view's footage search at scale (issue 13): under 200 ms median at 1M files. Not a test.

Fills a ledger as ``bench/ledger.py`` does (default 1,000,000 files: 100 devices, 200
officers named ``Officer N``, two years of footage, 10% with a case ``C-NNNNN``, 1%
ingested late, 0.5% clock-suspect, 0.3% with another officer's badge in the name), or
opens one it filled before (``--ledger URL``: a filled SQLite or PostgreSQL ledger), and
reports the median and spread of repeated runs of what the search page asks: one page
of 50 rows, the total and every row's flags (:func:`dockd.reports.search.search`).

    .venv/bin/python bench/search.py [--files 1000000] [--repeat 7]
                                     [--backend sqlite|postgresql|both] [--ledger URL]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from common import analyze, machine, parser, say, timed, work_dir, write_results
from ledger import backend, fill

from dockd.config import Config
from dockd.config.station import StationConfig
from dockd.ledger.db import Ledger, open_ledger
from dockd.reports.search import SearchQuery, search

TZ = ZoneInfo("Asia/Shanghai")
MARCH = datetime(2026, 3, 1, tzinfo=TZ), datetime(2026, 4, 1, tzinfo=TZ)
NOW = datetime(2026, 11, 1, tzinfo=UTC)  # the fill's "now"
GOAL_MS = 200.0
# Indexes the search would use, not in the schema (--indexes creates them in the bench's
# ledger only): the period's count from the index alone, and each rare flag found from
# its own small index rather than by reading every row.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_bench_recorded_state ON files (recorded_start, state)",
    "CREATE INDEX IF NOT EXISTS ix_bench_late ON files (recorded_start, recorded_end, ingested_at)",
    "CREATE INDEX IF NOT EXISTS ix_bench_clock ON files (recorded_start) WHERE clock_suspect = 1",
    "CREATE INDEX IF NOT EXISTS ix_bench_badge ON files (recorded_start) WHERE badge_mismatch = 1",
)


def searches() -> dict[str, SearchQuery]:
    """What people type into the search page, most in the station's month of March 2026."""
    start, end = MARCH
    month = SearchQuery(start=start, end=end)
    return {
        "newest first, no filter": SearchQuery(),
        "officer name part + month": replace(month, officer="officer 42"),
        "badge part + month": replace(month, officer="00004"),
        "officer + month, by size": replace(
            month, officer="officer 42", sort="size", descending=False
        ),
        "month, page 20": replace(month, page=20),
        "case part": SearchQuery(case="c-0123"),
        "case part + month": replace(month, case="c-01"),
        "flag late + month": replace(month, flags=frozenset({"late"})),
        "flag gap + month": replace(month, flags=frozenset({"gap"})),
        "flag clock-suspect": SearchQuery(flags=frozenset({"clock-suspect"})),
        "flag badge-mismatch + officer": SearchQuery(
            officer="officer 1", flags=frozenset({"badge-mismatch"})
        ),
        "held + month": replace(month, held=True),
        "device part + week": SearchQuery(device="dv-0042", start=start, end=start + timedelta(7)),
    }


# wall and CPU seconds of each run, rows and total of the last
Timing = tuple[list[float], list[float], int, int]


def measure(led: Ledger, repeat: int) -> dict[str, Timing]:
    cfg = Config().model_copy(update={"station": StationConfig(id="st-0")})
    out: dict[str, Timing] = {}
    for name, q in searches().items():

        def run(q: SearchQuery = q) -> tuple[float, int, int]:
            cpu = time.process_time()
            with led.read() as s:
                page = search(s, q, cfg, NOW)
            return time.process_time() - cpu, len(page.rows), page.total

        timed(run)  # one warm-up: the first run reads the pages from disk
        runs = [timed(run) for _ in range(repeat)]
        _, rows, total = runs[-1][1]
        out[name] = ([t for t, _ in runs], [r[0] for _, r in runs], rows, total)
        wall = statistics.median(t for t, _ in runs) * 1000
        say(f"  {name:34} {wall:8.1f} ms  {total:>7}")
    return out


@contextmanager
def given(url: str) -> Iterator[Ledger]:
    led = open_ledger(url, create=False)
    try:
        yield led
    finally:
        led.close()


def add_indexes(led: Ledger) -> None:
    with led.engine.begin() as conn:
        for ddl in INDEXES:
            conn.exec_driver_sql(ddl)
        conn.exec_driver_sql("ANALYZE")
    say("bench-only indexes: " + "; ".join(INDEXES))


def ms(timing: Timing) -> dict[str, Any]:
    runs, cpu, rows, total = timing
    return {
        "median_ms": round(statistics.median(runs) * 1000, 1),
        "cpu_median_ms": round(statistics.median(cpu) * 1000, 1),
        "min_ms": round(min(runs) * 1000, 1),
        "max_ms": round(max(runs) * 1000, 1),
        "rows": rows,
        "total": total,
    }


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = parser(__doc__, results="search.json")
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    ap.add_argument("--ledger", help="a ledger bench/ledger.py's fill made: measured as it is")
    ap.add_argument("--indexes", action="store_true", help="create INDEXES first (SQLite)")
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    say(f"load average at start: {load()}")
    if args.ledger:
        with given(args.ledger) as led:
            if args.indexes:
                add_indexes(led)
            results["given"] = {k: ms(v) for k, v in measure(led, args.repeat).items()}
    else:
        names = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
        with work_dir(args.workdir, "dockd-bench-", keep=args.keep) as tmp:
            for name in names:
                with backend(name, tmp) as led:
                    fill_s, _ = timed(lambda led=led: fill(led, args.files))  # type: ignore[misc]
                    if args.indexes:
                        add_indexes(led)
                    analyze(led)
                    say(f"{name}: filled {args.files:,} rows in {fill_s:.1f} s")
                    m = measure(led, args.repeat)
                    results[name] = {"fill_s": round(fill_s, 1), **{k: ms(v) for k, v in m.items()}}
    say(f"load average at end: {load()}")
    say(f"\nmedian (min-max) of {args.repeat} runs in ms; total matches (goal < {GOAL_MS:g} ms)")
    for backend_name, res in results.items():
        say(f"\n| search ({backend_name}) | matches | median ms | min-max ms | CPU ms | goal |")
        say("|---|---:|---:|---:|---:|---|")
        for q, r in res.items():
            if q == "fill_s":
                continue
            met = "met" if r["median_ms"] < GOAL_MS else "NOT met"
            spread, cpu = f"{r['min_ms']}-{r['max_ms']}", r["cpu_median_ms"]
            say(f"| {q} | {r['total']:,} | {r['median_ms']} | {spread} | {cpu} | {met} |")
    write_results(args.json, {"files": args.files, "machine": machine(), "load": load(), **results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
