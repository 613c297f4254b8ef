"""The ingest bench's memory figure: the peak RSS of ``dockd ingest`` in a fresh process.

``run_child`` makes a fresh station in ``RUN_DIR`` (its ``dockd.toml``, a SQLite
ledger with the bench recorder registered), then runs the ``dockd ingest`` command
itself, as a person would, in a fresh interpreter::

    .venv/bin/python bench/ingest_memory.py dockd -c RUN_DIR/dockd.toml ingest SRC

which runs the command through ``dockd.cli.main`` and then prints its time and peak
RSS as one JSON line. That child imports nothing of the benches' (no PyAV encoder,
no fixtures), so its peak is the command's own. :func:`memory_verdict` says whether
that peak grows with the file's size. On its own this module measures a tiny recorder
and one file of each ``--sizes`` size::

    .venv/bin/python bench/ingest_memory.py --sizes 1G,4G [--verify none|reread]
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the child imports only dockd: the benches' imports would count
    from ingest_recorder import Verify

GOAL_MIB = 100.0 * 1e6 / (1 << 20)  # issue 16: "under 100 MB"


@dataclass
class MemoryRun:
    label: str
    size_bytes: int
    seconds: float
    vmhwm_kib: int | None
    ru_maxrss_kib: int


def peak_rss_kib_self() -> dict[str, int]:
    """This process's peak RSS: VmHWM from /proc and ru_maxrss (both KiB on Linux)."""
    out = {"ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_kib"] = int(line.split()[1])
    return out


def prepare(run_dir: Path, verify: Verify, buffer_kib: int | None) -> Path:
    """A fresh station in ``run_dir`` that knows the bench recorder; its config file."""
    from common import config_text
    from ingest_recorder import STATION, station

    ingest = f"[ingest]\nverify = {verify!r}\n"
    if buffer_kib is not None:
        ingest += f"copy_buffer_kib = {buffer_kib}\n"
    with station(run_dir, verify, buffer_kib):
        pass
    config = run_dir / "dockd.toml"
    config.write_text(config_text(run_dir, STATION, ingest))
    return config


def stored_count(run_dir: Path) -> int:
    from common import bench_config
    from ingest_recorder import STATION, stored_hashes

    from dockd.ledger.db import open_ledger

    ledger = open_ledger(bench_config(run_dir, STATION).ledger.url)
    try:
        return len(stored_hashes(ledger))
    finally:
        ledger.close()


def run_child(
    src: Path,
    run_dir: Path,
    verify: Verify,
    buffer_kib: int | None,
    label: str,
    size: int,
    drop: Callable[[], bool],
) -> MemoryRun:
    """Run ``dockd ingest`` on ``src`` in a fresh interpreter and collect its peak RSS.

    The interpreter is started through ``sh`` so that it is forked from a small
    process: a process forked straight from this (large) one would inherit this
    process's high-water mark in its ``ru_maxrss``. ``VmHWM`` is reset by exec anyway.
    """
    config = prepare(run_dir, verify, buffer_kib)
    expected = sum(1 for p in src.rglob("*") if p.suffix.upper() == ".MP4")
    cmd = [sys.executable, str(Path(__file__).resolve())]
    cmd += ["dockd", "-c", str(config), "ingest", str(src)]
    drop()
    proc = subprocess.run(
        ["sh", "-c", '"$@"; exit $?', "sh", *cmd], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"dockd ingest of {src} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
        )
    stored = stored_count(run_dir)
    if stored != expected:
        raise RuntimeError(f"dockd ingest stored {stored} of {expected} files: {proc.stdout}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return MemoryRun(
        label=label,
        size_bytes=size,
        seconds=float(report["seconds"]),
        vmhwm_kib=report.get("vmhwm_kib"),
        ru_maxrss_kib=int(report["ru_maxrss_kib"]),
    )


def memory_verdict(runs: list[MemoryRun]) -> str:
    big = [m for m in runs if m.size_bytes >= 1 << 20]
    if len(big) < 2:
        return ""
    from common import human

    hwm = [m.vmhwm_kib or m.ru_maxrss_kib for m in big]
    spread = (max(hwm) - min(hwm)) / 1024
    sizes = ", ".join(human(m.size_bytes) for m in big)
    ok = spread <= max(16.0, 0.1 * min(hwm) / 1024)
    return (
        f"peak RSS across {sizes}: {min(hwm) / 1024:.1f} to {max(hwm) / 1024:.1f} MiB "
        f"(spread {spread:.1f} MiB): {'independent of file size' if ok else 'GROWS with size'}"
    )


def run_dockd(argv: Sequence[str]) -> int:
    """The child: run the ``dockd`` command line, then print its time and peak RSS."""
    from dockd.cli import main as dockd_main

    started = time.perf_counter()
    code = dockd_main(list(argv))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "exit": code, **peak_rss_kib_self()}), flush=True)
    return code


def bench(argv: Sequence[str] | None) -> int:
    """A tiny recorder and one file of each size, each ingested by a fresh ``dockd``."""
    from datetime import timedelta

    from common import CacheDropper, human, parser, rm_tree, say, tree_bytes, work_dir
    from ingest import parse_sizes
    from ingest_recorder import clip_name, make_clip, start_recorder

    from fixtures.make_recorder import DEFAULT_START, write_mp4

    ap = parser(__doc__)
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1G,4G"))
    ap.add_argument("--verify", choices=("none", "reread"), default="reread")
    ap.add_argument("--copy-buffer-kib", type=int, default=None)
    ap.add_argument("--fill", choices=("random", "zeros"), default="random")
    ap.add_argument("--no-drop", action="store_true", help="keep the page cache")
    args = ap.parse_args(argv)
    drop = CacheDropper(enabled=not args.no_drop)
    runs: list[MemoryRun] = []
    with work_dir(args.workdir, "dockd-mem-", keep=args.keep) as work:

        def peak_of(src: Path, label: str) -> None:
            m = run_child(
                src, work / "run", args.verify, args.copy_buffer_kib, label, tree_bytes(src), drop
            )
            runs.append(m)
            rss = (m.vmhwm_kib or m.ru_maxrss_kib) / 1024
            say(f"  {m.label:<16} {m.seconds:7.2f} s  peak RSS {rss:.1f} MiB")
            rm_tree(work / "run")
            rm_tree(src)

        tiny = work / "tiny"
        start_recorder(tiny)
        write_mp4(tiny / clip_name(DEFAULT_START, 1), start=DEFAULT_START, seconds=2.0)
        peak_of(tiny, "tiny recorder")
        for i, size in enumerate(args.sizes):
            src = work / f"mem-{size}"
            start_recorder(src)
            at = DEFAULT_START + timedelta(days=i + 1)
            make_clip(src / clip_name(at, 1), at, size, args.fill)
            peak_of(src, f"1 file of {human(size)}")
    worst = max((m.vmhwm_kib or m.ru_maxrss_kib) / 1024 for m in runs)
    say(f"highest peak {worst:.1f} MiB (goal: under 100 MB = {GOAL_MIB:.1f} MiB)")
    say(memory_verdict(runs))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["dockd"]:
        sys.exit(run_dockd(sys.argv[2:]))
    sys.exit(bench(sys.argv[1:]))
