"""What the benches share: their command line and work directory, the page-cache drop,
timing, a dockd station made for a bench (config, ledger, context, registered
recorders), and how results are printed and written.

The benches run as scripts (``.venv/bin/python bench/<name>.py``), so this module is
imported as ``common`` from the bench directory. Importing it also puts the repository
root on the path, so the benches import ``fixtures.make_recorder`` and
``tests.helpers.pgserver`` as packages, as the tests do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config, parse_config
from dockd.context import Context
from dockd.ledger import db, registry
from dockd.ledger.db import Ledger

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"  # git-ignored
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

T = TypeVar("T")
MiB = 1 << 20
STATION = "bench"
REGISTERED = datetime(2025, 1, 1, tzinfo=UTC)  # bench recorders are registered from then
_DROP_CACHES = Path("/proc/sys/vm/drop_caches")


# ---------------------------------------------------------------- command line, work dir


def parser(doc: str | None, results: str | None = None) -> argparse.ArgumentParser:
    """The bench's command line: its docstring's first line, ``--workdir`` and ``--keep``,
    and ``--json`` (default ``bench/out/<results>``) for a bench that writes results."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n", 1)[0])
    p.add_argument(
        "--workdir", type=Path, default=None, help="scratch directory (default: new, in /var/tmp)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    if results is not None:
        p.add_argument("--json", type=Path, default=OUT / results, help="where results go")
    return p


@contextlib.contextmanager
def work_dir(given: Path | None, prefix: str, *, keep: bool) -> Iterator[Path]:
    """``given`` (made if missing) or a new directory in /var/tmp.

    A new directory is removed at the end unless ``keep``; a given one is left to
    the bench (it may hold what the caller wants to keep).
    """
    path = given.resolve() if given else Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        if given is None and not keep:
            rm_tree(path)
        else:
            say(f"(work directory kept: {path})")


def rm_tree(path: Path) -> None:
    """Remove a tree even where the store made files and directories read-only."""
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(Path(dirpath) / d, 0o700)
    shutil.rmtree(path)


def tree_bytes(root: Path) -> int:
    """The size of every file under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


class CacheDropper:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``; remembers whether it ever failed."""

    def __init__(self, enabled: bool = True) -> None:
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


# ---------------------------------------------------------------------------- timing


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds, result) of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def median_of(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """(median wall seconds, last result) of ``repeat`` calls."""
    runs = [timed(fn) for _ in range(repeat)]
    return statistics.median(s for s, _ in runs), runs[-1][1]


def per_second(nbytes: int, seconds: float, unit: float = 1e6) -> float:
    """Throughput in ``unit`` bytes per second (MB/s by default); NaN for no time."""
    return nbytes / unit / seconds if seconds > 0 else float("nan")


# ---------------------------------------------------------------------- a bench station


def config_text(work: Path, station: str = STATION, extra: str = "") -> str:
    """A dockd config whose store, quarantine and SQLite ledger all lie in ``work``."""
    return f"""
[station]
id = "{station}"
[store]
root = "{work / "store"}"
quarantine = "{work / "quarantine"}"
[ledger]
url = "sqlite:///{work / "ledger.sqlite3"}"
{extra}"""


def bench_config(work: Path, station: str = STATION, extra: str = "") -> Config:
    """:func:`config_text` loaded as ``dockd`` would load it from ``work/dockd.toml``."""
    text = config_text(work, station, extra)
    return parse_config(text, source=str(work / "dockd.toml"), base=work)


def context(config: Config, ledger: Ledger, clock: Clock) -> Context:
    """A Context as the CLI makes one, its alerts going into the bench's ledger."""
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    return Context(config=config, ledger=ledger, clock=clock, alerts=alerts)


def register_device(
    ledger: Ledger,
    number: str,
    serial: str,
    station: str = STATION,
    *,
    brand: str | None = None,
    model: str | None = None,
) -> None:
    """Register a recorder, so that its files go to the store, not the quarantine."""
    with ledger.session() as s:
        registry.add_device(
            s,
            number=number,
            serial=serial,
            at=REGISTERED,
            station=station,
            actor="bench",
            brand=brand,
            model=model,
        )


def analyze(ledger: Ledger) -> None:
    """Refresh the query planner's statistics (and on PostgreSQL the visibility map),
    as ``dockd ledger optimize`` does."""
    db.optimize(ledger.engine)


# ---------------------------------------------------------------------------- results


def say(msg: str = "") -> None:
    print(msg, flush=True)


def human(n: int) -> str:
    """A byte count in binary units: ``1 GiB``, ``1.50 MiB``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n} B"


def machine() -> dict[str, Any]:
    """What ran the bench, for the results file."""
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def write_results(path: Path, results: dict[str, Any]) -> None:
    """The results as JSON at ``path`` (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    say(f"JSON written to {path}")
