"""Initial ledger schema: devices, officers, assignments, sessions, files, alerts, audit.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 04:26:08.720825
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_alerts_kind"), ["kind"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(
            "ix_audit_events_subject", ["subject_type", "subject_id"], unique=False
        )

    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=True),
        sa.Column("fs_uuid", sa.String(length=64), nullable=True),
        sa.Column("fs_label", sa.String(length=64), nullable=True),
        sa.Column("brand", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("unit", sa.String(length=128), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("number", name=op.f("uq_devices_number")),
        sa.UniqueConstraint("serial", name=op.f("uq_devices_serial")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_fs_label"), ["fs_label"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_fs_uuid"), ["fs_uuid"], unique=False)

    op.create_table(
        "officers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("badge", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("unit", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_officers")),
        sa.UniqueConstraint("badge", name=op.f("uq_officers_badge")),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_assignments_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_assignments_officer_id_officers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assignments_device_from", ["device_id", "valid_from"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assignments_officer_id"), ["officer_id"], unique=False)

    op.create_table(
        "dock_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("device_ref", sa.String(length=128), nullable=True),
        sa.Column("identified_by", sa.String(length=32), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("files_seen", sa.Integer(), nullable=False),
        sa.Column("files_stored", sa.Integer(), nullable=False),
        sa.Column("files_present", sa.Integer(), nullable=False),
        sa.Column("files_failed", sa.Integer(), nullable=False),
        sa.Column("files_refused", sa.Integer(), nullable=False),
        sa.Column("bytes_copied", sa.BigInteger(), nullable=False),
        sa.Column("fs_capacity_bytes", sa.BigInteger(), nullable=True),
        sa.Column("fs_free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("quarantined", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_dock_sessions_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dock_sessions")),
    )
    with op.batch_alter_table("dock_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dock_sessions_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_dock_sessions_started_at"), ["started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_dock_sessions_station"), ["station"], unique=False)

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("device_ref", sa.String(length=128), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=True),
        sa.Column("badge_hint", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=True),
        sa.Column("case_cause", sa.Text(), nullable=True),
        sa.Column("party", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("access_class", sa.String(length=16), nullable=False),
        sa.Column("recorded_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("time_source", sa.String(length=16), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("container", sa.String(length=64), nullable=True),
        sa.Column("video_codec", sa.String(length=32), nullable=True),
        sa.Column("audio_codec", sa.String(length=32), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("blake3", sa.String(length=64), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("store_path", sa.Text(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("probe_failed", sa.Boolean(), nullable=False),
        sa.Column("probe_error", sa.Text(), nullable=True),
        sa.Column("clock_suspect", sa.Boolean(), nullable=False),
        sa.Column("unregistered", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_files_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_files_officer_id_officers")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["dock_sessions.id"], name=op.f("fk_files_session_id_dock_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("station", "store_path", name=op.f("uq_files_station_store_path")),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index("ix_files_blake3", ["blake3"], unique=False)
        batch_op.create_index(batch_op.f("ix_files_case_number"), ["case_number"], unique=False)
        batch_op.create_index(
            "ix_files_device_recorded", ["device_id", "recorded_start"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_files_ingested_at"), ["ingested_at"], unique=False)
        batch_op.create_index(
            "ix_files_officer_recorded", ["officer_id", "recorded_start"], unique=False
        )
        batch_op.create_index("ix_files_recorded", ["recorded_start"], unique=False)
        batch_op.create_index(batch_op.f("ix_files_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_files_state"), ["state"], unique=False)

    op.create_table(
        "session_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("disposition", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["dock_sessions.id"],
            name=op.f("fk_session_failures_session_id_dock_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_failures")),
    )
    with op.batch_alter_table("session_failures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_failures_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("session_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_failures_session_id"))

    op.drop_table("session_failures")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_state"))
        batch_op.drop_index(batch_op.f("ix_files_session_id"))
        batch_op.drop_index("ix_files_recorded")
        batch_op.drop_index("ix_files_officer_recorded")
        batch_op.drop_index(batch_op.f("ix_files_ingested_at"))
        batch_op.drop_index("ix_files_device_recorded")
        batch_op.drop_index(batch_op.f("ix_files_case_number"))
        batch_op.drop_index("ix_files_blake3")

    op.drop_table("files")
    with op.batch_alter_table("dock_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dock_sessions_station"))
        batch_op.drop_index(batch_op.f("ix_dock_sessions_started_at"))
        batch_op.drop_index(batch_op.f("ix_dock_sessions_device_id"))

    op.drop_table("dock_sessions")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignments_officer_id"))
        batch_op.drop_index("ix_assignments_device_from")

    op.drop_table("assignments")
    op.drop_table("officers")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_fs_uuid"))
        batch_op.drop_index(batch_op.f("ix_devices_fs_label"))

    op.drop_table("devices")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_subject")
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_kind"))
        batch_op.drop_index(batch_op.f("ix_alerts_at"))

    op.drop_table("alerts")
