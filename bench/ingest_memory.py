"""The ingest bench's memory figure: the peak RSS of one ingest in a fresh process.

``run_child`` starts this module as a script on one recorder tree::

    .venv/bin/python bench/ingest_memory.py SRC RUN_DIR [--verify none|reread]
                                            [--copy-buffer-kib N]

which ingests it into a fresh station in ``RUN_DIR`` and prints its time and peak
RSS as one JSON line; :func:`memory_verdict` says whether that peak grows with the
file's size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import human, timed
from ingest_recorder import Verify, check_result, station

from dockd.ingest.pipeline import run_ingest
from dockd.logs import setup_logging


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
    cmd = [sys.executable, str(Path(__file__).resolve()), str(src), str(run_dir)]
    cmd += ["--verify", verify]
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


def main(argv: Sequence[str] | None = None) -> int:
    """Ingest one tree, print its timing and peak RSS as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("src", type=Path)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--verify", choices=("none", "reread"), default="reread")
    ap.add_argument("--copy-buffer-kib", type=int, default=None)
    args = ap.parse_args(argv)
    setup_logging("warning")
    expected = sum(1 for p in args.src.rglob("*") if p.suffix.upper() == ".MP4")
    with station(args.run_dir, args.verify, args.copy_buffer_kib) as ctx:
        seconds, result = timed(lambda: run_ingest(ctx, args.src))
        check_result(result, expected)
    print(json.dumps({"seconds": seconds, "bytes": result.bytes_copied, **peak_rss_kib_self()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
