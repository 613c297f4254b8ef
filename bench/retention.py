"""Retention sweep cost against the size of what expires, on a ledger of many files.

Run from the repository root::

    .venv/bin/python bench/retention.py                  # 1,000,000 files
    .venv/bin/python bench/retention.py --files 200000   # quicker

One run

1. builds a fresh SQLite ledger of ``--files`` rows, bulk-inserted with SQLAlchemy
   Core ``executemany`` in one transaction per chunk; each row's ``expires_at`` is what
   the default policy gives it (routine: 180 days after its recording);
2. arranges that at time T1 0.01 % of the files have expired, and at T2 (ten days
   later) 1 %; only those files exist on disk (tiny real files, 0440 in 0750 folders),
   because the sweep never opens the others;
3. times ``run_retention`` at T1 (0.01 % expire: trash them) and at T2 (1 % expired,
   the rest of them go), then the purge of all of them at T2 + 8 days; each on the same
   ledger of ``--files`` rows;
4. prints the query plan of the candidate query (it must use ``ix_files_state_expires``,
   not scan the table) and the timings, and writes them as JSON to
   ``bench/out/retention.json`` (``--json`` to change).

The sweep works in batches of ``[retention] batch_size`` files (500): one transaction
per batch (the decisions re-made under the ledger's write lock), one read of their
facts and holds, one fsync per directory a file left or entered, and one write of
their audit events (one event per file, chained as one by one). The cost is per file
that expires; the ledger's size adds only index depth.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from common import analyze, bench_config, context, machine, parser, timed, work_dir, write_results
from sqlalchemy import Table, insert, text

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Recording
from dockd.logs import setup_logging
from dockd.sweeps.retention import run_retention
from dockd.sweeps.retention_pass import RetentionReport

T1 = datetime(2027, 6, 1, 2, 30, tzinfo=UTC)
T2 = T1 + timedelta(days=10)
RETENTION = timedelta(days=180)
CHUNK = 50_000


def expiry_of(i: int, n: int) -> datetime:
    """Spread expiries: a few before T1, 1 % before T2, the rest well after."""
    few = max(1, n // 10_000)  # 0.01 %
    some = max(few + 1, n // 100)  # 1 %
    if i < few:
        return T1 - timedelta(days=30) + timedelta(seconds=i * 60)
    if i < some:
        return T1 + timedelta(seconds=1 + (i - few) * (9 * 86400 // (some - few)))
    return T2 + timedelta(days=30) + timedelta(seconds=(i * 37) % (400 * 86400))


def load(led: Ledger, cfg: Config, n: int) -> tuple[float, int]:
    """Insert n rows (Core executemany); create the files that will expire. Returns
    (seconds, files on disk)."""
    started = time.perf_counter()
    root = cfg.store.root
    table = cast(Table, Recording.__table__)
    on_disk = 0
    ingested = T1 - timedelta(days=400)
    for base in range(0, n, CHUNK):
        rows: list[dict[str, Any]] = []
        for i in range(base, min(n, base + CHUNK)):
            expires = expiry_of(i, n)
            rec = expires - RETENTION - timedelta(minutes=2)
            day = rec.date()
            dev = f"DV-{i % 500:04d}"
            rel = f"{day:%Y/%m/%d}/{dev}/CLIP_{i:08d}.MP4"
            rows.append(
                {
                    "station": "bench",
                    "device_ref": dev,
                    "kind": "video",
                    "recorded_start": rec,
                    "recorded_end": rec + timedelta(minutes=2),
                    "time_source": "container",
                    "size_bytes": 16,
                    "blake3": f"{i:064x}",
                    "source_path": f"DCIM/{i:08d}.MP4",
                    "store_path": rel,
                    "ingested_at": ingested,
                    "state": "stored",
                    "expires_at": expires,
                    "verified": True,
                }
            )
            if expires <= T2:
                path = root / rel
                path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
                path.write_bytes(b"0123456789abcdef")
                path.chmod(0o440)
                on_disk += 1
        with led.engine.begin() as conn:
            conn.execute(insert(table), rows)
        print(f"  loaded {min(n, base + CHUNK):>9,} rows", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    analyze(led)
    return time.perf_counter() - started, on_disk


def plan(led: Ledger) -> list[str]:
    """The plan SQLite picks for the sweep's candidate query (as the sweep writes it)."""
    sql = (
        "EXPLAIN QUERY PLAN SELECT id, expires_at FROM files "
        "WHERE expires_at <= :t AND state = 'stored' AND station = 'bench' "
        "ORDER BY expires_at, id LIMIT 500"
    )
    with led.engine.connect() as conn:
        rows = conn.execute(text(sql), {"t": "2027-06-01 02:30:00.000000"}).fetchall()
    return [str(r[-1]) for r in rows]


def sweep(led: Ledger, cfg: Config, at: datetime) -> tuple[float, RetentionReport]:
    ctx = context(cfg, led, FixedClock(at))
    return timed(lambda: run_retention(ctx))


def timing(seconds: float, files: int, what: str = "expired") -> dict[str, Any]:
    return {
        what: files,
        "seconds": round(seconds, 3),
        "ms_per_file": round(1000 * seconds / max(1, files), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, results="retention.json")
    ap.add_argument("--files", type=int, default=1_000_000, help="rows in the ledger")
    args = ap.parse_args(argv)
    n = args.files
    with work_dir(args.workdir, "dockd-retention-", keep=args.keep) as workdir:
        cfg = bench_config(workdir, extra='[logging]\nlevel = "warning"\n')
        setup_logging(cfg.logging.level, "console")
        led = open_ledger(cfg.ledger.url)
        print(f"building a ledger of {n:,} files in {workdir} ...", file=sys.stderr)
        load_s, on_disk = load(led, cfg, n)
        query_plan = plan(led)
        t1_s, r1 = sweep(led, cfg, T1)
        t2_s, r2 = sweep(led, cfg, T2)
        t3_s, r3 = sweep(led, cfg, T2 + timedelta(days=8))
        with led.engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM files")).scalar_one()
        led.close()
        results: dict[str, Any] = {
            "files": rows,
            "load_s": round(load_s, 2),
            "query_plan": query_plan,
            "sweep_0.01pct": timing(t1_s, len(r1.trashed)),
            "sweep_1pct": timing(t2_s, len(r2.trashed)),
            "purge": timing(t3_s, len(r3.purged), "purged"),
            "files_on_disk": on_disk,
            **machine(),
        }
        print(f"\nretention sweep on a ledger of {rows:,} files (SQLite, in batches)")
        print(f"  load (Core executemany):       {load_s:8.1f} s")
        print("  candidate query plan:          " + " | ".join(query_plan))
        for label, key, what in (
            ("0.01 % expired (trash)", "sweep_0.01pct", "expired"),
            ("1 % expired (trash)", "sweep_1pct", "expired"),
            ("purge after the grace period", "purge", "purged"),
        ):
            d = results[key]
            print(
                f"  {label:<30} {d['seconds']:8.2f} s  {d[what]:>7,} files"
                f"  {d['ms_per_file']:.2f} ms/file"
            )
        ratio_t = t2_s / max(t1_s, 1e-9)
        ratio_n = len(r2.trashed) / max(1, len(r1.trashed))
        print(f"  1 % against 0.01 %: {ratio_t:.0f}x the time for {ratio_n:.0f}x the files")
        write_results(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
