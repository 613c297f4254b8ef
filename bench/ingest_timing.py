"""What the ingest benches time, and how: the runs of one measurement (wall and CPU
seconds), ``cp -r`` + ``sync``, ``cp -r`` then ``b3sum``, and dockd's ``run_ingest``
on a fresh station, each from a tree whose page cache the caller drops.

Shared by bench/ingest.py (a few large clips) and bench/ingest_photos.py (many small
photos), so both measure the same commands the same way.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
from common import MiB, per_second, rm_tree, say, work_dir
from ingest_recorder import Verify, check_result, clip_name, start_recorder, station, stored_hashes

from dockd.ingest.pipeline import run_ingest
from dockd.store.stream import read_direct
from fixtures.make_recorder import DEFAULT_START, write_mp4


@contextlib.contextmanager
def bench_dir(given: Path | None, prefix: str, *, keep: bool) -> Iterator[Path]:
    """The work directory (:func:`common.work_dir`). In a ``given`` one only what the bench
    made there (``bench-*``) is removed at the end, unless ``keep``."""
    with work_dir(given, prefix, keep=keep) as workdir:
        try:
            yield workdir
        finally:
            if given is not None and not keep:
                for child in workdir.glob("bench-*"):
                    rm_tree(child)


def files_under(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, _, filenames in os.walk(root):
        out.extend(Path(dirpath) / f for f in sorted(filenames))
    return sorted(out)


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


def time_cp_sync_beside_read(src: Path, dst: Path, readback: Path) -> tuple[float, float]:
    """``cp -r`` + ``sync`` of ``src`` with, beside it, every file of ``readback`` (a
    durable copy of the same tree) read from the disk as dockd's re-read reads the
    stored copy (``O_DIRECT``, 1 MiB at a time), nothing hashed: the least any verify
    that reads the copy back from the disk adds to a copy, overlapped with it as well
    as it ever can be. Its throughput against ``cp -r`` + ``sync`` alone is the ceiling
    of ``verify = "reread"``'s on this disk, whatever the code."""
    paths = files_under(readback)

    def read_all() -> None:
        for path in paths:
            for _ in read_direct(path, MiB):
                pass

    c0, t0 = cpu_now(), time.perf_counter()
    reader = threading.Thread(target=read_all, name="bench-readback")
    reader.start()
    try:
        subprocess.run(["cp", "-r", "--", str(src), str(dst)], check=True)
        subprocess.run(["sync"], check=True)
    finally:
        reader.join()
    return time.perf_counter() - t0, cpu_now() - c0


def hash_copies(paths: Sequence[Path], use_b3sum: bool) -> dict[Path, str]:
    """The BLAKE3 of each file: ``b3sum`` when there is one, else python blake3."""
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


def tree_hashes(root: Path, use_b3sum: bool) -> dict[str, str]:
    """The BLAKE3 of every file under ``root``, by path relative to it (as the ledger's
    ``source_path``)."""
    digests = hash_copies(files_under(root), use_b3sum)
    return {p.relative_to(root).as_posix(): d for p, d in digests.items()}


def time_cp_b3sum(
    src: Path, dst: Path, use_b3sum: bool
) -> tuple[tuple[float, float], tuple[float, float], dict[str, str]]:
    """``cp -r`` then hash every copied file, then ``sync``.

    Returns (seconds, CPU seconds) without and with the final sync, and the digests.
    """
    c0, t0 = cpu_now(), time.perf_counter()
    subprocess.run(["cp", "-r", "--", str(src), str(dst)], check=True)
    hashes = tree_hashes(dst, use_b3sum)
    c1, t1 = cpu_now(), time.perf_counter()
    subprocess.run(["sync"], check=True)
    c2, t2 = cpu_now(), time.perf_counter()
    return (t1 - t0, c1 - c0), (t2 - t0, c2 - c0), hashes


def time_verified_by_hand(
    src: Path, dst: Path, use_b3sum: bool, drop: Callable[[], bool]
) -> tuple[float, float, dict[str, str]]:
    """The verified copy a careful person makes by hand: ``cp -r`` + ``sync``, then, with
    the page cache dropped, the BLAKE3 of the source and of the copy, compared.

    Returns (seconds, CPU seconds, the copy's digests); raises if the two sides differ.
    """
    c0, t0 = cpu_now(), time.perf_counter()
    subprocess.run(["cp", "-r", "--", str(src), str(dst)], check=True)
    subprocess.run(["sync"], check=True)
    drop()
    source, copy = tree_hashes(src, use_b3sum), tree_hashes(dst, use_b3sum)
    seconds, cpu = time.perf_counter() - t0, cpu_now() - c0
    if source != copy:
        raise SystemExit(f"the copy of {src} in {dst} differs from its source")
    return seconds, cpu, copy


