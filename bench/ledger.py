"""Ledger queries at scale, on SQLite and on PostgreSQL (issue 6). Not a test.

Fills a ledger with N synthetic file rows (default 1,000,000: 100 devices, 200
officers, two years of footage, 10% tagged with a case, 1% ingested late) and
reports the median of repeated runs of what auditors ask most:

* the recordings of one officer in one month (``dockd ledger query --officer --from --to``)
* the recordings of one case (``dockd ledger query --case``)
* the late-ingest report for one month (``dockd report late --from --to``)

    .venv/bin/python bench/ledger.py [--files 1000000] [--repeat 7]
                                     [--backend sqlite|postgresql|both] [--json PATH]

PostgreSQL is a throw-away server started from Debian's binaries (tests/helpers/pgserver.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from common import analyze, median_of, parser, say, timed, work_dir, write_results
from sqlalchemy import insert

from dockd.config import Config
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Device, Officer, Recording
from dockd.ledger.queries import FileFilter, find_files
from dockd.reports.base import Period
from dockd.reports.catalog import run_report
from tests.helpers.pgserver import running_server

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 11, 1, tzinfo=UTC)
DEVICES, OFFICERS = 100, 200


def fill(led: Ledger, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with led.session() as s:
        s.execute(
            insert(Device),
            [
                {"number": f"DV-{i:04d}", "serial": f"SN{i:08d}", "registered_at": START}
                for i in range(DEVICES)
            ],
        )
        s.execute(
            insert(Officer),
            [
                {"badge": f"{i:06d}", "name": f"Officer {i}", "created_at": START}
                for i in range(OFFICERS)
            ],
        )
    span = (now - START).total_seconds()
    batch: list[dict[str, object]] = []
    for i in range(n):
        dev = rng.randrange(DEVICES)
        rec = START + timedelta(seconds=rng.random() * span)
        dur = rng.uniform(30, 1800)
        late = rng.random() < 0.01
        ingest = (
            rec
            + timedelta(seconds=dur)
            + timedelta(hours=rng.uniform(30, 90) if late else rng.uniform(0.5, 12))
        )
        batch.append(
            {
                "station": f"st-{dev % 4}",
                "device_id": dev + 1,
                "device_ref": f"DV-{dev:04d}",
                "officer_id": (dev * 2 + (i % 2)) % OFFICERS + 1,
                "kind": "video",
                "case_number": f"C-{rng.randrange(20000):05d}" if rng.random() < 0.1 else None,
                "access_class": "normal",
                "recorded_start": rec,
                "recorded_end": rec + timedelta(seconds=dur),
                "time_source": "container",
                "duration_s": dur,
                "size_bytes": int(dur * 1_000_000),
                "blake3": f"{i:064x}",
                "source_path": f"DCIM/100MEDIA/{i}.MP4",
                "store_path": f"x/{i}.MP4",
                "ingested_at": ingest,
                "verified": True,
                "probe_failed": False,
                "clock_suspect": False,
                "unregistered": False,
                "state": "stored",
            }
        )
        if len(batch) == 20_000:
            with led.session() as s:
                s.execute(insert(Recording), batch)
            batch.clear()
    if batch:
        with led.session() as s:
            s.execute(insert(Recording), batch)


def measure(led: Ledger, repeat: int) -> dict[str, tuple[float, int]]:
    cfg = Config()
    month = Period(datetime(2026, 3, 1, tzinfo=TZ), datetime(2026, 4, 1, tzinfo=TZ))

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

    def late_report() -> int:
        with led.read() as s:
            return len(run_report("late", s, cfg, month, datetime.now(UTC)).rows)

    return {
        "officer+month": median_of(by_officer, repeat),
        "case": median_of(by_case, repeat),
        "late report (month)": median_of(late_report, repeat),
    }


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


def main() -> int:
    ap = parser(__doc__, results="ledger.json")
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = ap.parse_args()
    names = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: dict[str, dict[str, Any]] = {}
    with work_dir(args.workdir, "dockd-bench-", keep=args.keep) as tmp:
        for name in names:
            with backend(name, tmp) as led:
                fill_s, _ = timed(lambda: fill(led, args.files))
                analyze(led)
                m = measure(led, args.repeat)
                results[name] = {
                    "fill_s": round(fill_s, 1),
                    **{k: {"median_ms": round(v[0] * 1000, 1), "rows": v[1]} for k, v in m.items()},
                }
                say(f"{name}: filled {args.files:,} rows in {fill_s:.1f} s")
    say(f"\nmedian of {args.repeat} runs, {args.files:,} files")
    say(f"{'query':24} " + " ".join(f"{n:>18}" for n in names))
    for q in ("officer+month", "case", "late report (month)"):
        cells = [f"{results[n][q]['median_ms']:>9} ms ({results[n][q]['rows']:>4})" for n in names]
        say(f"{q:24} " + " ".join(f"{c:>18}" for c in cells))
    write_results(args.json, {"files": args.files, **results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
