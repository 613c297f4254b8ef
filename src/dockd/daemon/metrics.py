"""The Prometheus endpoint of ``dockd run``: every figure read from the ledger when scraped.

Nothing is counted in memory: :class:`LedgerCollector` asks the ledger at each
scrape, so the figures hold across restarts and include what other processes did
(``dockd ingest`` by hand, ``dockd sweep``). On a ledger shared by many stations
only this station's rows count. No stage of dockd knows metrics exist.

One scrape is one read transaction (it blocks no writer) of six aggregate queries,
none on ``files`` (a row per recording, without bound): (1) one pass over this
station's ``dock_sessions`` (its ``station`` index, a row per dock) giving sessions
by outcome, files and bytes, and each ended session's duration and rate bucket, by
``CASE`` and grouped in the database so a few rows come back; (2) the failures by
disposition and reason, a few rows a month; (3) the sweep runs by kind and status;
(4) their durations by kind and bucket; (5) the alerts by severity; (6) the newest
dock that measured its recorder. Then ``statvfs`` of the store and the quarantine.

Pass (1) is the cost. On a busy two-core machine (load 7) 18,000 sessions (a year
at 50 docks a day) took 0.2-0.6 s a scrape and 180,000 (ten years) about 2 s; an
idle one is several times faster. Once a minute is plenty: docks last minutes.

A ledger that cannot be read does not fail the scrape: ``dockd_ledger_up`` is 0,
the free-space figures are still given, and the error is logged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Label

from dockd import __version__
from dockd.config import Config
from dockd.ingest.outcome import SessionOutcome
from dockd.ledger.db import Ledger
from dockd.ledger.models import Alert, DockSession, SessionFailure, Severity, SweepRun
from dockd.sweeps.runs import RunStatus

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
    if dialect == "sqlite":  # days as a double, to the nearest millisecond (round() is slow)
        millis = (func.julianday(end) - func.julianday(start)) * 86_400_000.0 + 0.5
        return cast(millis, Integer) / 1000.0
    return func.extract("epoch", end - start)


def _once(dialect: str, rows: Select[Any]) -> Subquery:
    """``rows`` as a subquery whose columns are worked out once a row: SQLite would fold
    it into the outer query, working a duration out again in each bucket's ``WHEN``, but
    never does so with a limited one under an aggregate (-1: no limit)."""
    return (rows.limit(-1) if dialect == "sqlite" else rows).subquery()


def _bucket(
    value: ColumnElement[Any], bounds: Sequence[float], *, per: ColumnElement[Any] | None = None
) -> ColumnElement[Any]:
    """The index of the first bound ``value`` is at most (``len(bounds)``: above them all;
    NULL stays NULL). With ``per``, ``value / per`` is placed, without dividing."""
    whens: list[tuple[ColumnElement[bool], Any]] = [(value.is_(None), null())]
    whens += [
        ((value <= bound * per if per is not None else value <= bound), i)
        for i, bound in enumerate(bounds)
    ]
    return case(*whens, else_=len(bounds))


def _named(*columns: Label[Any]) -> list[ColumnElement[Any]]:
    """Group by output columns by name: a ``CASE`` repeated in ``GROUP BY`` runs twice."""
    return [literal_column(c.name) for c in columns]


def _le(bound: float) -> str:
    """A bucket bound as its exact decimal (``5.0``, ``320000000.0``)."""
    return repr(float(bound))


class _Tally:
    """A histogram put together from per-bucket counts the database grouped."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def add(self, bucket: int | None, count: int, total: Any) -> None:
        if bucket is not None:
            self.counts[bucket] += count
            self.total += float(total or 0)

    def sample(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` pairs ending in +Inf, and the sum."""
        running, buckets = 0, []
        for bound, count in zip([*map(_le, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets, self.total

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc)
        family.add_metric([], *self.sample())
        return family


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
        yield from self._sessions(s, station, dialect)
        yield from self._failures(s, station)
        yield from self._sweeps(s, station, dialect)
        yield from self._alerts(s, station)
        yield from self._last_dock(s, station)

    def _sessions(self, s: Session, station: str, dialect: str) -> Iterator[Metric]:
        """One pass over this station's sessions: counts by outcome, files and bytes, and
        each ended one placed in a duration and a rate bucket (grouped: a few rows back)."""
        per_session = _once(
            dialect,
            select(
                DockSession.outcome.label("outcome"),
                DockSession.files_stored.label("files"),
                DockSession.bytes_copied.label("nbytes"),
                # NULL while the session runs
                _seconds(dialect, DockSession.started_at, DockSession.ended_at).label("seconds"),
            ).where(DockSession.station == station),
        )
        seconds, nbytes = per_session.c.seconds, per_session.c.nbytes
        moved = and_(nbytes > 0, seconds > 0)
        duration_bucket = _bucket(seconds, SESSION_SECONDS).label("duration_bucket")
        rate_bucket = case((moved, _bucket(nbytes, RATE_BYTES_PER_S, per=seconds))).label("rate")
        rows = s.execute(
            select(
                per_session.c.outcome,
                duration_bucket,
                rate_bucket,
                func.count(),
                func.sum(per_session.c.files),
                func.sum(nbytes),
                func.sum(seconds),
                func.sum(case((moved, nbytes / seconds))),
            ).group_by(per_session.c.outcome, *_named(duration_bucket, rate_bucket))
        ).all()
        outcomes: dict[str, int] = {}
        files = nbytes_total = 0
        durations, rates = _Tally(SESSION_SECONDS), _Tally(RATE_BYTES_PER_S)
        for outcome, d_bucket, r_bucket, count, nfiles, nbytes_sum, secs, rate_sum in rows:
            outcomes[outcome] = outcomes.get(outcome, 0) + count
            files += int(nfiles or 0)
            nbytes_total += int(nbytes_sum or 0)
            durations.add(d_bucket, count, secs)
            rates.add(r_bucket, count, rate_sum)
        sessions = CounterMetricFamily(
            "dockd_dock_sessions",
            "Dock sessions (and dockd ingest runs) that ended, by outcome",
            labels=["outcome"],
        )
        running = outcomes.pop(SessionOutcome.RUNNING, 0)
        ended = [o for o in SessionOutcome if o is not SessionOutcome.RUNNING]
        for outcome in [*ended, *sorted(set(outcomes) - set(ended))]:
            sessions.add_metric([str(outcome)], outcomes.get(outcome, 0))
        yield CounterMetricFamily(
            "dockd_files_ingested", "Files copied into the store or quarantine", value=files
        )
        yield CounterMetricFamily("dockd_bytes_ingested", "Bytes ingested", value=nbytes_total)
        yield sessions
        yield GaugeMetricFamily(
            "dockd_dock_sessions_running",
            "Dock sessions under way (or left 'running' by a crash, until dockd run restarts)",
            value=running,
        )
        yield durations.family(
            "dockd_dock_session_duration_seconds",
            "How long a dock session took, from the recorder's arrival to its last file",
        )
        yield rates.family(
            "dockd_dock_session_rate_bytes_per_second",
            "Bytes copied per second of the sessions that copied something",
        )

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

    def _sweeps(self, s: Session, station: str, dialect: str) -> Iterator[Metric]:
        here = SweepRun.station == station
        rows = s.execute(
            select(SweepRun.kind, SweepRun.status, func.count(), func.max(SweepRun.ended_at))
            .where(here)
            .group_by(SweepRun.kind, SweepRun.status)
        ).all()
        kind_status, kind_only = ["kind", "status"], ["kind"]
        runs = CounterMetricFamily("dockd_sweep_runs", "Sweep runs that ended", labels=kind_status)
        last_ok = GaugeMetricFamily(
            "dockd_sweep_last_success_timestamp_seconds",
            "When the last successful run of each sweep ended (Unix time)",
            labels=kind_only,
        )
        fixity = GaugeMetricFamily(
            "dockd_fixity_last_success_timestamp_seconds",
            "When the last successful fixity run ended (Unix time): alert when it is too old",
        )
        running = GaugeMetricFamily("dockd_sweeps_running", "Sweeps under way", labels=kind_only)
        for kind, status, count, ended in rows:
            if status == RunStatus.RUNNING:
                running.add_metric([kind], count)
                continue
            runs.add_metric([kind, status], count)
            at = _aware(ended)
            if status == RunStatus.OK and at is not None:
                last_ok.add_metric([kind], at.timestamp())
                if kind == "fixity":
                    fixity.add_metric([], at.timestamp())
        yield from (runs, running, last_ok, fixity)
        runs_ended = _once(
            dialect,
            select(
                SweepRun.kind.label("kind"),
                _seconds(dialect, SweepRun.started_at, SweepRun.ended_at).label("seconds"),
            ).where(here, SweepRun.ended_at.is_not(None)),
        )
        bucket = _bucket(runs_ended.c.seconds, SWEEP_SECONDS).label("bucket")
        tallies: dict[str, _Tally] = {}
        for kind, b, count, total in s.execute(
            select(
                runs_ended.c.kind, bucket, func.count(), func.sum(runs_ended.c.seconds)
            ).group_by(runs_ended.c.kind, *_named(bucket))
        ).all():
            tallies.setdefault(kind, _Tally(SWEEP_SECONDS)).add(b, count, total)
        durations = HistogramMetricFamily(
            "dockd_sweep_duration_seconds", "How long each sweep run took", labels=kind_only
        )
        for kind, tally in sorted(tallies.items()):
            durations.add_metric([kind], *tally.sample())
        yield durations

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
        labels = ["severity"]
        open_alerts = GaugeMetricFamily(
            "dockd_alerts_open", "Alerts not acknowledged", labels=labels
        )
        raised = CounterMetricFamily(
            "dockd_alerts_raised", "Alerts, repeats counted", labels=labels
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
        up, free, size = (
            GaugeMetricFamily(f"dockd_filesystem_{name}", doc, labels=["place"])
            for name, doc in (
                ("up", "1 when the store's (quarantine's) directory is there: its disk mounted"),
                ("free_bytes", "Space left to dockd on the store's (quarantine's) filesystem"),
                ("size_bytes", "Size of the store's (quarantine's) filesystem"),
            )
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
    """The HTTP endpoint, listening from its making: ``/metrics`` (any path) on a thread."""

    def __init__(self, config: Config, ledger: Ledger, host: str, port: int) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LedgerCollector(config, ledger))
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose when asked for port 0)."""
        return self._server.server_port

    def stop(self, timeout: float = 5.0) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)


def start_metrics(config: Config, ledger: Ledger) -> MetricsServer | None:
    """Serve the metrics as ``[metrics] listen`` says; None when it is off or cannot listen.

    A port in use (another dockd's, another exporter's) is logged, not fatal: the
    daemon's work is docking, and a missing scrape target is what monitoring notices.
    """
    address = config.metrics.address
    if address is None:
        return None
    try:
        server = MetricsServer(config, ledger, *address)
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
