"""Read-only SQL views for auditors who query the ledger with sqlite3 or psql.

The views have the same names and columns on SQLite and PostgreSQL; only two
expressions differ by dialect (hours between two times, a field of the JSON
details), chosen at migration time. Times are UTC (SQLite: text
``YYYY-MM-DD HH:MM:SS.ffffff``; PostgreSQL: timestamptz). docs/auditors.md ("SQL views")
describes each view with example queries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEWS = (
    "v_audit_links",
    "v_clock_suspect_devices",
    "v_active_holds",
    "v_incomplete_sessions",
    "v_access_register",
    "v_file_events",
    "v_deletions",
    "v_late_ingest",
    "v_untagged_files",
    "v_files",
)


def _hours(later: str, earlier: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 3600.0)"
    return f"((julianday({later}) - julianday({earlier})) * 24.0)"


def _json(column: str, key: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"(CAST({column} AS json) ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def _json_true(column: str, key: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"CASE WHEN {_json(column, key, dialect)} = 'true' THEN 1 ELSE 0 END"
    return f"CASE WHEN {_json(column, key, dialect)} THEN 1 ELSE 0 END"


def v_files(dialect: str, more: str = "") -> str:
    """``CREATE VIEW v_files``; ``more``: columns a later revision appends (0006)."""
    delay = _hours("f.ingested_at", "COALESCE(f.recorded_end, f.recorded_start)", dialect)
    return f"""
        CREATE VIEW v_files AS
        SELECT f.id AS file_id, f.station, f.device_ref AS device,
               d.brand AS device_brand, d.model AS device_model,
               COALESCE(o.badge, f.badge_hint) AS officer_badge, o.name AS officer_name,
               f.case_number, f.case_cause, f.party, f.category, f.access_class, f.kind,
               f.recorded_start, f.recorded_end, f.duration_s, f.size_bytes, f.blake3,
               f.store_path, f.source_path, f.ingested_at, {delay} AS ingest_delay_hours,
               f.session_id, f.state, f.trashed_at, f.purged_at, f.expires_at,
               f.clock_suspect, f.probe_failed, f.unregistered,
               f.fixity_status, f.last_fixity_at{more}
        FROM files f
        LEFT JOIN devices d ON d.id = f.device_id
        LEFT JOIN officers o ON o.id = f.officer_id
        """  # noqa: S608 (fixed SQL, dialect-chosen expressions)


# The views over v_files (PostgreSQL expands their * when created: remade with it).
ON_V_FILES = {
    "v_untagged_files": "SELECT * FROM v_files WHERE case_number IS NULL AND state = 'stored'",
    "v_late_ingest": "SELECT * FROM v_files WHERE ingest_delay_hours > 24",
    "v_deletions": "SELECT * FROM v_files WHERE state IN ('trashed', 'purged')",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(v_files(dialect))
    for name, body in ON_V_FILES.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
    op.execute(
        """
        CREATE VIEW v_file_events AS
        SELECT e.id AS event_id, e.at, e.actor, e.action,
               CAST(e.subject_id AS INTEGER) AS file_id, e.details, e.hash
        FROM audit_events e
        WHERE e.subject_type = 'file'
        """
    )
    op.execute(
        f"""
        CREATE VIEW v_access_register AS
        SELECT e.id AS event_id, e.at, e.action,
               CAST(e.subject_id AS INTEGER) AS file_id,
               {_json("e.details", "by", dialect)} AS accessed_by,
               {_json("e.details", "reason", dialect)} AS reason,
               {_json("e.details", "approved_by", dialect)} AS approved_by,
               {_json_true("e.details", "restricted", dialect)} AS restricted,
               {_json("e.details", "case", dialect)} AS case_number,
               {_json("e.details", "export_id", dialect)} AS export_id,
               e.station
        FROM audit_events e
        WHERE e.action IN ('file.view', 'file.export')
        """  # noqa: S608 (fixed SQL, dialect-chosen expressions)
    )
    op.execute(
        """
        CREATE VIEW v_incomplete_sessions AS
        SELECT s.id AS session_id, s.station, s.device_ref AS device, s.source,
               s.started_at, s.ended_at, s.outcome, s.files_seen, s.files_stored,
               s.files_present, s.files_failed, s.files_refused, s.quarantined, s.notes,
               (SELECT COUNT(*) FROM session_failures sf WHERE sf.session_id = s.id)
                   AS failure_rows
        FROM dock_sessions s
        WHERE s.outcome <> 'complete'
        """
    )
    op.execute(
        """
        CREATE VIEW v_active_holds AS
        SELECT h.id AS hold_id, h.reason, h.reason_text, h.scope, h.file_id, h.case_number,
               h.device_ref, h.officer_badge, h.window_from, h.window_until,
               h.placed_at, h.placed_by
        FROM holds h
        WHERE h.released_at IS NULL
        """
    )
    op.execute(
        """
        CREATE VIEW v_clock_suspect_devices AS
        SELECT f.device_ref AS device, COUNT(*) AS suspect_files,
               MIN(f.recorded_start) AS earliest_recorded_start,
               MAX(f.recorded_start) AS latest_recorded_start,
               MAX(f.ingested_at) AS last_ingested_at
        FROM files f
        WHERE f.clock_suspect
        GROUP BY f.device_ref
        """
    )
    op.execute(
        """
        CREATE VIEW v_audit_links AS
        SELECT e.id AS event_id, e.at, e.actor, e.action, e.subject_type, e.subject_id,
               e.prev_hash, e.hash, p.id AS prev_event_id,
               CASE
                 WHEN p.id IS NULL AND e.prev_hash =
                   '0000000000000000000000000000000000000000000000000000000000000000' THEN 1
                 WHEN p.hash = e.prev_hash THEN 1
                 ELSE 0
               END AS link_ok
        FROM audit_events e
        LEFT JOIN audit_events p ON p.id = e.id - 1
        """
    )


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
