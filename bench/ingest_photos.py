"""Many small files bench: a shift's JPEG stills, dockd against ``cp -r`` + ``sync``.

Run from the repository root::

    .venv/bin/python bench/ingest_photos.py                           # 1,000 photos, median of 3
    .venv/bin/python bench/ingest_photos.py --photos 20 --repeat 1    # quick check (seconds)

One run

1. builds a vendor-A recorder tree (bench/ingest_recorder.py) of ``--photos`` real
   JPEGs of about 300 KB each, ``DCIM/100MEDIA/<serial>_<badge>_<YYYYMMDDhhmmss>_<seq>.JPG``
   one every 30 s, plus ``DEVICE.ID`` (``.JPG`` is one of ``[ingest] photo_extensions``),
   and takes the BLAKE3 of every photo with ``b3sum`` (python blake3 without it);
2. times ``--repeat`` times (default 3, interleaved; median, min-max and CPU seconds
   reported), the page cache dropped before each measurement:

   * ``cp -r SRC DST && sync``;
   * the same with, beside it, a direct read of a durable copy of the photos made once
     before (``O_DIRECT``, as dockd re-reads): the disk's ceiling for any re-read
     verify (with ``verify = "reread"`` timed);
   * ``run_ingest`` (as bench/ingest.py runs it: a fresh SQLite ledger and store, the
     recorder registered and assigned) with ``verify`` as shipped (``"reread"``) and
     ``"none"``; each session must store every photo, and the ledger's BLAKE3 of each
     must be the source's, or the bench stops;

3. prints a Markdown table, dockd's throughput against ``cp -r`` + ``sync`` (goal: at
   least 0.8 with verify as shipped, issue 16), and writes everything as JSON to
   ``bench/out/ingest_photos.json`` (``--json`` to change).

All temporary data (about four times the photos' size) lives under ``--workdir``
(default: a new directory in /var/tmp) and is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import CacheDropper, parser, say
from ingest_recorder import PHOTO_HEIGHT, PHOTO_WIDTH, Verify, make_photos, photo_name
from ingest_report import environment, publish, reread_ceiling, timing_table, vs_cp_sync
from ingest_timing import (
    Measurements,
    bench_dir,
    durable_copy,
    load_at_start,
    tree_hashes,
    warm_up,
)

from dockd.config.ingest import IngestConfig
from dockd.logs import setup_logging
from fixtures.make_recorder import DEFAULT_START

GOAL = 0.8  # issue 16: >= 0.8 x cp -r + sync with verify as shipped
SHIPPED: Verify = IngestConfig().verify


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = parser(__doc__, results="ingest_photos.json")
    p.add_argument("--photos", type=int, default=1000, help="JPEG photos in the tree")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    p.add_argument(
        "--verify",
        choices=("none", "reread", "both"),
        default="both",
        help=f"dockd verify modes to time (default both; shipped: {SHIPPED})",
    )
    p.add_argument("--copy-buffer-kib", type=int, default=None, help="ingest.copy_buffer_kib")
    p.add_argument("--no-drop-caches", action="store_true", help="do not drop the page cache")
    args = p.parse_args(argv)
    if args.photos < 1 or args.repeat < 1:
        p.error("--photos and --repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("warning")
    verifies: list[Verify] = [SHIPPED, "none"] if args.verify == "both" else [args.verify]
    drop = CacheDropper(enabled=not args.no_drop_caches)
    with bench_dir(args.workdir, "dockd-bench-photos-", keep=args.keep) as workdir:
        report = run_bench(args, workdir, verifies, drop)
    publish(report, render_table(report), args.json)
    return 0


def run_bench(
    args: argparse.Namespace, workdir: Path, verifies: list[Verify], drop: CacheDropper
) -> dict[str, Any]:
    load_start = load_at_start()
    use_b3sum = shutil.which("b3sum") is not None
    src, dst, runs = workdir / "bench-src", workdir / "bench-dst", workdir / "bench-runs"
    runs.mkdir(exist_ok=True)
    warm_up(workdir / "bench-tiny", runs, args.copy_buffer_kib)

    say(f"encoding {args.photos} JPEGs of {PHOTO_WIDTH}x{PHOTO_HEIGHT} in {src} ...")
    t0 = time.perf_counter()
    sizes = [p.stat().st_size for p in make_photos(src, args.photos, DEFAULT_START)]
    total = sum(sizes)
    say(
        f"  encoded in {time.perf_counter() - t0:.1f} s: {total / 1e6:.1f} MB, "
        f"{statistics.mean(sizes) / 1e3:.0f} KB each ({min(sizes) / 1e3:.0f}-"
        f"{max(sizes) / 1e3:.0f} KB)"
    )
    source = tree_hashes(src, use_b3sum)
    del source["DEVICE.ID"]  # not a recording: not stored
    if len(source) != args.photos:
        raise SystemExit(f"the tree holds {len(source)} photos, not {args.photos}")

    bench = Measurements(total, drop)
    readback = None
    if "reread" in verifies:
        readback = durable_copy(src, workdir / "bench-readback")
        bench.add_ceiling()
    bench.add_dockd(verifies)
    for rep in range(args.repeat):
        say(f"run {rep + 1}/{args.repeat}")
        bench.cp_sync(src, dst)
        if readback is not None:
            bench.cp_sync_beside_read(src, dst, readback)
        for v in verifies:
            bench.dockd(src, runs / f"{v}-{rep}", v, args.copy_buffer_kib, args.photos)
            if bench.hashes[f"dockd_{v}"] != source:
                raise SystemExit(f"dockd verify={v}: the ledger's BLAKE3s are not the source's")

    timings = bench.report()
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "environment": environment(workdir, drop, args.copy_buffer_kib, load_start, use_b3sum),
        "tree": {
            "photos": args.photos,
            "total_bytes": total,
            "mean_bytes": statistics.mean(sizes),
            "min_bytes": min(sizes),
            "max_bytes": max(sizes),
            "width": PHOTO_WIDTH,
            "height": PHOTO_HEIGHT,
            "layout": photo_name(DEFAULT_START, 1),
        },
        "repeat": args.repeat,
        "shipped_verify": SHIPPED,
        "timings": timings,
        "ratios": [
            *(vs_cp_sync(timings, f"dockd_{v}", GOAL) for v in verifies),
            *reread_ceiling(timings, GOAL),
        ],
        "hashes_agree": True,  # checked above, for every photo of every run
    }


def render_table(report: dict[str, Any]) -> str:
    env, tree = report["environment"], report["tree"]
    lines = [
        f"dockd many-small-files bench, {tree['photos']} JPEG photos of "
        f"{tree['mean_bytes'] / 1e3:.0f} KB on average ({tree['width']}x{tree['height']}), "
        f"median of {report['repeat']} run(s); {env['cpus']} CPUs, {env['kernel']}, "
        f"copy_buffer {env['copy_buffer_kib']} KiB, page cache: {env['page_cache']}; "
        f"load average {env['loadavg_start']:.2f} at start, {env['loadavg_end']:.2f} at end",
        "",
        *timing_table(report["timings"]),
        "",
        *(f"- {r['text']}" for r in report["ratios"]),
        f"- every session stored all {tree['photos']} photos; the ledger's BLAKE3 of each "
        f"is the source's ({'python blake3' if env['b3sum'] == 'missing' else 'b3sum'})",
        f"- the goal (issue 16) is for verify as shipped ({report['shipped_verify']})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
