"""SQLAlchemy 2.x typed models of the ledger.

Portable between SQLite and PostgreSQL: plain types, times stored as UTC and
always returned timezone-aware, JSON details kept as text. Every change to this
file needs a migration in ``migrations/versions``; a test checks they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    or_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite has no time zones; storing naive UTC and re-attaching UTC on the way out
    makes both backends behave alike. A naive datetime is refused on the way in:
    every time in dockd is aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the ledger; times must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(
        self, dialect: Dialect, coltype: Any
    ) -> Callable[[Any], datetime | None] | None:
        """On SQLite, the ledger's text (naive UTC, as written above) read as an aware
        time in one parse.

        The generic path parses the text, then gives the result its zone with
        ``replace``: about 1.6 us a time, and a month's report or the upcoming
        deletions read hundreds of thousands (a quarter of their time at ten million
        files). Text this parse does not take (an offset of its own, a time written
        into the ledger by hand) goes the generic path, as before.
        """
        generic = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or generic is None:
            return generic
        parse = datetime.fromisoformat

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            try:
                out = parse(value + "+00:00")
            except (TypeError, ValueError):
                return generic(value)
            # a date alone ("2026-09-01") parses without the zone
            return out if out.tzinfo is not None else out.replace(tzinfo=UTC)

        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), int: Integer}


# The words a status column holds. The columns stay plain strings (the schema, the
# migrations and the auditors' SQL views see text); a member equals its word
# (FileState.STORED == "stored"). The stages own the words of their own columns
# (a dock session's outcome, a sweep run's status, a fixity finding).


class FileState(StrEnum):
    """``Recording.state``: where a recording is in its life."""

    STORED = "stored"
    TRASHED = "trashed"
    PURGED = "purged"


class Severity(StrEnum):
    """``Alert.severity``, from the least to the most urgent."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Device(Base):
    """A registered recorder (R1): numbered, with the identifiers it can be matched on."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    serial: Mapped[str | None] = mapped_column(String(128), unique=True)
    fs_uuid: Mapped[str | None] = mapped_column(String(64), index=True)
    fs_label: Mapped[str | None] = mapped_column(String(64), index=True)
    brand: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))
    unit: Mapped[str | None] = mapped_column(String(128))
    registered_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    retired_reason: Mapped[str | None] = mapped_column(String(16))  # retired | lost | disposed
    # The person answerable for it (定人管理): an account's login (migration 0013).
    custodian: Mapped[str | None] = mapped_column(String(64))


class DeviceEvent(Base):
    """One entry of a device's service record: maintenance, repair, a custodian change,
    disposal (R1 device life; 004 管理办法 §8, §16). What a person did to the hardware,
    beside the registry's own audited changes."""

    __tablename__ = "device_events"
    __table_args__ = (Index("ix_device_events_device_when", "device_id", "happened_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    kind: Mapped[str] = mapped_column(String(16))  # maintenance | repair | custodian | disposed
    happened_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(128))  # work order, vendor ticket
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(64))


class Officer(Base):
    """A person who wears recorders, known by badge number."""

    __tablename__ = "officers"

    id: Mapped[int] = mapped_column(primary_key=True)
    badge: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    unit: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]


