"""Hostile recorders and hard stops: raw file names, device conflicts, session owners,
folded alerts.

- ``files.source_path_raw``: the exact bytes of the name on the recorder (a GBK name
  is not UTF-8); existing rows get the UTF-8 bytes of ``source_path``.
- ``files.device_conflict``: the recorder's evidence named two registered devices.
- ``dock_sessions.host`` / ``pid`` / ``boot_id``: who runs a session, so a session
  whose process is gone can be closed by the next run.
- ``alerts.group_key`` / ``occurrences`` / ``last_at``: repeats of one alert in one
  dock session are folded into one row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 01:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite supports it, and a table copy would break
    # the auditor views that name these tables.
    op.add_column("files", sa.Column("source_path_raw", sa.LargeBinary(), nullable=True))
    op.add_column(
        "files",
        sa.Column("device_conflict", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE files SET source_path_raw = convert_to(source_path, 'UTF8')")
    else:
        op.execute("UPDATE files SET source_path_raw = CAST(source_path AS BLOB)")
    op.add_column("dock_sessions", sa.Column("host", sa.String(length=255), nullable=True))
    op.add_column("dock_sessions", sa.Column("pid", sa.Integer(), nullable=True))
    op.add_column("dock_sessions", sa.Column("boot_id", sa.String(length=64), nullable=True))
    op.add_column("alerts", sa.Column("group_key", sa.String(length=255), nullable=True))
    op.add_column(
        "alerts", sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1")
    )
    op.add_column("alerts", sa.Column("last_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_alerts_group_key"), "alerts", ["group_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alerts_group_key"), table_name="alerts")
    for table, column in (
        ("alerts", "last_at"),
        ("alerts", "occurrences"),
        ("alerts", "group_key"),
        ("dock_sessions", "boot_id"),
        ("dock_sessions", "pid"),
        ("dock_sessions", "host"),
        ("files", "device_conflict"),
        ("files", "source_path_raw"),
    ):
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column(column)
