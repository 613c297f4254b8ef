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
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
from common import (
    CacheDropper,
    human,
    machine,
    parser,
    per_second,
    rm_tree,
    say,
    tree_bytes,
    work_dir,
    write_results,
)
from ingest_memory import MemoryRun, memory_verdict, run_child
from ingest_recorder import (
    Fill,
    Verify,
    check_result,
    clip_name,
    make_clip,
    make_tree,
    start_recorder,
    station,
    stored_hashes,
)
from ingest_report import ratio_lines, render_table, tool_version

from dockd.ingest.pipeline import run_ingest
from dockd.logs import setup_logging
from fixtures.make_recorder import DEFAULT_START, write_mp4

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


def files_under(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, _, filenames in os.walk(root):
        out.extend(Path(dirpath) / f for f in sorted(filenames))
    return sorted(out)


# ---------------------------------------------------------------------------- measurements


@dataclass
class Timing:
    """The runs of one measurement: wall and CPU seconds of each."""

    name: str
    command: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, seconds: float, cpu: float) -> None:
        self.seconds.append(seconds)
        self.cpu.append(cpu)

    def report(self, nbytes: int) -> dict[str, Any]:
        """Its runs, medians and throughput (MB/s) for the results file."""
        median = statistics.median(self.seconds)
        return {
            "name": self.name,
            "command": self.command,
            "seconds": self.seconds,
            "median_s": median,
            "mb_per_s": per_second(nbytes, median),
            "cpu_s": self.cpu,
            "median_cpu_s": statistics.median(self.cpu),
        }


