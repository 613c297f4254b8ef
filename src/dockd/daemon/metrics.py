"""The Prometheus endpoint of ``dockd run``: every figure read from the ledger when scraped.

Nothing is counted in memory. :class:`LedgerCollector` asks the ledger at each
scrape, so the figures are true across restarts of the daemon and include what
other processes did (``dockd ingest`` by hand, ``dockd sweep``, a second station
on a shared PostgreSQL ledger is left out: everything is this station's). No stage
of dockd knows metrics exist.

What one scrape costs: one read transaction (blocks no writer) of seven aggregate
queries, none of them on the ``files`` table, which holds a row per recording and
grows without bound:

1. ``dock_sessions`` by outcome: sessions, files stored, bytes copied (a pass over
   this station's sessions, found by the ``station`` index: one row per dock);
2. ``session_failures`` by disposition and reason text (one row per failed or
   refused file, a handful a month on a healthy station);
3. the session duration and rate histograms, as cumulative ``CASE`` sums in the
   database (one more pass over the ended sessions; no rows travel);
4. ``sweep_runs`` by kind and status, with the last success of each kind;
5. the sweep duration histograms (one row per kind);
6. ``alerts`` by severity: open ones and all raised (a pass over the alerts);
7. the last dock that measured its recorder's filesystem (newest first, one row);

then ``statvfs`` of the store and the quarantine. A station docking 50 recorders a
day for ten years has about 180,000 session rows: a few tens of milliseconds.

A ledger that cannot be read does not fail the scrape: ``dockd_ledger_up`` is 0,
the free-space figures are still given, and the error is logged.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dockd import __version__
from dockd.config import Config
from dockd.ledger.db import Ledger
from dockd.ledger.models import Alert, DockSession, SessionFailure, Severity, SweepRun

log = structlog.get_logger("dockd.daemon.metrics")

# Upper bounds of the histogram buckets. A dock lasts from seconds (a recorder with
# nothing new) to an hour or two (a full 128 GB card over USB 2); a recorder's USB
# reads at a few MB/s (USB 2) to a few hundred (USB 3); a sweep from seconds to the
# better part of a night (a fixity run paced at 20 MB/s).
SESSION_SECONDS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
RATE_BYTES_PER_S = (1e6, 2e6, 5e6, 10e6, 20e6, 40e6, 80e6, 160e6, 320e6)
SWEEP_SECONDS = (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)

# A failure's reason is a sentence naming the errno or the refusal; its label is the
# words before the first ':', '(' or ';' ("copy failed", "a symbolic link"), so the
# label has as many values as the code has messages, never one per file.
_REASON_END = re.compile(r"[:(;]")
REASON_MAX = 48


def reason_class(reason: str) -> str:
    """The bounded label of a failure's reason text."""
    head = _REASON_END.split(reason, maxsplit=1)[0].strip().lower()
    head = re.sub(r"\d+", "N", head)[:REASON_MAX].strip()
    return head or "unknown"


