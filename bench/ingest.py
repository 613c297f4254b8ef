"""Ingest throughput and memory bench: dockd against ``cp`` and ``cp`` + ``b3sum``.

Run from the repository root::

    .venv/bin/python bench/ingest.py                      # 2 x 1 GiB; memory at 1 and 4 GiB
    .venv/bin/python bench/ingest.py --sizes 64M,256M --repeat 1   # quick check
    .venv/bin/python bench/ingest.py --sizes 1G,4G --files 2 --verify none --fill zeros

One run

1. builds a recorder tree of ``--files`` valid MP4s of the first ``--sizes`` size
   (``write_mp4`` + ``pad_mp4`` from fixtures/make_recorder.py, vendor-A layout
   ``DCIM/100MEDIA/<serial>_<badge>_<YYYYMMDDhhmmss>_<seq>.MP4`` plus ``DEVICE.ID``);
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
   fresh subprocess each and reports its peak RSS (the child's ``VmHWM`` and the
   own ``ru_maxrss``, the child being forked from a small ``sh``, not from the bench);
4. prints a Markdown results table and writes everything as JSON to
   ``bench/out/ingest.json`` (``--json`` to change).

All temporary data lives under ``--workdir`` (default: a new directory in /var/tmp)
and is removed at the end unless ``--keep``. Throughputs are in MB/s (10^6 bytes/s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "fixtures") not in sys.path:
    sys.path.insert(0, str(REPO / "fixtures"))

import blake3  # noqa: E402
from sqlalchemy import select  # noqa: E402

from dockd.alerts import AlertSink  # noqa: E402
from dockd.clock import SystemClock  # noqa: E402
from dockd.config import Config, parse_config  # noqa: E402
from dockd.context import Context  # noqa: E402
from dockd.ingest.pipeline import SessionResult, run_ingest  # noqa: E402
from dockd.ledger import registry  # noqa: E402
from dockd.ledger.db import Ledger, open_ledger  # noqa: E402
from dockd.ledger.models import Recording  # noqa: E402
from dockd.logs import setup_logging  # noqa: E402
from make_recorder import DEFAULT_START, LOCAL_TZ, pad_mp4, write_mp4  # noqa: E402

Verify = Literal["none", "reread"]
Fill = Literal["random", "zeros"]

SERIAL = "ZFY2024BENCH01"
DEVICE = "DV-BENCH"
BADGE = "098765"
STATION = "st-bench"
GiB = 1 << 30
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_FILL_CHUNK = 1 << 22
_DROP_CACHES = Path("/proc/sys/vm/drop_caches")


# ---------------------------------------------------------------------------- helpers


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


def human(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n} B"


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / 1e6 / seconds if seconds > 0 else float("nan")


def say(msg: str) -> None:
    print(msg, flush=True)


class CacheDropper:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``; remembers whether it ever failed."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.failures: list[str] = []

    def __call__(self) -> bool:
        os.sync()
        if not self.enabled:
            return False
        try:
            _DROP_CACHES.write_text("3\n")
        except OSError as exc:
            if not self.failures:
                say(
                    f"WARNING: cannot drop the page cache ({exc}); continuing with a warm "
                    "cache, figures will be optimistic for reads"
                )
            self.failures.append(str(exc))
            return False
        return True

    @property
    def status(self) -> str:
        if not self.enabled:
            return "disabled (--no-drop-caches)"
        if self.failures:
            return f"FAILED ({self.failures[0]}); measurements ran with a warm cache"
        return "dropped before every measurement"


def rm_tree(path: Path) -> None:
    """Remove a tree even where the store made files and directories read-only."""
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(Path(dirpath) / d, 0o700)
    shutil.rmtree(path)


def files_under(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, _, filenames in os.walk(root):
        out.extend(Path(dirpath) / f for f in sorted(filenames))
    return sorted(out)


def peak_rss_kib_self() -> dict[str, int]:
    """This process's peak RSS: VmHWM from /proc and ru_maxrss (both KiB on Linux)."""
    out = {"ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_kib"] = int(line.split()[1])
    return out


# ---------------------------------------------------------------------------- source trees


def clip_name(start: datetime, seq: int) -> str:
    local = start.astimezone(LOCAL_TZ)
    return f"DCIM/100MEDIA/{SERIAL}_{BADGE}_{local:%Y%m%d%H%M%S}_{seq:04d}.MP4"


