"""Ingest throughput and memory bench: dockd against ``cp`` and ``cp`` + ``b3sum``.

Run from the repository root::

    .venv/bin/python bench/ingest.py                      # 2 x 1 GiB; memory at 1 and 4 GiB
    .venv/bin/python bench/ingest.py --sizes 64M,256M --repeat 1   # quick check
    .venv/bin/python bench/ingest.py --sizes 1G,4G --files 2 --verify none --fill zeros

One run

1. builds a recorder tree (bench/ingest_recorder.py) of ``--files`` valid MP4s of
   the first ``--sizes`` size (``write_mp4`` + ``pad_mp4`` from fixtures/make_recorder.py,
   vendor-A layout ``DCIM/100MEDIA/<serial>_<badge>_<YYYYMMDDhhmmss>_<seq>.MP4`` plus
   ``DEVICE.ID``);
   with ``--fill random`` (default) the padding ``free`` box is then overwritten
   with pseudo-random bytes, because real footage is incompressible and some
   virtual disks read and write zeros faster than data;
2. times ``--repeat`` times (default 5, interleaved; median, min-max and CPU seconds
   reported), on that tree, with the page cache dropped before each measurement
   (``sync; echo 3 > /proc/sys/vm/drop_caches``; if that fails, the output says so):

   * ``cp -r SRC DST && sync``;
   * the same with, beside it, a direct read of a durable copy of the tree made once
     before (``O_DIRECT``, as dockd re-reads): the disk's ceiling for any re-read
     verify (with ``verify = "reread"`` timed);
   * ``cp -r SRC DST`` then ``b3sum`` of every copied file (and, for reference, the
     ``sync`` that makes that copy durable);
   * ``run_ingest`` with ``verify = "none"`` and ``verify = "reread"`` on a fresh
     SQLite ledger and store, the recorder's device registered so files go to the store;

3. runs the ingest of a tiny recorder and of one file of each ``--sizes`` size in a
   fresh subprocess each (bench/ingest_memory.py) and reports its peak RSS (the
   child's ``VmHWM`` and own ``ru_maxrss``, the child being forked from a small
   ``sh``, not from the bench);
4. prints a Markdown results table and writes everything as JSON to
   ``bench/out/ingest.json`` (``--json`` to change).

All temporary data lives under ``--workdir`` (default: a new directory in /var/tmp)
and is removed at the end unless ``--keep``. Throughputs are in MB/s (10^6 bytes/s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import (
    CacheDropper,
    human,
    parser,
    rm_tree,
    say,
    tree_bytes,
)
from ingest_memory import MemoryRun, memory_verdict, run_child
from ingest_recorder import (
    Fill,
    Verify,
    clip_name,
    make_clip,
    make_tree,
    start_recorder,
)
from ingest_report import environment, publish, ratio_lines, render_table
from ingest_timing import (
    Measurements,
    bench_dir,
    durable_copy,
    load_at_start,
    time_cp_b3sum,
    time_verified_by_hand,
    warm_up,
)

from dockd.logs import setup_logging
from fixtures.make_recorder import DEFAULT_START

GiB = 1 << 30
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``256M``, ``1G``, ``1.5G``, ``4096`` (bytes); binary units."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1] if t and t[-1] in _UNITS else ""
    number = t[: len(t) - len(unit)] if unit else t
    try:
        value = int(float(number) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 256M, 1G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def parse_sizes(text: str) -> list[int]:
    return [parse_size(part) for part in text.split(",") if part.strip()]


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = parser(__doc__, results="ingest.json")
    p.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("1G,4G"),
        help="file sizes, comma-separated (default 1G,4G): the throughput tree uses the "
        "first, the memory comparison runs one file of each",
    )
    p.add_argument("--files", type=int, default=2, help="files in the throughput tree")
    p.add_argument(
        "--verify",
        choices=("none", "reread", "both"),
        default="both",
        help="dockd verify modes to time (default both; the memory runs use reread "
        "unless only none is asked for)",
    )
    p.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    p.add_argument(
        "--fill",
        choices=("random", "zeros"),
        default="random",
        help="padding content: random (incompressible, like footage) or pad_mp4's zeros",
    )
    p.add_argument("--copy-buffer-kib", type=int, default=None, help="ingest.copy_buffer_kib")
    p.add_argument("--no-drop-caches", action="store_true", help="do not drop the page cache")
    args = p.parse_args(argv)
    if not args.sizes:
        p.error("--sizes needs at least one size")
    if args.files < 1 or args.repeat < 1:
        p.error("--files and --repeat must be >= 1")
    return args


def check_space(workdir: Path, files: int, sizes: Sequence[int]) -> int:
    tree = files * sizes[0]
    peak = 2 * tree + max(tree, 2 * max(sizes)) + 64 * (1 << 20)  # the source, its copy
    free = shutil.disk_usage(workdir).free
    if peak > free - GiB:
        raise SystemExit(
            f"not enough space in {workdir}: the bench needs about {human(peak)}, "
            f"{human(free)} free"
        )
    if peak > 20 * GiB:
        say(f"WARNING: this run will use about {human(peak)} of temporary space")
    return peak


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("warning")
    sizes: list[int] = args.sizes
    verifies: list[Verify] = ["none", "reread"] if args.verify == "both" else [args.verify]
    child_verify: Verify = "reread" if "reread" in verifies else "none"
    use_b3sum = shutil.which("b3sum") is not None
    if not use_b3sum:
        say("NOTE: b3sum not found; hashing the copy with python blake3 (update_mmap) instead")
    drop = CacheDropper(enabled=not args.no_drop_caches)

    with bench_dir(args.workdir, "dockd-bench-", keep=args.keep) as workdir:
        peak = check_space(workdir, args.files, sizes)
        say(f"work directory {workdir} (peak use about {human(peak)})")
        report = run_bench(args, workdir, sizes, verifies, child_verify, use_b3sum, drop)
    publish(report, render_table(report), args.json)
    return 0


def run_bench(
    args: argparse.Namespace,
    workdir: Path,
    sizes: list[int],
    verifies: list[Verify],
    child_verify: Verify,
    use_b3sum: bool,
    drop: CacheDropper,
) -> dict[str, Any]:
    fill: Fill = args.fill
    load_start = load_at_start()
    src = workdir / "bench-src"
    dst = workdir / "bench-dst"
    runs = workdir / "bench-runs"
    runs.mkdir(exist_ok=True)

    # A tiny recorder: warms up PyAV and SQLAlchemy, and is the memory baseline.
    tiny = workdir / "bench-tiny"
    warm_up(tiny, runs, args.copy_buffer_kib)

    say(f"building {args.files} x {human(sizes[0])} MP4s ({fill} fill) in {src} ...")
    t0 = time.perf_counter()
    tree_files = make_tree(src, [sizes[0]] * args.files, fill, DEFAULT_START)
    total = tree_bytes(src)
    say(f"  built in {time.perf_counter() - t0:.1f} s, {total / 1e6:.0f} MB in total")

    hasher = "b3sum" if use_b3sum else "python blake3"
    bench = Measurements(total, drop)
    bench.add(
        "cp_b3sum", f"cp -r, then {hasher} (copy not synced)", f"cp -r SRC DST; {hasher} DST/**"
    )
    bench.add(
        "cp_b3sum_sync", f"cp -r, then {hasher}, then sync", f"cp -r SRC DST; {hasher} DST/**; sync"
    )
    bench.add(
        "verified_by_hand",
        f"cp -r + sync, then {hasher} of source and copy (cache dropped)",
        f"cp -r SRC DST; sync; drop caches; {hasher} SRC/** DST/**; compare",
    )
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
        drop()
        s, cpu, _ = time_verified_by_hand(src, dst, use_b3sum, drop)
        bench.record("verified_by_hand", s, cpu)
        rm_tree(dst)
        drop()
        (s, cpu), (s_sync, cpu_sync), bench.hashes["b3sum"] = time_cp_b3sum(src, dst, use_b3sum)
        bench.record("cp_b3sum", s, cpu, f"  (+ sync: {s_sync:.2f} s)")
        bench.timings["cp_b3sum_sync"].add(s_sync, cpu_sync)
        rm_tree(dst)
        for v in verifies:
            bench.dockd(src, runs / f"{v}-{rep}", v, args.copy_buffer_kib, args.files)

    differ = bench.hashes_differ("b3sum")
    if differ:
        say(f"WARNING: BLAKE3 digests of {differ} differ from b3sum's: {bench.hashes}")

    say("memory: one ingest per fresh process ...")
    memory: list[MemoryRun] = []

    def peak_of(msrc: Path, label: str, size: int) -> None:
        run_dir = runs / f"mem-{len(memory)}"
        m = run_child(msrc, run_dir, child_verify, args.copy_buffer_kib, label, size, drop)
        memory.append(m)
        rss = (m.vmhwm_kib or m.ru_maxrss_kib) / 1024
        say(f"  {m.label:<16} {m.seconds:7.2f} s  peak RSS {rss:.1f} MiB")
        rm_tree(run_dir)

    peak_of(tiny, "tiny recorder", tree_bytes(tiny))
    for size in sizes:
        msrc = workdir / f"bench-mem-{size}"
        start_recorder(msrc)
        if size == sizes[0]:
            os.link(tree_files[0], msrc / tree_files[0].relative_to(src))
        else:
            t = DEFAULT_START + timedelta(days=1)
            make_clip(msrc / clip_name(t, 1), t, size, fill)
        peak_of(msrc, f"1 file of {human(size)}", size)
        rm_tree(msrc)

    timing_report = bench.report()
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "environment": environment(workdir, drop, args.copy_buffer_kib, load_start, use_b3sum),
        "tree": {
            "files": args.files,
            "file_size": sizes[0],
            "total_bytes": total,
            "fill": fill,
            "layout": clip_name(DEFAULT_START, 1),
        },
        "repeat": args.repeat,
        "timings": timing_report,
        "ratios": ratio_lines(timing_report),
        "hashes_agree": not differ,
        "memory_verify": child_verify,
        "memory": [asdict(m) for m in memory],
        "memory_verdict": memory_verdict(memory),
    }


if __name__ == "__main__":
    sys.exit(main())
