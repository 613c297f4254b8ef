"""The Prometheus endpoint after real docks: what a scrape shows is what the ledger holds."""

from __future__ import annotations

import socket
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from dockd.alerts import AlertSink
from dockd.alerts.rows import acknowledge
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config, load_config
from dockd.context import Context
from dockd.daemon.metrics import (
    RATE_BYTES_PER_S,
    SESSION_SECONDS,
    LedgerCollector,
    MetricsServer,
    reason_class,
    start_metrics,
)
from dockd.errors import ConfigError
from dockd.ingest.outcome import FileOutcome, NoProgress
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Alert, DockSession, Recording, SweepRun
from dockd.sweeps.fixity import run_fixity
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.blockdev import Daemon
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.skips import need
from tests.helpers.station import NOW, make_config, write_config

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class SteppingClock:
    """A clock that moves on one second each time it is read, so a dock takes time."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        self._at += timedelta(seconds=1)
        return self._at


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(config: Config, ledger: Ledger) -> Samples:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(config, ledger))
    return parse(generate_latest(registry).decode())


def bucket(samples: Samples, name: str, le: float, **labels: str) -> float:
    key = tuple(sorted({**labels, "le": repr(float(le))}.items()))
    return samples[(f"{name}_bucket", key)]


def docked(tmp_path: Path, ctx: Context) -> tuple[Recorder, Path]:
    """A registered recorder with one symbolic link on it (a refused file), docked."""
    rec = make_recorder(tmp_path / "rec", clips=2, extras=False)
    register(ctx.ledger, FixedClock(NOW), rec)
    link = rec.root / "DCIM" / "100MEDIA" / "LINK.MP4"
    link.symlink_to(tmp_path / "elsewhere.MP4")
    return rec, link


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_a_scrape_after_two_docks_shows_what_they_did(
    tmp_path: Path, config: Config, ledger: Ledger
) -> None:
    clock = SteppingClock(NOW)
    ctx = Context(config, ledger, clock, AlertSink(ledger, config.station.id, clock, config.alerts))
    rec, _ = docked(tmp_path, ctx)

    first = run_ingest(ctx, rec.root)  # copies every recording, refuses the link
    again = run_ingest(ctx, rec.root)  # nothing new: copies nothing
    fixity = run_fixity(ctx)
    samples = scrape(config, ledger)

    assert first.outcome == "partial" and again.outcome == "partial"
    sizes = [rec.path(r).stat().st_size for r in rec.recordings]
    assert samples[("dockd_files_ingested_total", ())] == len(rec.recordings)
    assert samples[("dockd_bytes_ingested_total", ())] == sum(sizes)
    assert samples[("dockd_dock_sessions_total", (("outcome", "partial"),))] == 2
    refused = (("disposition", "refused"), ("reason", "a symbolic link"))
    assert samples[("dockd_file_failures_total", refused)] == 2  # once per dock
    assert samples[("dockd_ledger_up", ())] == 1

    # The histograms hold the two sessions as the ledger timed them.
    with ledger.read() as s:
        rows = list(s.scalars(select(DockSession).order_by(DockSession.id)))
        run = s.get_one(SweepRun, fixity.run_id)
    durations = [(r.ended_at - r.started_at).total_seconds() for r in rows if r.ended_at]
    assert len(durations) == 2 and all(d > 0 for d in durations)
    name = "dockd_dock_session_duration_seconds"
    assert samples[(f"{name}_count", ())] == 2
    assert samples[(f"{name}_sum", ())] == pytest.approx(sum(durations), abs=1e-3)
    for bound in SESSION_SECONDS:
        assert bucket(samples, name, bound) == sum(d <= bound for d in durations)
    rate = "dockd_dock_session_rate_bytes_per_second"
    copied = rows[0].bytes_copied / durations[0]  # the second dock copied nothing: no rate
    assert samples[(f"{rate}_count", ())] == 1
    assert samples[(f"{rate}_sum", ())] == pytest.approx(copied, rel=1e-6)
    for bound in RATE_BYTES_PER_S:
        assert bucket(samples, rate, bound) == (copied <= bound)

    # Sweeps: the fixity run, its result, when it ended and how long it took.
    assert run.ended_at is not None
    assert samples[("dockd_sweep_runs_total", (("kind", "fixity"), ("status", "ok")))] == 1
    ended = run.ended_at.timestamp()
    assert samples[("dockd_fixity_last_success_timestamp_seconds", ())] == ended
    kind = (("kind", "fixity"),)
    assert samples[("dockd_sweep_last_success_timestamp_seconds", kind)] == ended
    assert samples[("dockd_sweep_duration_seconds_count", kind)] == 1
    took = (run.ended_at - run.started_at).total_seconds()
    assert samples[("dockd_sweep_duration_seconds_sum", kind)] == pytest.approx(took, abs=1e-3)

    # The recorder's own filesystem as the last dock measured it.
    assert rows[-1].fs_free_bytes is not None
    assert samples[("dockd_last_dock_recorder_free_bytes", ())] == rows[-1].fs_free_bytes
    assert samples[("dockd_last_dock_recorder_capacity_bytes", ())] == rows[-1].fs_capacity_bytes
    # The store's filesystem is the one the test's temp dir is on; the quarantine is
    # not there yet (no unregistered recorder docked): its disk reads as not mounted.
    assert samples[("dockd_filesystem_up", (("place", "store"),))] == 1
    assert samples[("dockd_filesystem_free_bytes", (("place", "store"),))] > 0
    assert samples[("dockd_filesystem_up", (("place", "quarantine"),))] == 0
    assert ("dockd_filesystem_free_bytes", (("place", "quarantine"),)) not in samples


class ScrapeAfterFirstFile(NoProgress):
    """Scrapes the ledger once, while the dock is under way with its first file stored,
    and counts the ledger's files just before and after (the verify thread may commit
    the next files meanwhile, or with the first, in one batch)."""

    def __init__(self, config: Config, ledger: Ledger) -> None:
        self.config, self.ledger = config, ledger
        self.during: Samples | None = None
        self.rows = (0, 0)

    def file_done(self, outcome: FileOutcome) -> None:
        if self.during is None:
            before = self._count()
            self.during = scrape(self.config, self.ledger)
            self.rows = (before, self._count())

    def _count(self) -> int:
        with self.ledger.read() as s:
            return s.scalar(select(func.count()).select_from(Recording)) or 0


def test_a_dock_under_way_shows_its_files_so_far_and_is_timed_once_ended(
    tmp_path: Path, ctx: Context
) -> None:
    rec, _ = docked(tmp_path, ctx)
    progress = ScrapeAfterFirstFile(ctx.config, ctx.ledger)

    run_ingest(ctx, rec.root, progress=progress)
    after = scrape(ctx.config, ctx.ledger)

    during = progress.during
    assert during is not None
    assert during[("dockd_dock_sessions_running", ())] == 1
    assert during[("dockd_dock_sessions_total", (("outcome", "partial"),))] == 0
    # what the ledger held then: the first file at least, counted once each
    before, after_rows = progress.rows
    assert 1 <= before <= during[("dockd_files_ingested_total", ())] <= after_rows
    duration = "dockd_dock_session_duration_seconds"
    assert during[(f"{duration}_count", ())] == 0
    assert during[(f"{duration}_bucket", (("le", "+Inf"),))] == 0
    assert after[("dockd_dock_sessions_running", ())] == 0
    assert after[("dockd_dock_sessions_total", (("outcome", "partial"),))] == 1
    assert after[(f"{duration}_bucket", (("le", "+Inf"),))] == 1


def test_open_alerts_by_severity_and_acknowledged_ones_leave(
    ctx: Context, clock: FixedClock
) -> None:
    sink = ctx.alerts
    first = sink.raise_alert("store.gone", "/store", "the store is gone", severity="critical")
    sink.raise_alert("store.gone2", "/store", "the store is gone again", severity="critical")
    sink.raise_alert("device.unknown", "DV-9", "who is this", severity="warning")
    assert first is not None
    with ctx.ledger.session() as s:
        acknowledge(s, first, by="duty", clock=clock, station=ctx.config.station.id)

    samples = scrape(ctx.config, ctx.ledger)

    assert samples[("dockd_alerts_open", (("severity", "critical"),))] == 1
    assert samples[("dockd_alerts_open", (("severity", "warning"),))] == 1
    assert samples[("dockd_alerts_open", (("severity", "info"),))] == 0
    assert samples[("dockd_alerts_raised_total", (("severity", "critical"),))] == 2
    with ctx.ledger.read() as s:
        assert len(list(s.scalars(select(Alert)))) == 3


def test_a_new_station_scrapes_zeros_and_no_times(config: Config, ledger: Ledger) -> None:
    samples = scrape(config, ledger)

    assert samples[("dockd_files_ingested_total", ())] == 0
    assert samples[("dockd_bytes_ingested_total", ())] == 0
    assert samples[("dockd_dock_session_duration_seconds_count", ())] == 0
    assert ("dockd_fixity_last_success_timestamp_seconds", ()) not in samples
    assert ("dockd_last_dock_recorder_free_bytes", ()) not in samples
    assert samples[("dockd_info", (("station", "st-test"), ("version", "0.1.0")))] == 1


def test_failure_reasons_become_a_few_labels() -> None:
    assert reason_class("copy failed: Input/output error (errno 5)") == "copy failed"
    assert reason_class("a symbolic link: links are never followed") == "a symbolic link"
    assert reason_class("nested deeper than 64 folders: not read") == "nested deeper than N folders"
    assert reason_class("changed size while being copied (10 -> 5 bytes); ...") == (
        "changed size while being copied"
    )
    assert reason_class("") == "unknown"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_endpoint_serves_the_figures_over_http(
    tmp_path: Path, ctx: Context, clock: FixedClock
) -> None:
    rec, _ = docked(tmp_path, ctx)
    run_ingest(ctx, rec.root)
    server = MetricsServer(ctx.config, ctx.ledger, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            samples = parse(resp.read().decode())
    finally:
        server.stop()

    assert samples[("dockd_files_ingested_total", ())] == len(rec.recordings)
    assert samples[("dockd_dock_sessions_total", (("outcome", "partial"),))] == 1


def test_the_daemon_serves_where_the_config_says_and_a_busy_port_is_not_fatal(
    tmp_path: Path, ledger: Ledger
) -> None:
    port = _free_port()
    config = make_config(tmp_path, f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    server = start_metrics(config, ledger)
    assert server is not None
    try:
        assert server.port == port
        busy = start_metrics(config, ledger)  # the port is taken: logged, no endpoint
        assert busy is None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
            assert b"dockd_ledger_up 1.0" in resp.read()
    finally:
        server.stop()
    off = make_config(tmp_path, '[metrics]\nlisten = ""\n')
    assert start_metrics(off, ledger) is None


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("127.0.0.1", "is not HOST:PORT"),
        ("127.0.0.1:99999", "is not a number from 1 to 65535"),
        ("[127.0.0.1]:9470", "is not an IPv6 address"),
        (":9470", "names no host"),
    ],
)
def test_a_bad_listen_address_is_refused_with_its_key_and_line(
    tmp_path: Path, listen: str, says: str
) -> None:
    path = write_config(tmp_path, f'\n[metrics]\nlisten = "{listen}"\n')
    line = path.read_text().splitlines().index(f'listen = "{listen}"') + 1

    with pytest.raises(ConfigError) as refused:
        load_config(path)

    assert f"line {line}: metrics.listen" in str(refused.value)
    assert says in str(refused.value)


@pytest.mark.root
def test_dockd_run_serves_what_a_dockd_ingest_beside_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real daemon's endpoint counts an ingest run by hand in another process."""
    need(root=True, why="dockd run needs root (mount directory, the kernel's uevents)")
    port = _free_port()
    config = write_config(
        tmp_path,
        f"""
[dock]
runtime_dir = "{tmp_path / "mnt"}"
udev_source = "kernel"
automount_roots = []
[[dock.match]]
name = "nothing-here"
devname = "/dev/dockd-test-none*"

[metrics]
listen = "127.0.0.1:{port}"
""",
    )
    rec = make_recorder(tmp_path / "rec", clips=1, extras=False)
    cfg = load_config(config)
    led = open_ledger(cfg.ledger.url)
    try:
        register(led, FixedClock(NOW), rec)
    finally:
        led.close()
    daemon = Daemon(config, tmp_path / "dockd.log").start()
    try:
        assert main(["-c", str(config), "ingest", str(rec.root)]) == 0
        capsys.readouterr()
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as resp:
            samples = parse(resp.read().decode())
        code, _ = daemon.terminate()
    finally:
        daemon.close()

    assert code == 0
    assert samples[("dockd_files_ingested_total", ())] == len(rec.recordings)
    assert samples[("dockd_dock_sessions_total", (("outcome", "complete"),))] == 1
    assert daemon.events("metrics endpoint listening", port=port)