class Assignment(Base):
    """Officer O held device D from ``valid_from`` until ``valid_until`` (open when None)."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_device_from", "device_id", "valid_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), index=True)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))

    device: Mapped[Device] = relationship()
    officer: Mapped[Officer] = relationship()


class DockSession(Base):
    """One docking of one recorder (or one ``dockd ingest`` run) and what came of it."""

    __tablename__ = "dock_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    station: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), index=True)
    device_ref: Mapped[str | None] = mapped_column(String(128))
    identified_by: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    files_seen: Mapped[int] = mapped_column(default=0)
    files_stored: Mapped[int] = mapped_column(default=0)
    files_present: Mapped[int] = mapped_column(default=0)
    files_failed: Mapped[int] = mapped_column(default=0)
    files_refused: Mapped[int] = mapped_column(default=0)
    bytes_copied: Mapped[int] = mapped_column(BigInteger, default=0)
    fs_capacity_bytes: Mapped[int | None] = mapped_column(BigInteger)
    fs_free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # running | complete | partial | failed | interrupted | refused
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str | None] = mapped_column(Text)
    # The process that runs the session: a 'running' session whose process is gone
    # (same host, pid no longer alive) is closed 'interrupted' by the next run.
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None]
    boot_id: Mapped[str | None] = mapped_column(String(64))  # a PID means nothing after a reboot
    # The recorder's clock minus the station's, in seconds, when it could be measured
    # (the recorder's time file); None when unknown.
    clock_offset_s: Mapped[float | None] = mapped_column(Float)

    device: Mapped[Device | None] = relationship()
    failures: Mapped[list[SessionFailure]] = relationship(
        back_populates="session", order_by="SessionFailure.id"
    )


class SessionFailure(Base):
    """A file seen on a recorder that did not end verified in the store, and why (R17)."""

    __tablename__ = "session_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("dock_sessions.id"), index=True)
    source_path: Mapped[str] = mapped_column(Text)
    # failed (read/write error) | refused (symlink, device node, outside the source)
    disposition: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]

    session: Mapped[DockSession] = relationship(back_populates="failures")


# Indexes built on one kind of database only (revision 0018), by name. Alembic's schema
# comparison does not read ``ddl_if``: whoever compares skips the other dialect's.
ONE_DIALECT_INDEXES = {"ix_files_device_source": "sqlite", "ix_files_source_path": "postgresql"}

# What some indexes are built with on one kind of database, as the database prints the
# index back (revisions 0010, 0017, 0018, 0019, 0020): partial predicates, PostgreSQL's INCLUDE and
# hash. Not given to the ``Index`` objects below: a ``postgresql_*`` keyword makes
# SQLAlchemy import its PostgreSQL dialect into every command (2 MiB of an ingest's
# memory, on a SQLite station too) for DDL that only the migrations issue, and
# Alembic's schema comparison does not look at them. test_ledger reads every built
# ledger's indexes back against this table.
INDEX_OPTIONS: dict[str, dict[str, str]] = {
    "ix_files_report": {"postgresql": "INCLUDE (id)"},
    "ix_files_badge_mismatch": {
        "sqlite": "WHERE badge_mismatch = 1",
        "postgresql": "WHERE badge_mismatch",
    },
    "ix_files_clock_suspect": {
        "sqlite": "WHERE clock_suspect = 1",
        "postgresql": "WHERE clock_suspect",
    },
    # a device's clips, each line walked in order (leads.is_clip; revision 0020)
    "ix_files_device_line": {
        "sqlite": "WHERE kind IN ('video', 'audio')",
        "postgresql": "WHERE ((kind)::text = ANY ((ARRAY['video'::character varying,"
        " 'audio'::character varying])::text[]))",
    },
    # a clip that starts after its lead ends: where a break can be (revision 0020)
    "ix_files_gap": {
        "sqlite": "WHERE lead_end < recorded_start",
        "postgresql": "WHERE (lead_end < recorded_start)",
    },
    # footage.untagged_sql writes its condition the same way (revision 0019)
    "ix_files_untagged": {
        "sqlite": "WHERE (case_number || '') IS NULL AND state = 'stored'",
        "postgresql": "WHERE ((((case_number)::text || ''::text) IS NULL)"
        " AND ((state)::text = 'stored'::text))",
    },
    "ix_files_source_path": {"postgresql": "USING hash"},
}


class Recording(Base):
    """One original file in the store: where it came from, what it is, who it belongs to."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("station", "store_path"),
        Index("ix_files_device_recorded", "device_id", "recorded_start"),
        Index("ix_files_officer_recorded", "officer_id", "recorded_start"),
        Index("ix_files_blake3", "blake3"),
        Index("ix_files_recorded", "recorded_start"),
        # What the footage reports read of a period, so a month is an index range
        # scan that never visits the table (late, gaps, usage, clock): revision 0010.
        # SQLite's indexes carry the row id; PostgreSQL's is given it: revision 0017
        # (INDEX_OPTIONS).
        Index(
            "ix_files_report",
            "recorded_start",
            "recorded_end",
            "ingested_at",
            "device_ref",
            "kind",
            "officer_id",
            "badge_hint",
            "duration_s",
            "clock_suspect",
        ),
        # The few flagged files of a period, without reading the period: partial
        # indexes (INDEX_OPTIONS).
        Index("ix_files_badge_mismatch", "recorded_start"),
        Index("ix_files_clock_suspect", "recorded_start"),
        # A device's clips in order, for keeping their leads (ledger/leads.py), and the
        # clips that start after their lead ends, with what the gaps report reads of
        # them: revision 0020.
        Index("ix_files_device_line", "device_ref", "recorded_start", "id"),
        Index(
            "ix_files_gap",
            "recorded_start",
            "lead_end",
            "lead_id",
            "device_ref",
            "officer_id",
            "badge_hint",
            "case_number",
        ),
        # The stored files still without a case, with what the untagged report counts
        # of them per officer, device and day: revision 0019. The case and the state
        # (one value each here) too, or SQLite reads the table to test its condition.
        Index(
            "ix_files_untagged",
            "recorded_start",
            "device_ref",
            "officer_id",
            "badge_hint",
            "duration_s",
            "case_number",
            "state",
        ),
        # The sweep's and the listing's due files by state first: purged files keep
        # their expires_at and trashed_at, and years of them must not lengthen the range.
        # Then the station, and the id after the time: each of them asks for one
        # station's files in that order, answered from the index alone (revision 0021).
        Index("ix_files_state_expires", "state", "station", "expires_at", "id"),
        Index("ix_files_state_trashed", "state", "station", "trashed_at", "id"),
        # The few missing or modified files of the weekly summary, not every file.
        Index("ix_files_fixity_status", "fixity_status"),
        # One station's ingests of a week or a day (the summaries): revision 0017.
        Index("ix_files_station_ingested", "station", "ingested_at"),
        # The ingest's "already here by name?" of every file docked: revision 0018. On
        # PostgreSQL a hash index (INDEX_OPTIONS): a btree entry is limited to 2.7 KB,
        # and a recorder's path may be longer (a hostile FAT of deep folders).
        Index("ix_files_device_source", "device_ref", "source_path_raw").ddl_if(
            dialect=ONE_DIALECT_INDEXES["ix_files_device_source"]
        ),
        Index("ix_files_source_path", "source_path_raw").ddl_if(
            dialect=ONE_DIALECT_INDEXES["ix_files_source_path"]
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("dock_sessions.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    device_ref: Mapped[str] = mapped_column(String(128))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    badge_hint: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # video | audio | photo
    case_number: Mapped[str | None] = mapped_column(String(64), index=True)
    case_cause: Mapped[str | None] = mapped_column(Text)
    party: Mapped[str | None] = mapped_column(Text)
    place: Mapped[str | None] = mapped_column(Text)  # 地点: the case's, or tagged by hand
    category: Mapped[str | None] = mapped_column(String(32))
    access_class: Mapped[str] = mapped_column(String(16), default="normal")
    recorded_start: Mapped[datetime]
    recorded_end: Mapped[datetime | None]
    # A video or audio clip's lead (ledger/leads.py, revision 0020): the latest end
    # among its device's earlier clips, and the first clip to end then. NULL for the
    # first clip of a device and for photos. Kept by the ledger's sessions.
    lead_end: Mapped[datetime | None]
    lead_id: Mapped[int | None]
    time_source: Mapped[str] = mapped_column(String(16))  # container | filename | mtime
    duration_s: Mapped[float | None] = mapped_column(Float)
    container: Mapped[str | None] = mapped_column(String(64))
    video_codec: Mapped[str | None] = mapped_column(String(32))
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int | None]
    height: Mapped[int | None]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    blake3: Mapped[str] = mapped_column(String(64))
    # source_path is the name as people read it (UTF-8, else GB18030, else escaped);
    # source_path_raw the exact bytes the recorder's filesystem holds (lossless).
    source_path: Mapped[str] = mapped_column(Text)
    source_path_raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    store_path: Mapped[str] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(index=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    probe_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    probe_error: Mapped[str | None] = mapped_column(Text)
    clock_suspect: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why it is clock-suspect: JSON list of {"check": ..., "evidence": ...} (ingest/clockcheck).
    clock_findings: Mapped[str | None] = mapped_column(Text)
    unregistered: Mapped[bool] = mapped_column(Boolean, default=False)
    # The recorder's evidence named two registered devices: held in quarantine.
    device_conflict: Mapped[bool] = mapped_column(Boolean, default=False)
    # The badge in the file name is not that of the officer assigned at the recording time.
    badge_mismatch: Mapped[bool] = mapped_column(Boolean, default=False)
    # The officer was set by a person (``dockd tag --officer``): re-attribution by the
    # assignments (a late or corrected assignment, a retime) leaves it alone.
    officer_by_hand: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default=FileState.STORED.value, index=True)
    trashed_at: Mapped[datetime | None] = mapped_column(index=True)
    trash_path: Mapped[str | None] = mapped_column(Text)
    purged_at: Mapped[datetime | None]
    # When the retention policy lets this file go. None: not worked out yet (the next
    # retention sweep does); 9999-12-31: waits for something (an open case). Holds are
    # never folded in here: they are checked separately, at the moment of deletion.
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    last_fixity_at: Mapped[datetime | None] = mapped_column(index=True)
    fixity_status: Mapped[str | None] = mapped_column(String(16))  # ok | missing | modified

    device: Mapped[Device | None] = relationship()
    officer: Mapped[Officer | None] = relationship()

    @hybrid_property
    def in_quarantine(self) -> bool:
        """Kept under the quarantine root, not the store: an unregistered recorder's file,
        or one whose recorder named two registered devices (until it is released)."""
        return self.unregistered or self.device_conflict

    @in_quarantine.inplace.expression
    @classmethod
    def _in_quarantine_sql(cls) -> ColumnElement[bool]:
        return or_(cls.unregistered, cls.device_conflict)

    @property
    def flags(self) -> list[str]:
        return flag_names([getattr(self, n) for n in FLAG_COLUMNS], self.size_bytes)


# The flag columns of a recording; each set one is a flag, its name with dashes.
FLAG_COLUMNS = (
    "probe_failed",
    "clock_suspect",
    "unregistered",
    "device_conflict",
    "badge_mismatch",
)


_FLAG_NAMES = tuple(n.replace("_", "-") for n in FLAG_COLUMNS)


def flag_names(values: Sequence[bool], size_bytes: int) -> list[str]:
    """The flags of a recording from the values of its :data:`FLAG_COLUMNS` (in that
    order) and its size: of a :class:`Recording`, or of a row a listing read."""
    out = [name for name, on in zip(_FLAG_NAMES, values, strict=True) if on]
    if size_bytes == 0:
        out.append("empty")
    return out


class Alert(Base):
    """Something a person must look at: a failed file, an unknown device, a bad hash."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    station: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(48), index=True)
    severity: Mapped[str] = mapped_column(String(16))  # a Severity
    subject: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)  # JSON
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    # Repeats of one alert (same kind and group, e.g. one dock session) are folded
    # into this row: how many, and when the last one came.
    group_key: Mapped[str | None] = mapped_column(String(255), index=True)
    occurrences: Mapped[int] = mapped_column(default=1)
    last_at: Mapped[datetime | None]


class AuditEvent(Base):
    """One entry in the hash-chained audit trail: who did what to which subject, when.

    ``hash`` = SHA-256 over the canonical JSON of this event including ``prev_hash``,
    so removing, reordering or editing an event breaks every later link.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject", "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    station: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32), index=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Case(Base):
    """A case from the agency's case system: who, when, why; footage overlapping it is tagged."""

    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_officer_window", "officer_badge", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_number: Mapped[str] = mapped_column(String(64), index=True)
    officer_badge: Mapped[str | None] = mapped_column(String(32))
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    cause: Mapped[str | None] = mapped_column(Text)
    party: Mapped[str | None] = mapped_column(Text)
    place: Mapped[str | None] = mapped_column(Text)  # 地点 (migration 0016)
    category: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None]
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(64))


