"""Indexes for the ledger at ten million files (issue 16): the summaries, and the
reports' covering index on PostgreSQL.

- ``ix_files_station_ingested``: ``(station, ingested_at)``. The weekly and daily
  summaries count what one station ingested in a week or a day. With
  ``ix_files_ingested_at`` alone the database visited every file any station
  ingested in that period to check its station (SQLite, 10M files: weekly summary
  747 -> 141 ms).
- ``ix_files_report`` on PostgreSQL also carries ``id`` (``INCLUDE``): the late and
  gaps reports pick a month's files from this index and then fetch the few they
  list by id. SQLite's indexes carry the row id already; PostgreSQL's did not, so it
  read the table for each of the month's files instead (1M files: late 218 -> 36 ms,
  gaps 1.24 -> 0.85 s).

Each index built reads the files table once: on SQLite (one index) 19 s for ten
million files here; on PostgreSQL (two) not timed, but the bench's 10M fill builds
all 18 of the table's indexes in about 150 s. Until the migration commits, ``files``
is locked: on SQLite against writes, on PostgreSQL (the rebuilt index) against reads
and writes too. A dock waits for the lock rather than failing, so with several
stations on one PostgreSQL ledger, migrate at a quiet hour or stop their daemons.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-26 17:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# as revision 0010 made it
REPORT_COLUMNS = [
    "recorded_start",
    "recorded_end",
    "ingested_at",
    "device_ref",
    "kind",
    "officer_id",
    "badge_hint",
    "duration_s",
    "clock_suspect",
]


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    op.create_index("ix_files_station_ingested", "files", ["station", "ingested_at"])
    if _postgresql():
        op.drop_index("ix_files_report", table_name="files")
        op.create_index("ix_files_report", "files", REPORT_COLUMNS, postgresql_include=["id"])


def downgrade() -> None:
    if _postgresql():
        op.drop_index("ix_files_report", table_name="files")
        op.create_index("ix_files_report", "files", REPORT_COLUMNS)
    op.drop_index("ix_files_station_ingested", table_name="files")
