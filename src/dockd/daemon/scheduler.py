"""The sweeps inside ``dockd run``, run on their crontab schedules by APScheduler.

Each sweep with a schedule in ``[schedule]`` becomes one cron job of a
BackgroundScheduler, in the station's time zone, with:

* ``max_instances = 1`` in this process, and the ledger lock of
  :mod:`dockd.sweeps.runs` across processes (a ``dockd sweep`` by hand, another
  daemon on a shared ledger): one run of a sweep at a time;
* ``coalesce``: several missed runs are run once;
* ``misfire_grace_time``: a run missed by less than that still runs late.

``shutdown`` sets the stop event the sweeps check between files (and while the
fixity sweep hashes or waits on its rate limit), then waits for the running
sweeps to end, at most ``timeout`` seconds: a daemon's stop is bounded even by a
sweep that does not look at its stop event often enough.

The daily reconciliation (:mod:`dockd.reports.daily`) and the duties check
(:mod:`dockd.reports.duties`: unexplained gaps, an inspection overdue) are scheduled
like the sweeps, each a ``sweep_runs`` kind of its own.

The ``[backup]`` schedule, when set, is one more job of the same kind: a verified
ledger backup (:func:`dockd.ledger.backup.scheduled`) whose failure raises a
``backup.failed`` alert; so is ``[handover]``'s check (the quarter just ended handed
over once, :func:`dockd.evidence.handover.scheduled`).

The config has already read every schedule with APScheduler when it loaded
(:func:`dockd.config.policy.cron_fields`, which also turns crontab's weekdays into
the names APScheduler 3 reads alike); the two are the only APScheduler imports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config
from dockd.config.policy import cron_fields
from dockd.context import Context
from dockd.evidence import handover
from dockd.ledger import backup
from dockd.ledger.db import Ledger
from dockd.reports.daily import run_daily_report
from dockd.reports.duties import run_duties
from dockd.reports.weekly import run_weekly_report
from dockd.sweeps.archive import run_archive
from dockd.sweeps.fixity import run_fixity
from dockd.sweeps.retention import run_retention
from dockd.sweeps.runs import SweepBusy

log = structlog.get_logger("dockd.daemon.scheduler")


def run_backup(ctx: Context) -> backup.BackupResult:
    """The ``[backup]`` job: a verified ledger backup into ``dest``, pruned to ``keep``."""
    cfg = ctx.config
    result, _ = backup.scheduled(
        cfg.ledger.url,
        cfg.backup,
        station=cfg.station.id,
        at=ctx.clock.now(),
        group=cfg.ledger.group,
    )
    return result


def run_handover(ctx: Context) -> object:
    """The ``[handover]`` check: the quarter just ended handed over, once."""
    return handover.scheduled(
        config=ctx.config, ledger=ctx.ledger, alerts=ctx.alerts, clock=ctx.clock, actor=ctx.actor
    )


SWEEPS: dict[str, Callable[[Context], object]] = {
    "retention": run_retention,
    "archive": run_archive,
    "fixity": run_fixity,
    "weekly_report": run_weekly_report,
    "daily_report": run_daily_report,
    "duties": run_duties,
    "backup": run_backup,
    "handover": run_handover,
}

CLI = {
    "retention": "dockd sweep retention",
    "archive": "dockd sweep archive",
    "fixity": "dockd sweep fixity",
    "weekly_report": "dockd sweep report",
    "daily_report": "dockd sweep daily",
    "duties": "dockd sweep duties",
    "backup": "dockd ledger backup DEST",
    "handover": "dockd handover --quarter QUARTER",
}


def cron_trigger(expr: str, config: Config) -> CronTrigger:
    """An APScheduler trigger for a crontab expression, read in the station's zone."""
    return CronTrigger.from_crontab(" ".join(cron_fields(expr)), timezone=config.station.tz)