class Hold(Base):
    """A legal hold (R7): while active, no file it covers may be deleted, whatever retention says.

    Scope is one of: a file, a case, a device over a window, an officer over a window.
    Releasing sets ``released_at``; the row stays for the audit trail.
    """

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    # evidence | complaint | reconsideration | litigation | obstruction | emergency |
    # major_case | other
    reason: Mapped[str] = mapped_column(String(32))
    reason_text: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(16))  # file | case | device | officer
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), index=True)
    case_number: Mapped[str | None] = mapped_column(String(64), index=True)
    device_ref: Mapped[str | None] = mapped_column(String(128), index=True)
    officer_badge: Mapped[str | None] = mapped_column(String(32), index=True)
    window_from: Mapped[datetime | None]
    window_until: Mapped[datetime | None]
    placed_at: Mapped[datetime]
    placed_by: Mapped[str] = mapped_column(String(64))
    released_at: Mapped[datetime | None] = mapped_column(index=True)
    released_by: Mapped[str | None] = mapped_column(String(64))
    release_reason: Mapped[str | None] = mapped_column(Text)


class ArchiveCopy(Base):
    """A verified second copy of a file on an archive target (R8)."""

    __tablename__ = "archive_copies"
    __table_args__ = (
        UniqueConstraint("file_id", "target"),
        Index("ix_archive_copies_copied_at", "copied_at"),  # a week's copies (revision 0010)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    target: Mapped[str] = mapped_column(String(64))
    batch: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)  # relative to the target root
    blake3: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    copied_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]
    # The fixity sweep's last check of this copy on its target (NULL: never since copied).
    fixity_status: Mapped[str | None] = mapped_column(String(16))  # ok | missing | modified
    last_fixity_at: Mapped[datetime | None] = mapped_column(index=True)