def _seconds(dialect: str, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, in the database (SQLite keeps times as text)."""
    if dialect == "sqlite":  # days as a double: rounded to the millisecond it is exact
        return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)
    return func.extract("epoch", end - start)


def _buckets(
    seconds: ColumnElement[Any], bounds: Sequence[float], label: str
) -> list[ColumnElement[Any]]:
    """One ``SUM(CASE WHEN value <= bound ...)`` column per bound: cumulative counts."""
    return [
        func.sum(case((seconds <= bound, 1), else_=0)).label(f"{label}{i}")
        for i, bound in enumerate(bounds)
    ]


def _le(bound: float) -> str:
    """A bucket bound as its exact decimal (``5.0``, ``320000000.0``)."""
    return repr(float(bound))


def _histogram(
    name: str,
    doc: str,
    bounds: Sequence[float],
    row: Any,
    label: str,
    count: int,
    total: float | None,
    labels: dict[str, str] | None = None,
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels or {}))
    cumulative = [(_le(b), float(getattr(row, f"{label}{i}") or 0)) for i, b in enumerate(bounds)]
    family.add_metric(
        list((labels or {}).values()),
        [*cumulative, ("+Inf", float(count))],
        float(total or 0.0),
    )
    return family


def _ts(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


@dataclass(eq=False)  # a registry keys its collectors by identity
class LedgerCollector(Collector):
    """Reads this station's figures from the ledger at every scrape (see the module)."""

    config: Config
    ledger: Ledger

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "dockd_info", "This station and the version of dockd", labels=["station", "version"]
        )
        info.add_metric([self.config.station.id, __version__], 1)
        yield info
        up = GaugeMetricFamily("dockd_ledger_up", "1 when the ledger could be read at this scrape")
        try:
            with self.ledger.read() as s:
                found = list(self._from_ledger(s))
        except SQLAlchemyError as exc:
            log.error("metrics: the ledger could not be read", error=str(exc))
            up.add_metric([], 0)
            found = []
        else:
            up.add_metric([], 1)
        yield up
        yield from found
        yield from self._space()

    # ------------------------------------------------------------------ ledger

    def _from_ledger(self, s: Session) -> Iterator[Metric]:
        station = self.config.station.id
        dialect = self.ledger.dialect
        yield from self._sessions(s, station)
        yield from self._failures(s, station)
        yield from self._session_histograms(s, station, dialect)
        yield from self._sweeps(s, station, dialect)
        yield from self._alerts(s, station)
        yield from self._last_dock(s, station)

    def _sessions(self, s: Session, station: str) -> Iterator[Metric]:
        rows = s.execute(
            select(
                DockSession.outcome,
                func.count(),
                func.coalesce(func.sum(DockSession.files_stored), 0),
                func.coalesce(func.sum(DockSession.bytes_copied), 0),
            )
            .where(DockSession.station == station)
            .group_by(DockSession.outcome)
        ).all()
        sessions = CounterMetricFamily(
            "dockd_dock_sessions",
            "Dock sessions (and dockd ingest runs) by outcome; 'running' ones are under way",
            labels=["outcome"],
        )
        files = CounterMetricFamily("dockd_files_ingested", "Files copied into the store, verified")
        nbytes = CounterMetricFamily("dockd_bytes_ingested", "Bytes of the files ingested")
        for outcome, count, _, _ in rows:
            sessions.add_metric([outcome], count)
        files.add_metric([], sum(int(r[2]) for r in rows))
        nbytes.add_metric([], sum(int(r[3]) for r in rows))
        yield from (files, nbytes, sessions)

    def _failures(self, s: Session, station: str) -> Iterator[Metric]:
        rows = s.execute(
            select(SessionFailure.disposition, SessionFailure.reason, func.count())
            .join(DockSession, DockSession.id == SessionFailure.session_id)
            .where(DockSession.station == station)
            .group_by(SessionFailure.disposition, SessionFailure.reason)
        ).all()
        totals: dict[tuple[str, str], int] = {}
        for disposition, reason, count in rows:
            key = (disposition, reason_class(reason or ""))
            totals[key] = totals.get(key, 0) + count
        family = CounterMetricFamily(
            "dockd_file_failures",
            "Files seen on a recorder that did not end in the store: failed (read or write "
            "error) or refused (links, device nodes), by the first words of the reason",
            labels=["disposition", "reason"],
        )
        for (disposition, reason), count in sorted(totals.items()):
            family.add_metric([disposition, reason], count)
        yield family

    def _session_histograms(self, s: Session, station: str, dialect: str) -> Iterator[Metric]:
        seconds = _seconds(dialect, DockSession.started_at, DockSession.ended_at)
        moved = and_(DockSession.bytes_copied > 0, seconds > 0)
        # rate <= bound  <=>  bytes <= bound * seconds (no division by zero in SQL)
        rate_columns = [
            func.sum(
                case((and_(moved, DockSession.bytes_copied <= bound * seconds), 1), else_=0)
            ).label(f"r{i}")
            for i, bound in enumerate(RATE_BYTES_PER_S)
        ]
        row = s.execute(
            select(
                func.count(),
                func.sum(seconds),
                func.sum(case((moved, 1), else_=0)),
                func.sum(case((moved, DockSession.bytes_copied / seconds), else_=literal(0.0))),
                *_buckets(seconds, SESSION_SECONDS, "d"),
                *rate_columns,
            ).where(DockSession.station == station, DockSession.ended_at.is_not(None))
        ).one()
        count, total, moved_count, rate_total = row[0], row[1], row[2] or 0, row[3]
        yield _histogram(
            "dockd_dock_session_duration_seconds",
            "How long a dock session took, from the recorder's arrival to its last file",
            SESSION_SECONDS,
            row,
            "d",
            count,
            total,
        )
        yield _histogram(
            "dockd_dock_session_rate_bytes_per_second",
            "Bytes copied per second of the sessions that copied something",
            RATE_BYTES_PER_S,
            row,
            "r",
            moved_count,
            rate_total,
        )

    def _sweeps(self, s: Session, station: str, dialect: str) -> Iterator[Metric]:
        here = SweepRun.station == station
        rows = s.execute(
            select(SweepRun.kind, SweepRun.status, func.count(), func.max(SweepRun.ended_at))
            .where(here)
            .group_by(SweepRun.kind, SweepRun.status)
        ).all()
        runs = CounterMetricFamily(
            "dockd_sweep_runs", "Sweep runs by kind and result", labels=["kind", "status"]
        )
        last_ok = GaugeMetricFamily(
            "dockd_sweep_last_success_timestamp_seconds",
            "When the last successful run of each sweep ended (Unix time)",
            labels=["kind"],
        )
        fixity = GaugeMetricFamily(
            "dockd_fixity_last_success_timestamp_seconds",
            "When the last successful fixity run ended (Unix time): alert when it is too old",
        )
        for kind, status, count, ended in rows:
            runs.add_metric([kind, status], count)
            at = _ts(_aware(ended))
            if status == "ok" and at is not None:
                last_ok.add_metric([kind], at)
                if kind == "fixity":
                    fixity.add_metric([], at)
        yield from (runs, last_ok, fixity)
        seconds = _seconds(dialect, SweepRun.started_at, SweepRun.ended_at)
        for row in s.execute(
            select(
                SweepRun.kind,
                func.count(),
                func.sum(seconds),
                *_buckets(seconds, SWEEP_SECONDS, "b"),
            )
            .where(here, SweepRun.ended_at.is_not(None))
            .group_by(SweepRun.kind)
        ).all():
            yield _histogram(
                "dockd_sweep_duration_seconds",
                "How long each sweep run took, by kind",
                SWEEP_SECONDS,
                row,
                "b",
                row[1],
                row[2],
                {"kind": row[0]},
            )

    def _alerts(self, s: Session, station: str) -> Iterator[Metric]:
        rows = s.execute(
            select(
                Alert.severity,
                func.sum(case((Alert.acknowledged_at.is_(None), 1), else_=0)),
                func.sum(Alert.occurrences),
            )
            .where(Alert.station == station)
            .group_by(Alert.severity)
        ).all()
        found = {severity: (int(open_ or 0), int(raised or 0)) for severity, open_, raised in rows}
        open_alerts = GaugeMetricFamily(
            "dockd_alerts_open", "Alerts not yet acknowledged, by severity", labels=["severity"]
        )
        raised = CounterMetricFamily(
            "dockd_alerts_raised",
            "Alerts raised, by severity (repeats folded into one alert each count)",
            labels=["severity"],
        )
        for severity in [*Severity, *sorted(set(found) - set(Severity))]:
            o, r = found.get(severity, (0, 0))
            open_alerts.add_metric([str(severity)], o)
            raised.add_metric([str(severity)], r)
        yield from (open_alerts, raised)

    def _last_dock(self, s: Session, station: str) -> Iterator[Metric]:
        row = s.execute(
            select(DockSession.fs_free_bytes, DockSession.fs_capacity_bytes, DockSession.started_at)
            .where(DockSession.station == station, DockSession.fs_capacity_bytes.is_not(None))
            .order_by(DockSession.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return
        free, capacity, started = row
        for name, doc, value in (
            ("free_bytes", "Free space on the recorder of the last dock", free),
            ("capacity_bytes", "Size of the filesystem of the recorder of the last dock", capacity),
            ("timestamp_seconds", "When that dock began (Unix time)", started.timestamp()),
        ):
            if value is not None:
                yield GaugeMetricFamily(f"dockd_last_dock_recorder_{name}", doc, value=value)

    # ------------------------------------------------------------------ filesystems

    def _space(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "dockd_filesystem_up",
            "1 when the directory is there (its disk mounted), by place",
            labels=["place"],
        )
        free = GaugeMetricFamily(
            "dockd_filesystem_free_bytes",
            "Space left to dockd on the filesystem of the store and of the quarantine",
            labels=["place"],
        )
        size = GaugeMetricFamily(
            "dockd_filesystem_size_bytes",
            "Size of the filesystem of the store and of the quarantine",
            labels=["place"],
        )
        store = self.config.store
        for place, path in (("store", store.root), ("quarantine", store.quarantine_root)):
            try:
                vfs = os.statvfs(path)
            except OSError:
                up.add_metric([place], 0)
                continue
            up.add_metric([place], 1)
            free.add_metric([place], vfs.f_bavail * vfs.f_frsize)
            size.add_metric([place], vfs.f_blocks * vfs.f_frsize)
        yield from (up, free, size)


def _aware(value: Any) -> datetime | None:
    """A MAX() of a time column, aware whatever form the database gives it back in."""
    if value is None:
        return None
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(at, datetime)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class MetricsServer:
    """The HTTP endpoint: ``/metrics`` (any path, as prometheus_client serves) on a thread."""

    def __init__(self, config: Config, ledger: Ledger, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LedgerCollector(config, ledger))
        self._host, self._port = host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose when started on port 0)."""
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> None:
        self._server, self._thread = start_http_server(
            self._port, addr=self._host, registry=self.registry
        )

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None


def start_metrics(config: Config, ledger: Ledger) -> MetricsServer | None:
    """Serve the metrics as ``[metrics] listen`` says; None when it is off or cannot listen.

    A port in use (another dockd's, another exporter's) is logged, not fatal: the
    daemon's work is docking, and a missing scrape target is what monitoring notices.
    """
    address = config.metrics.address
    if address is None:
        return None
    server = MetricsServer(config, ledger, *address)
    try:
        server.start()
    except OSError as exc:
        log.error(
            "metrics endpoint not started: cannot listen",
            listen=config.metrics.listen,
            error=str(exc),
            fix='free the port, or set [metrics] listen to another address ("" for none)',
        )
        return None
    log.info("metrics endpoint listening", listen=config.metrics.listen, port=server.port)
    return server