def fill_random(path: Path, start: int, key: bytes) -> None:
    """Overwrite ``path`` from ``start`` to its end with BLAKE3-XOF bytes (incompressible)."""
    end = path.stat().st_size
    xof = blake3.blake3(key=key.ljust(32, b"\0")[:32])
    fd = os.open(path, os.O_WRONLY)
    try:
        pos = start
        while pos < end:
            n = min(_FILL_CHUNK, end - pos)
            data = xof.digest(length=n, seek=pos)
            done = 0
            while done < n:
                done += os.pwrite(fd, data[done:], pos + done)
            pos += n
    finally:
        os.close(fd)


def make_clip(path: Path, start: datetime, size: int, fill: Fill) -> None:
    """A valid MP4 of exactly ``size`` bytes: a 2 s clip grown by a ``free`` box."""
    write_mp4(path, start=start, seconds=2.0)
    base = path.stat().st_size
    if size < base + 16:
        raise SystemExit(f"size {size} too small: the MP4 clip alone is {base} bytes")
    pad_mp4(path, size)
    if fill == "random":
        header = 8 if size - base <= 0xFFFFFFFF else 16
        fill_random(path, base + header, path.name.encode())


def start_recorder(root: Path) -> None:
    (root / "DCIM" / "100MEDIA").mkdir(parents=True, exist_ok=True)
    (root / "DEVICE.ID").write_text(f"serial={SERIAL}\ndevice={DEVICE}\n", encoding="utf-8")


def make_tree(root: Path, sizes: Sequence[int], fill: Fill, first: datetime) -> list[Path]:
    start_recorder(root)
    paths: list[Path] = []
    for i, size in enumerate(sizes):
        t = first + i * timedelta(minutes=15)
        path = root / clip_name(t, i + 1)
        make_clip(path, t, size, fill)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------- dockd


def bench_config(run_dir: Path, verify: Verify, buffer_kib: int | None) -> Config:
    ingest = f"\n[ingest]\nverify = {verify!r}\n"
    if buffer_kib is not None:
        ingest += f"copy_buffer_kib = {buffer_kib}\n"
    text = f"""
[station]
unit = "Bench Station"
id = "{STATION}"
timezone = "Asia/Shanghai"

[store]
root = "{run_dir / "store"}"
quarantine = "{run_dir / "quarantine"}"

[ledger]
url = "sqlite:///{run_dir / "ledger.sqlite3"}"
{ingest}"""
    return parse_config(text, source=str(run_dir / "dockd.toml"), base=run_dir)