class Handover(Base):
    """A quarter's long-kept footage handed over to the archivist as a verified bag (R3;
    004 管理办法 §11, §12(一)), and its receipt."""

    __tablename__ = "handovers"
    __table_args__ = (UniqueConstraint("station", "quarter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    quarter: Mapped[str] = mapped_column(String(8))  # 2026Q4
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    path: Mapped[str] = mapped_column(Text)  # the bag, where it was made
    export_id: Mapped[str] = mapped_column(String(32))
    files: Mapped[int]
    bytes: Mapped[int] = mapped_column(BigInteger)
    # BLAKE3 of the bag's blake3sums.txt and of its tagmanifest-sha256.txt: the receipt
    # checks the bag it is given is this one.
    sums_blake3: Mapped[str] = mapped_column(String(64))
    tagmanifest_blake3: Mapped[str] = mapped_column(String(64))
    made_at: Mapped[datetime]
    made_by: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime | None]
    received_by: Mapped[str | None] = mapped_column(String(64))
    receipt_note: Mapped[str | None] = mapped_column(Text)


class HandoverFile(Base):
    """A file in a hand-over package: its case's footage counts as filed (004 全过程 §25)."""

    __tablename__ = "handover_files"

    handover_id: Mapped[int] = mapped_column(ForeignKey("handovers.id"), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), primary_key=True, index=True)


