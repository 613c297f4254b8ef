"""The whole configuration: one frozen :class:`Config` made of every section.

Besides holding the sections, it checks what no single section can: naming rule
names are unique, and nothing else dockd writes (the SQLite ledger, trash, per-case
links, archive copies, weekly reports) lies in the store or the quarantine, nor
holds them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from dockd.config.access import AccessConfig
from dockd.config.alerts import AlertsConfig
from dockd.config.backup import BackupConfig
from dockd.config.base import Section
from dockd.config.calendar import CalendarConfig, InspectionConfig
from dockd.config.directory import DirectoryConfig
from dockd.config.dock import DockConfig
from dockd.config.handover import HandoverConfig
from dockd.config.ingest import IngestConfig
from dockd.config.ledger import LedgerConfig, sqlite_file
from dockd.config.logs import LoggingConfig
from dockd.config.metrics import MetricsConfig
from dockd.config.naming import DEFAULT_NAMING, NamingRule
from dockd.config.policy import ArchiveConfig, FixityConfig, RetentionConfig, ScheduleConfig
from dockd.config.reports import ReportsConfig
from dockd.config.station import StationConfig
from dockd.config.store import StoreConfig, relation
from dockd.config.web import EXPORTS_BESIDE_STORE, WebConfig

KeyPath = tuple[str | int, ...]  # a key's place in the file: ("archive", "targets", 0, "path")


class Config(Section):
    """The whole configuration. Built once at start; never changed while running."""

    station: StationConfig = StationConfig()
    store: StoreConfig = StoreConfig()
    ledger: LedgerConfig = LedgerConfig()
    ingest: IngestConfig = IngestConfig()
    naming: tuple[NamingRule, ...] = DEFAULT_NAMING
    alerts: AlertsConfig = AlertsConfig()
    logging: LoggingConfig = LoggingConfig()
    dock: DockConfig = DockConfig()
    retention: RetentionConfig = RetentionConfig()
    archive: ArchiveConfig = ArchiveConfig()
    fixity: FixityConfig = FixityConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    reports: ReportsConfig = ReportsConfig()
    backup: BackupConfig = BackupConfig()
    handover: HandoverConfig = HandoverConfig()
    metrics: MetricsConfig = MetricsConfig()
    access: AccessConfig = AccessConfig()
    directory: DirectoryConfig = DirectoryConfig()
    calendar: CalendarConfig = CalendarConfig()
    inspection: InspectionConfig = InspectionConfig()
    web: WebConfig = WebConfig()
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _retention_calendar(self) -> Config:
        """Retention counts months in the station's calendar."""
        object.__setattr__(self, "retention", self.retention.in_zone(self.station.timezone))
        return self

    @model_validator(mode="after")
    def _handover_categories(self) -> Config:
        unknown = sorted(set(self.handover.categories) - set(self.retention.categories))
        if unknown:
            raise ValueError(
                f"handover.categories names {unknown}, which [retention] does not define; "
                f"use some of {sorted(self.retention.categories)}"
            )
        return self

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Config:
        names = [r.name for r in self.naming]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"naming rule names must be unique; repeated: {dupes}")
        return self

    @model_validator(mode="after")
    def _store_apart(self) -> Config:
        """Nothing else dockd writes may be in the store or quarantine, nor hold them.

        The fixity check walks both and alerts on every file the ledger does not know:
        a SQLite ledger there changes all day, trash, per-case links, archive copies
        and reports would each be "unexpected", and retention could sweep them.
        """
        problems = [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{message}", {"message": message}),
                loc=loc,
                input=str(path),
            )
            for loc, path, message in self._overlaps()
        ]
        if problems:
            raise ValidationError.from_exception_data("Config", problems)
        return self

    def _overlaps(self) -> list[tuple[KeyPath, Path, str]]:
        """(key, path, message) of each place that overlaps the store or the quarantine.

        A problem is reported at the key that is set; where a place is left at its
        default (beside the store), at the store key it collides with.
        """
        store, beside = self.store.root, self.store.root.parent
        fills: dict[str, tuple[Path, KeyPath]] = {"store.root": (store, ("store", "root"))}
        found: list[tuple[KeyPath, Path, str]] = []
        stray = "the fixity check would report every file in it as unexpected"

        def check(
            key: str,
            loc: KeyPath | None,
            path: Path,
            example: Path,
            why: str,
            *,
            file: bool = False,
        ) -> None:
            for name, (other, other_loc) in fills.items():
                found_relation = relation(path, other, file=file)
                if not found_relation:
                    continue
                if loc is None:  # left at its default: the store key that was set is to blame
                    message = (
                        f"{key} is not set, so it is {path}, which {found_relation} {name} "
                        f"({other}); set {key} or {name} to a directory of its own: {why}"
                    )
                else:
                    what = f"the SQLite ledger {path}" if file else str(path)
                    place = "keep it" if file else "make it a directory"
                    message = (
                        f"{what} {found_relation} {name} ({other}); {place} beside the store, "
                        f"e.g. {example}: {why}"
                    )
                found.append((loc or other_loc, path, message))
                return

        def beside_store(key: str, value: Path | None, default: str, why: str) -> None:
            """Check a directory that, left unset, is ``default`` beside the store."""
            loc = tuple(key.split(".")) if value is not None else None
            check(key, loc, value if value is not None else beside / default, beside / default, why)

        beside_store(
            "store.quarantine",
            self.store.quarantine,
            "quarantine",
            "the store and the quarantine are checked and cleaned apart, so each would take "
            "the other's files for strays",
        )
        fills["store.quarantine"] = (
            self.store.quarantine_root,
            ("store", "quarantine") if self.store.quarantine is not None else ("store", "root"),
        )
        ledger = sqlite_file(self.ledger.url)
        if ledger is not None:
            check(
                "ledger.url",
                ("ledger", "url"),
                ledger,
                beside / "ledger.sqlite3",
                "it changes with every ingest, so every fixity run would raise an alert for it",
                file=True,
            )
        trash, by_case = self.retention.trash, self.reports.by_case_root
        moved = "files moved to the trash would still be in the store, and "
        linked = "its hard links would be counted as stored files, and "
        beside_store("retention.trash", trash, "trash", moved + stray)
        beside_store("reports.by_case_root", by_case, "by-case", linked + stray)
        for index, target in enumerate(self.archive.targets):
            check(
                f"archive.targets[{index}].path",
                ("archive", "targets", index, "path"),
                target.path,
                beside / "archive" / target.name,
                "an archive copy must be somewhere else than the originals, and " + stray,
            )
        beside_store(
            "handover.root",
            self.handover.root,
            "handover",
            "a hand-over package holds copies of the originals, and " + stray,
        )
        beside_store(
            "web.exports",
            self.web.exports,
            EXPORTS_BESIDE_STORE,
            "an export package holds copies of the originals, and " + stray,
        )
        reports = self.schedule.weekly_report_dir
        if reports is not None:
            key = "schedule.weekly_report_dir"
            check(key, ("schedule", "weekly_report_dir"), reports, beside / "reports", stray)
        return found