def time_dockd(
    src: Path,
    run_dir: Path,
    verify: Verify,
    buffer_kib: int | None,
    expected: int,
    drop: Callable[[], bool],
) -> tuple[float, float, dict[str, str]]:
    """``run_ingest`` of ``src`` on a fresh station, the page cache dropped just before.

    Raises unless all ``expected`` files went to the store; returns (seconds, CPU
    seconds, the ledger's BLAKE3 of each file by its path on the recorder).
    """
    with station(run_dir, verify, buffer_kib) as ctx:
        drop()
        c0, t0 = cpu_now(), time.perf_counter()
        result = run_ingest(ctx, src)
        seconds, cpu = time.perf_counter() - t0, cpu_now() - c0
        check_result(result, expected)
        return seconds, cpu, stored_hashes(ctx.ledger)


def warm_up(tiny: Path, runs: Path, buffer_kib: int | None) -> None:
    """Make a tiny recorder (one 2 s clip) at ``tiny`` and ingest it once, so that the
    first timed ingest does not pay for importing and starting PyAV and SQLAlchemy."""
    start_recorder(tiny)
    write_mp4(tiny / clip_name(DEFAULT_START, 1), start=DEFAULT_START, seconds=2.0)
    with station(runs / "warmup", "reread", buffer_kib) as ctx:
        check_result(run_ingest(ctx, tiny), 1)
    rm_tree(runs / "warmup")


def load_at_start() -> float:
    """The load average now, with a warning when other work will skew the figures."""
    load = os.getloadavg()[0]
    if load > 0.25 * (os.cpu_count() or 1):
        say(
            f"WARNING: load average is {load:.2f} on {os.cpu_count()} CPUs: other work "
            "will slow dockd (CPU-bound loop) more than cp (in-kernel copy)"
        )
    return load


#: The key of :func:`time_cp_sync_beside_read`'s timing: the ceiling of a re-read's ratio.
CEILING = "cp_sync_readback"


def durable_copy(src: Path, dst: Path) -> Path:
    """``cp -r src dst`` + ``sync``, once: what :func:`time_cp_sync_beside_read` reads."""
    subprocess.run(["cp", "-r", "--", str(src), str(dst)], check=True)
    subprocess.run(["sync"], check=True)
    return dst


class Measurements:
    """A bench's timings, in the order its table lists them, and the BLAKE3 digests each
    method found: ``cp -r`` + ``sync`` first (what the others are compared with), then
    whatever the bench adds, then dockd at each verify mode it asked for."""

    def __init__(self, total_bytes: int, drop: Callable[[], bool]) -> None:
        self.total_bytes = total_bytes
        self.drop = drop
        self.timings = {"cp_sync": Timing("cp -r + sync", "cp -r SRC DST && sync")}
        self.hashes: dict[str, dict[str, str]] = {}

    def add(self, key: str, name: str, command: str) -> None:
        self.timings[key] = Timing(name, command)

    def add_dockd(self, verifies: Sequence[Verify]) -> None:
        for v in verifies:
            self.add(f"dockd_{v}", f"dockd verify={v}", f"run_ingest, verify={v!r}")

    def record(self, key: str, seconds: float, cpu: float, extra: str = "") -> None:
        """One run of ``key``, printed as it comes."""
        self.timings[key].add(seconds, cpu)
        rate = per_second(self.total_bytes, seconds)
        label = self.timings[key].name.split(" (", 1)[0]
        say(f"  {label:<22} {seconds:7.2f} s  {rate:6.0f} MB/s  CPU {cpu:5.2f} s{extra}")

    def cp_sync(self, src: Path, dst: Path) -> None:
        rm_tree(dst)
        self.drop()
        self.record("cp_sync", *time_cp_sync(src, dst))
        rm_tree(dst)

    def add_ceiling(self) -> None:
        """Time :func:`time_cp_sync_beside_read` too (:meth:`cp_sync_beside_read`)."""
        self.add(CEILING, "cp -r + sync, a direct read of a durable copy beside it",
                 "cp -r SRC DST && sync, O_DIRECT read of COPY/** at once")  # fmt: skip

    def cp_sync_beside_read(self, src: Path, dst: Path, readback: Path) -> None:
        rm_tree(dst)
        self.drop()
        self.record(CEILING, *time_cp_sync_beside_read(src, dst, readback))
        rm_tree(dst)

    def dockd(
        self, src: Path, run_dir: Path, verify: Verify, buffer_kib: int | None, expected: int
    ) -> None:
        seconds, cpu, hashes = time_dockd(src, run_dir, verify, buffer_kib, expected, self.drop)
        self.record(f"dockd_{verify}", seconds, cpu)
        self.hashes[f"dockd_{verify}"] = hashes
        rm_tree(run_dir)

    def hashes_differ(self, reference: str) -> list[str]:
        """The methods whose digests are not those of ``reference`` for the same files."""
        ref = self.hashes[reference]
        return [
            key
            for key, digests in self.hashes.items()
            if digests != {k: ref.get(k) for k in digests}
        ]

    def report(self) -> dict[str, dict[str, Any]]:
        return {key: t.report(self.total_bytes) for key, t in self.timings.items()}