class SweepScheduler:
    """Runs the sweeps on their schedules until shut down."""

    def __init__(self, config: Config, ledger: Ledger, clock: Clock, alerts: AlertSink) -> None:
        self.config = config
        self.stop = threading.Event()
        self.ctx = Context(config, ledger, clock, alerts, actor="dockd", stop=self.stop)
        self._running: set[str] = set()
        self._idle = threading.Condition()
        sched = config.schedule
        self._scheduler = BackgroundScheduler(
            timezone=config.station.tz,
            executors={"default": ThreadPoolExecutor(max_workers=len(SWEEPS))},
            job_defaults={
                "coalesce": sched.coalesce,
                "max_instances": 1,
                "misfire_grace_time": sched.misfire_grace_minutes * 60,
            },
        )

    def jobs(self) -> dict[str, str]:
        """Job -> crontab expression: the sweeps switched on, and the ``[backup]`` and
        ``[handover]`` schedules."""
        jobs = dict(self.config.schedule.jobs())
        if self.config.backup.schedule:
            jobs["backup"] = self.config.backup.schedule
        if self.config.handover.schedule:
            jobs["handover"] = self.config.handover.schedule
        return jobs

    def _add_jobs(self) -> None:
        sched = self.config.schedule
        for kind, expr in self.jobs().items():
            self._scheduler.add_job(
                self.run_job,
                cron_trigger(expr, self.config),
                args=[kind],
                id=kind,
                name=f"{kind} sweep ({expr})",
                replace_existing=True,
                coalesce=sched.coalesce,
                misfire_grace_time=sched.misfire_grace_minutes * 60,
            )

    def start(self) -> None:
        self._add_jobs()
        self._scheduler.start()
        for job in self._scheduler.get_jobs():
            log.info("sweep scheduled", sweep=job.id, next_run=str(job.next_run_time))

    def reload(self, config: Config, alerts: AlertSink) -> None:
        """Use ``config`` from the next run of each sweep on: its schedules, its policy.

        A sweep running now goes on with the Context it started with (it was handed
        that one); the jobs are replaced, a sweep switched off loses its job, and a job's
        next run is computed afresh from its new crontab expression.
        """
        ctx = self.ctx
        self.config = config
        self.ctx = Context(config, ctx.ledger, ctx.clock, alerts, actor=ctx.actor, stop=self.stop)
        wanted = self.jobs()
        for job in self._scheduler.get_jobs():
            if job.id in SWEEPS and job.id not in wanted:
                job.remove()
                log.info("sweep unscheduled", sweep=job.id)
        self._add_jobs()
        for job in self._scheduler.get_jobs():
            if job.id in wanted:
                nxt = getattr(job, "next_run_time", None)  # none yet before the start
                log.info("sweep scheduled", sweep=job.id, next_run=str(nxt))

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Stop the schedule and tell running sweeps to stop; True when none runs any more.

        With ``wait``, waits for the running sweeps to end (at most ``timeout`` s,
        None: as long as they take). A sweep still running after that goes on in
        its worker thread until it next checks the stop event.
        """
        self.stop.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        with self._idle:
            if wait:
                self._idle.wait_for(lambda: not self._running, timeout)
            if self._running:
                log.warning("sweeps still running at shutdown", sweeps=sorted(self._running))
            return not self._running

    def next_runs(self) -> dict[str, datetime | None]:
        """Sweep -> when it runs next (for ``dockd status`` and tests)."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    def run_now(self, kind: str) -> None:
        """Queue one run of ``kind`` on the scheduler's executor, as if its time had come."""
        self._scheduler.add_job(
            self.run_job, args=[kind], id=f"{kind}-now", name=f"{kind} now", replace_existing=True
        )

    def run_job(self, kind: str) -> None:
        """One scheduled run: never raises (a scheduler thread has no one to tell but alerts)."""
        with self._idle:
            if self.stop.is_set():
                return
            self._running.add(kind)
        try:
            self._run_job(kind)
        finally:
            with self._idle:
                self._running.discard(kind)
                self._idle.notify_all()

    def _run_job(self, kind: str) -> None:
        try:
            result = SWEEPS[kind](self.ctx)
        except SweepBusy as exc:
            log.warning("sweep skipped: another run is in progress", sweep=kind, reason=str(exc))
            return
        except Exception as exc:
            log.exception("sweep failed", sweep=kind)
            what, how = f"{kind} sweep", CLI[kind]
            if kind == "backup":
                what, how = "ledger backup", f"dockd ledger backup {self.config.backup.dest}"
            elif kind == "handover":
                quarter = handover.previous_quarter(self.ctx.clock.now(), self.config).name
                what, how = "quarterly hand-over", f"dockd handover --quarter {quarter}"
            try:
                self.ctx.alerts.raise_alert(
                    f"{kind}.failed" if kind == "backup" else "sweep.failed",
                    kind,
                    f"the scheduled {what} failed: {exc}. It runs again at its next "
                    f"scheduled time; `{how}` runs it now",
                    severity="critical",
                )
            except Exception:
                log.exception("could not even raise the alert", sweep=kind)
            return
        log.info("sweep done", sweep=kind, status=getattr(result, "status", None))