def cpu_now() -> float:
    """User + system CPU seconds of this process (all threads) and its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_cp_sync(src: Path, dst: Path) -> tuple[float, float]:
    c0, t0 = cpu_now(), time.perf_counter()
    subprocess.run(["cp", "-r", "--", str(src), str(dst)], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - t0, cpu_now() - c0


def hash_copies(paths: Sequence[Path], use_b3sum: bool) -> dict[Path, str]:
    if use_b3sum:
        out = subprocess.run(
            ["b3sum", "--", *map(str, paths)], check=True, capture_output=True, text=True
        ).stdout
        digests: dict[Path, str] = {}
        for line in out.splitlines():
            digest, _, name = line.partition("  ")
            digests[Path(name)] = digest
        return digests
    result = {}
    for p in paths:
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        h.update_mmap(p)
        result[p] = h.hexdigest()
    return result


def time_cp_b3sum(
    src: Path, dst: Path, use_b3sum: bool
) -> tuple[tuple[float, float], tuple[float, float], dict[str, str]]:
    """``cp -r`` then hash every copied file, then ``sync``.

    Returns (seconds, CPU seconds) without and with the final sync, and the digests.
    """
    c0, t0 = cpu_now(), time.perf_counter()
    subprocess.run(["cp", "-r", "--", str(src), str(dst)], check=True)
    digests = hash_copies(files_under(dst), use_b3sum)
    c1, t1 = cpu_now(), time.perf_counter()
    subprocess.run(["sync"], check=True)
    c2, t2 = cpu_now(), time.perf_counter()
    hashes = {p.relative_to(dst).as_posix(): d for p, d in digests.items()}
    return (t1 - t0, c1 - c0), (t2 - t0, c2 - c0), hashes


def time_dockd(
    src: Path,
    run_dir: Path,
    verify: Verify,
    buffer_kib: int | None,
    expected: int,
    drop: Callable[[], bool],
) -> tuple[float, float, dict[str, str]]:
    with station(run_dir, verify, buffer_kib) as ctx:
        drop()
        c0, t0 = cpu_now(), time.perf_counter()
        result = run_ingest(ctx, src)
        seconds, cpu = time.perf_counter() - t0, cpu_now() - c0
        check_result(result, expected)
        return seconds, cpu, stored_hashes(ctx.ledger)


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
    peak = tree + max(tree, 2 * max(sizes)) + 64 * (1 << 20)
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

    with work_dir(args.workdir, "dockd-bench-", keep=args.keep) as workdir:
        peak = check_space(workdir, args.files, sizes)
        say(f"work directory {workdir} (peak use about {human(peak)})")
        try:
            report = run_bench(args, workdir, sizes, verifies, child_verify, use_b3sum, drop)
        finally:
            if args.workdir is not None and not args.keep:  # a given one: only what we made
                for child in workdir.glob("bench-*"):
                    rm_tree(child)
    table = render_table(report)
    report["table_markdown"] = table
    say("\n" + table + "\n")
    write_results(args.json, report)
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
    load_start = os.getloadavg()[0]
    if load_start > 0.25 * (os.cpu_count() or 1):
        say(
            f"WARNING: load average is {load_start:.2f} on {os.cpu_count()} CPUs: other work "
            "will slow dockd (CPU-bound loop) more than cp (in-kernel copy)"
        )
    src = workdir / "bench-src"
    dst = workdir / "bench-dst"
    runs = workdir / "bench-runs"
    runs.mkdir(exist_ok=True)

    # A tiny recorder: warms up PyAV and SQLAlchemy, and is the memory baseline.
    tiny = workdir / "bench-tiny"
    start_recorder(tiny)
    write_mp4(tiny / clip_name(DEFAULT_START, 1), start=DEFAULT_START, seconds=2.0)
    with station(runs / "warmup", "reread", args.copy_buffer_kib) as ctx:
        check_result(run_ingest(ctx, tiny), 1)
    rm_tree(runs / "warmup")

    say(f"building {args.files} x {human(sizes[0])} MP4s ({fill} fill) in {src} ...")
    t0 = time.perf_counter()
    tree_files = make_tree(src, [sizes[0]] * args.files, fill, DEFAULT_START)
    total = tree_bytes(src)
    say(f"  built in {time.perf_counter() - t0:.1f} s, {total / 1e6:.0f} MB in total")

    hasher = "b3sum" if use_b3sum else "python blake3"
    timings: dict[str, Timing] = {
        "cp_sync": Timing("cp -r + sync", "cp -r SRC DST && sync"),
        "cp_b3sum": Timing(
            f"cp -r, then {hasher} (copy not synced)",
            f"cp -r SRC DST; {hasher} DST/**",
        ),
        "cp_b3sum_sync": Timing(
            f"cp -r, then {hasher}, then sync",
            f"cp -r SRC DST; {hasher} DST/**; sync",
        ),
    }
    for v in verifies:
        timings[f"dockd_{v}"] = Timing(f"dockd verify={v}", f"run_ingest, verify={v!r}")

    def progress(label: str, seconds: float, cpu: float, extra: str = "") -> None:
        rate = per_second(total, seconds)
        say(f"  {label:<22} {seconds:7.2f} s  {rate:6.0f} MB/s  CPU {cpu:5.2f} s{extra}")

    hash_sets: dict[str, dict[str, str]] = {}
    for rep in range(args.repeat):
        say(f"run {rep + 1}/{args.repeat}")
        rm_tree(dst)
        drop()
        s, cpu = time_cp_sync(src, dst)
        timings["cp_sync"].add(s, cpu)
        progress("cp -r + sync", s, cpu)

        rm_tree(dst)
        drop()
        (s, cpu), (s_sync, cpu_sync), digests = time_cp_b3sum(src, dst, use_b3sum)
        timings["cp_b3sum"].add(s, cpu)
        timings["cp_b3sum_sync"].add(s_sync, cpu_sync)
        hash_sets["b3sum"] = digests
        progress("cp -r, then b3sum", s, cpu, f"  (+ sync: {s_sync:.2f} s)")
        rm_tree(dst)

        for v in verifies:
            run_dir = runs / f"{v}-{rep}"
            s, cpu, hashes = time_dockd(src, run_dir, v, args.copy_buffer_kib, args.files, drop)
            timings[f"dockd_{v}"].add(s, cpu)
            hash_sets[f"dockd_{v}"] = hashes
            progress(f"dockd verify={v}", s, cpu)
            rm_tree(run_dir)

    reference = hash_sets["b3sum"]
    hashes_agree = all(
        digests == {k: reference.get(k) for k in digests} for digests in hash_sets.values()
    )
    if not hashes_agree:
        say(f"WARNING: BLAKE3 digests differ between methods: {hash_sets}")

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

    timing_report = {key: t.report(total) for key, t in timings.items()}
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "environment": {
            **machine(),
            "blake3_py": getattr(blake3, "__version__", "unknown"),
            "b3sum": tool_version(["b3sum", "--version"]) if use_b3sum else "missing",
            "cp": tool_version(["cp", "--version"]),
            "workdir": str(workdir),
            "page_cache": drop.status,
            "copy_buffer_kib": args.copy_buffer_kib or 1024,
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg()[0],
        },
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
        "hashes_agree": hashes_agree,
        "memory_verify": child_verify,
        "memory": [asdict(m) for m in memory],
        "memory_verdict": memory_verdict(memory),
    }


if __name__ == "__main__":
    sys.exit(main())