@contextlib.contextmanager
def bench_context(run_dir: Path, verify: Verify, buffer_kib: int | None) -> Iterator[Context]:
    """A fresh config, SQLite ledger and store, with the bench recorder registered."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = bench_config(run_dir, verify, buffer_kib)
    ledger = open_ledger(config.ledger.url)
    clock = SystemClock()
    try:
        with ledger.session() as s:
            registry.add_device(
                s,
                number=DEVICE,
                serial=SERIAL,
                brand="Bench",
                model="BWC-1",
                at=datetime(2025, 1, 1, tzinfo=UTC),
                station=STATION,
                actor="bench",
            )
            registry.add_officer(
                s, badge=BADGE, name="Bench Officer", at=clock.now(), station=STATION, actor="b"
            )
            registry.assign(
                s,
                device_number=DEVICE,
                badge=BADGE,
                valid_from=datetime(2025, 1, 1, tzinfo=UTC),
                valid_until=None,
                at=clock.now(),
                station=STATION,
                actor="bench",
            )
        alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
        yield Context(config=config, ledger=ledger, clock=clock, alerts=alerts)
    finally:
        ledger.close()


def stored_hashes(ledger: Ledger) -> dict[str, str]:
    with ledger.session() as s:
        rows = s.execute(select(Recording.source_path, Recording.blake3)).all()
    return {str(path): str(digest) for path, digest in rows}


def check_result(result: SessionResult, expected: int) -> None:
    stored = result.count("stored")
    if result.outcome != "complete" or stored != expected or result.quarantined:
        problems = [f"{f.relpath}: {f.status} {f.reason or ''}" for f in result.files]
        raise RuntimeError(
            f"dockd ingest did not store every file: outcome={result.outcome} "
            f"stored={stored}/{expected} quarantined={result.quarantined}; {problems}"
        )


# ---------------------------------------------------------------------------- measurements


@dataclass
class Timing:
    name: str
    command: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, seconds: float, cpu: float) -> None:
        self.seconds.append(seconds)
        self.cpu.append(cpu)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


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
    with bench_context(run_dir, verify, buffer_kib) as ctx:
        drop()
        c0, t0 = cpu_now(), time.perf_counter()
        result = run_ingest(ctx, src)
        seconds, cpu = time.perf_counter() - t0, cpu_now() - c0
        check_result(result, expected)
        return seconds, cpu, stored_hashes(ctx.ledger)


@dataclass
class MemoryRun:
    label: str
    size_bytes: int
    seconds: float
    vmhwm_kib: int | None
    ru_maxrss_kib: int


def run_child(
    src: Path,
    run_dir: Path,
    verify: Verify,
    buffer_kib: int | None,
    label: str,
    size: int,
    drop: Callable[[], bool],
) -> MemoryRun:
    """Ingest ``src`` in a fresh interpreter and collect the peak RSS it reports.

    The interpreter is started through ``sh`` so that it is forked from a small
    process: a process forked straight from this (large) one would inherit this
    process's high-water mark in its ``ru_maxrss``. ``VmHWM`` is reset by exec anyway.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-ingest", str(src)]
    cmd += ["--child-dir", str(run_dir), "--verify", verify]
    if buffer_kib is not None:
        cmd += ["--copy-buffer-kib", str(buffer_kib)]
    drop()
    proc = subprocess.run(
        ["sh", "-c", '"$@"; exit $?', "sh", *cmd], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child ingest of {src} failed ({proc.returncode}): {proc.stderr}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return MemoryRun(
        label=label,
        size_bytes=size,
        seconds=float(report["seconds"]),
        vmhwm_kib=report.get("vmhwm_kib"),
        ru_maxrss_kib=int(report["ru_maxrss_kib"]),
    )


def child_main(args: argparse.Namespace) -> int:
    """Hidden ``--child-ingest``: ingest one tree, print timing and peak RSS as JSON."""
    setup_logging("warning")
    src = Path(args.child_ingest)
    expected = len([p for p in files_under(src) if p.suffix.upper() == ".MP4"])
    verify: Verify = "reread" if args.verify in ("reread", "both") else "none"
    with bench_context(Path(args.child_dir), verify, args.copy_buffer_kib) as ctx:
        t0 = time.perf_counter()
        result = run_ingest(ctx, src)
        seconds = time.perf_counter() - t0
        check_result(result, expected)
    print(json.dumps({"seconds": seconds, "bytes": result.bytes_copied, **peak_rss_kib_self()}))
    return 0


# ---------------------------------------------------------------------------- report


def tool_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unavailable"
    return out.splitlines()[0].strip() if out else "unknown"


def render_table(report: dict[str, Any]) -> str:
    env = report["environment"]
    tree = report["tree"]
    lines = [
        f"dockd ingest bench, {tree['files']} x {human(tree['file_size'])} "
        f"({tree['fill']} fill), median of {report['repeat']} run(s); "
        f"{env['cpus']} CPUs, {env['kernel']}, copy_buffer {env['copy_buffer_kib']} KiB, "
        f"page cache: {env['page_cache']}; load average {env['loadavg_start']:.2f} at start, "
        f"{env['loadavg_end']:.2f} at end",
        "",
        "| measurement | median s | min-max s | MB/s | vs cp+sync | CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = report["timings"]["cp_sync"]["median_s"]
    for t in report["timings"].values():
        spread = f"{min(t['seconds']):.2f}-{max(t['seconds']):.2f}"
        lines.append(
            f"| {t['name']} | {t['median_s']:.2f} | {spread} | {t['mb_per_s']:.0f} "
            f"| {base / t['median_s']:.2f} | {t['median_cpu_s']:.2f} |"
        )
    lines.append("")
    lines += [f"- {r['text']}" for r in report["ratios"]]
    if not report["hashes_agree"]:
        lines.append("- WARNING: the BLAKE3 digests of dockd and b3sum DIFFER")
    lines += [
        "",
        f"| dockd ingest (verify={report['memory_verify']}), fresh process "
        "| seconds | MB/s | peak RSS (VmHWM) | ru_maxrss |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in report["memory"]:
        hwm = f"{m['vmhwm_kib'] / 1024:.1f} MiB" if m["vmhwm_kib"] else "n/a"
        big = m["size_bytes"] >= 1 << 20
        rate = f"{mbps(m['size_bytes'], m['seconds']):.0f}" if big else "-"
        lines.append(
            f"| {m['label']} | {m['seconds']:.2f} | {rate} "
            f"| {hwm} | {m['ru_maxrss_kib'] / 1024:.1f} MiB |"
        )
    if report["memory_verdict"]:
        lines += ["", f"- {report['memory_verdict']}"]
    return "\n".join(lines)


def ratio_lines(timings: dict[str, Timing]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cp = timings["cp_sync"].median
    cpb3 = timings["cp_b3sum"].median
    cpb3s = timings["cp_b3sum_sync"].median
    for key in ("dockd_none", "dockd_reread"):
        if key not in timings:
            continue
        name, d = timings[key].name, timings[key].median
        throughput = cp / d
        out.append(
            {
                "key": f"{key}_vs_cp_sync",
                "value": throughput,
                "goal": ">= 0.90",
                "met": throughput >= 0.9,
                "text": f"{name} / (cp -r + sync) throughput: {throughput:.2f} "
                f"(goal >= 0.90: {'met' if throughput >= 0.9 else 'NOT met'})",
            }
        )
        speed, speed_sync = cpb3 / d, cpb3s / d
        out.append(
            {
                "key": f"{key}_vs_cp_b3sum",
                "value": speed,
                "value_with_sync": speed_sync,
                "goal": ">= 1.10 (clearly faster)",
                "met": speed >= 1.1,
                "text": f"{name} vs cp -r then b3sum: {speed:.2f}x its speed "
                f"({'clearly faster' if speed >= 1.1 else 'NOT clearly faster'}); "
                f"{speed_sync:.2f}x once that copy is synced as dockd's is",
            }
        )
    return out


def memory_verdict(runs: list[MemoryRun]) -> str:
    big = [m for m in runs if m.size_bytes >= 1 << 20]
    if len(big) < 2:
        return ""
    hwm = [m.vmhwm_kib or m.ru_maxrss_kib for m in big]
    spread = (max(hwm) - min(hwm)) / 1024
    sizes = ", ".join(human(m.size_bytes) for m in big)
    ok = spread <= max(16.0, 0.1 * min(hwm) / 1024)
    return (
        f"peak RSS across {sizes}: {min(hwm) / 1024:.1f} to {max(hwm) / 1024:.1f} MiB "
        f"(spread {spread:.1f} MiB): {'independent of file size' if ok else 'GROWS with size'}"
    )


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="dockd ingest throughput and memory bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("1G,4G"),
        help="file sizes, comma-separated (default 1G,4G): the throughput tree uses the "
        "first, the memory comparison runs one file of each",
    )
    p.add_argument("--files", type=int, default=2, help="files in the throughput tree")
    p.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: new)")
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
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "ingest.json")
    p.add_argument("--child-ingest", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-dir", default=None, help=argparse.SUPPRESS)
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
    if args.child_ingest is not None:
        return child_main(args)
    setup_logging("warning")
    sizes: list[int] = args.sizes
    verifies: list[Verify] = ["none", "reread"] if args.verify == "both" else [args.verify]
    child_verify: Verify = "reread" if "reread" in verifies else "none"
    use_b3sum = shutil.which("b3sum") is not None
    if not use_b3sum:
        say("NOTE: b3sum not found; hashing the copy with python blake3 (update_mmap) instead")
    drop = CacheDropper(enabled=not args.no_drop_caches)

    created = args.workdir is None
    workdir = (
        Path(tempfile.mkdtemp(prefix="dockd-bench-", dir="/var/tmp"))
        if created
        else args.workdir.resolve()
    )
    workdir.mkdir(parents=True, exist_ok=True)
    peak = check_space(workdir, args.files, sizes)
    say(f"work directory {workdir} (peak use about {human(peak)})")
    try:
        report = run_bench(args, workdir, sizes, verifies, child_verify, use_b3sum, drop)
    finally:
        if args.keep:
            say(f"kept {workdir}")
        elif created:
            rm_tree(workdir)
        else:
            for child in workdir.iterdir():
                if child.name.startswith("bench-"):
                    rm_tree(child)
    table = render_table(report)
    report["table_markdown"] = table
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    say("\n" + table + "\n")
    say(f"JSON written to {args.json}")
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
    tiny_size = sum(p.stat().st_size for p in files_under(tiny))
    with bench_context(runs / "warmup", "reread", args.copy_buffer_kib) as ctx:
        check_result(run_ingest(ctx, tiny), 1)
    rm_tree(runs / "warmup")

    say(f"building {args.files} x {human(sizes[0])} MP4s ({fill} fill) in {src} ...")
    t0 = time.perf_counter()
    tree_files = make_tree(src, [sizes[0]] * args.files, fill, DEFAULT_START)
    total = sum(p.stat().st_size for p in files_under(src))
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

    hash_sets: dict[str, dict[str, str]] = {}
    for rep in range(args.repeat):
        say(f"run {rep + 1}/{args.repeat}")
        rm_tree(dst)
        drop()
        s, cpu = time_cp_sync(src, dst)
        timings["cp_sync"].add(s, cpu)
        say(f"  cp -r + sync           {s:7.2f} s  {mbps(total, s):6.0f} MB/s  CPU {cpu:5.2f} s")

        rm_tree(dst)
        drop()
        (s, cpu), (s_sync, cpu_sync), digests = time_cp_b3sum(src, dst, use_b3sum)
        timings["cp_b3sum"].add(s, cpu)
        timings["cp_b3sum_sync"].add(s_sync, cpu_sync)
        hash_sets["b3sum"] = digests
        say(
            f"  cp -r, then b3sum      {s:7.2f} s  {mbps(total, s):6.0f} MB/s  CPU {cpu:5.2f} s"
            f"  (+ sync: {s_sync:.2f} s)"
        )
        rm_tree(dst)

        for v in verifies:
            run_dir = runs / f"{v}-{rep}"
            s, cpu, hashes = time_dockd(src, run_dir, v, args.copy_buffer_kib, args.files, drop)
            timings[f"dockd_{v}"].add(s, cpu)
            hash_sets[f"dockd_{v}"] = hashes
            say(f"  dockd verify={v:<7}   {s:7.2f} s  {mbps(total, s):6.0f} MB/s  CPU {cpu:5.2f} s")
            rm_tree(run_dir)

    reference = hash_sets["b3sum"]
    hashes_agree = all(
        digests == {k: reference.get(k) for k in digests} for digests in hash_sets.values()
    )
    if not hashes_agree:
        say(f"WARNING: BLAKE3 digests differ between methods: {hash_sets}")

    say("memory: one ingest per fresh process ...")
    memory = [
        run_child(
            tiny,
            runs / "mem-tiny",
            child_verify,
            args.copy_buffer_kib,
            "tiny recorder",
            tiny_size,
            drop,
        )
    ]
    rm_tree(runs / "mem-tiny")
    for size in sizes:
        msrc = workdir / f"bench-mem-{size}"
        start_recorder(msrc)
        if size == sizes[0]:
            target = msrc / tree_files[0].relative_to(src)
            os.link(tree_files[0], target)
        else:
            t = DEFAULT_START + timedelta(days=1)
            make_clip(msrc / clip_name(t, 1), t, size, fill)
        run_dir = runs / f"mem-{size}"
        m = run_child(
            msrc,
            run_dir,
            child_verify,
            args.copy_buffer_kib,
            f"1 file of {human(size)}",
            size,
            drop,
        )
        memory.append(m)
        say(
            f"  {m.label:<16} {m.seconds:7.2f} s  peak RSS "
            f"{(m.vmhwm_kib or m.ru_maxrss_kib) / 1024:.1f} MiB"
        )
        rm_tree(run_dir)
        rm_tree(msrc)

    timing_report = {
        key: {
            "name": t.name,
            "command": t.command,
            "seconds": t.seconds,
            "median_s": t.median,
            "mb_per_s": mbps(total, t.median),
            "cpu_s": t.cpu,
            "median_cpu_s": statistics.median(t.cpu),
        }
        for key, t in timings.items()
    }
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "environment": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
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
        "ratios": ratio_lines(timings),
        "hashes_agree": hashes_agree,
        "memory_verify": child_verify,
        "memory": [asdict(m) for m in memory],
        "memory_verdict": memory_verdict(memory),
    }


if __name__ == "__main__":
    sys.exit(main())