class SweepRun(Base):
    """One run of a sweep (retention, archive, fixity, report): when, where, what it did."""

    __tablename__ = "sweep_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    station: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed | dry-run
    summary: Mapped[str | None] = mapped_column(Text)  # JSON


class Account(Base):
    """A person (or ``system``, root acting without sudo) who may run dockd (issue 12).

    Known by the OS login (``os_uid`` once known) and, for the web view, by an
    argon2id ``password_hash`` and/or an LDAP ``ldap_dn``. Disabling keeps the row:
    the audit trail names its login.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    os_uid: Mapped[int | None] = mapped_column(unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    ldap_dn: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class AccountRole(Base):
    """One role of one account (words of ``dockd.auth.roles.Role``)."""

    __tablename__ = "account_roles"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class AccessRequest(Base):
    """A request to view, export or release footage outside the unit (issue 12), and the
    grant it becomes once every step of its rule is approved.

    ``steps`` is the rule in force when it was asked (JSON: a list of steps, each a list
    of roles any one of which approves it), so a later change of ``[access]`` does not
    change what an open request needs. ``file_ids`` (JSON list) or ``case_number`` say
    what it covers. ``status`` is pending, granted or denied; a grant is active until
    ``expires_at``.
    """

    __tablename__ = "access_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # view | export | external
    case_number: Mapped[str | None] = mapped_column(String(64), index=True)
    file_ids: Mapped[str | None] = mapped_column(Text)  # JSON list of file ids
    reason: Mapped[str] = mapped_column(Text)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    steps: Mapped[str] = mapped_column(Text)  # JSON list of lists of roles
    station: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(64), index=True)
    requested_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | granted | denied
    decided_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # Asked on behalf of someone outside the station (migration 0015): the party
    # concerned (当事人) or a higher office (上级机关), by name, with the document the
    # request rests on (identity document, official letter); NULL: for the requester.
    on_behalf_kind: Mapped[str | None] = mapped_column(String(16))  # party | office
    on_behalf_name: Mapped[str | None] = mapped_column(Text)
    on_behalf_ref: Mapped[str | None] = mapped_column(Text)


class AccessDecision(Base):
    """One person's approval or denial of an access request (with the roles they held)."""

    __tablename__ = "access_decisions"
    __table_args__ = (UniqueConstraint("request_id", "decided_by"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), index=True)
    decision: Mapped[str] = mapped_column(String(16))  # approve | deny
    decided_by: Mapped[str] = mapped_column(String(64))
    roles: Mapped[str] = mapped_column(Text)  # JSON list: the approver's roles the rule names
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class Explanation(Base):
    """A written explanation of footage that is missing (R12): a gap between the clips of
    a device or an officer, or a recording that was not made at all, with its reason,
    who wrote it (the signed-in account) and who approved it (a leader or legal, never
    the writer). ``kind`` is ``gap`` (``start_at``..``end_at``) or ``non-recording``
    (``start_at`` = ``end_at`` = when it should have been recorded)."""

    __tablename__ = "explanations"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # gap | non-recording
    device_ref: Mapped[str | None] = mapped_column(String(128), index=True)
    officer_badge: Mapped[str | None] = mapped_column(String(32), index=True)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    station: Mapped[str] = mapped_column(String(64))
    written_by: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[datetime]
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None]


class Inspection(Base):
    """One entry of the inspection register 检查台账 (R16): a supervisor's check of the
    recorders' use, on a date, of which devices and files, what was found and what
    follows from it."""

    __tablename__ = "inspections"

    id: Mapped[int] = mapped_column(primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    inspected_on: Mapped[str] = mapped_column(String(10), index=True)  # YYYY-MM-DD, local
    inspector: Mapped[str] = mapped_column(String(64))
    devices: Mapped[str] = mapped_column(Text)  # JSON list of device numbers
    files: Mapped[str] = mapped_column(Text)  # JSON list of file ids
    findings: Mapped[str] = mapped_column(Text)
    follow_up: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]
