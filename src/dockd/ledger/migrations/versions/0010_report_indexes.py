"""Indexes for the ledger at scale (issue 16): reports and the retention sweep.

- ``ix_files_report``: ``(recorded_start, recorded_end, ingested_at, device_ref, kind,
  officer_id, badge_hint, duration_s, clock_suspect)``. The footage reports of a
  period (late, gaps, usage per officer and device, clock) read only these columns:
  a month is one range scan of this index, without a visit to the table per file.
- ``ix_files_badge_mismatch`` and ``ix_files_clock_suspect``: partial indexes on
  ``recorded_start`` of the few flagged files, so their reports skip the period's
  other files.
- ``ix_files_state_expires`` and ``ix_files_state_trashed``: the retention sweep and
  ``dockd sweep upcoming`` ask for stored files by ``expires_at`` and trashed ones by
  ``trashed_at``; purged files keep both times, and years of them would otherwise
  lengthen every range the sweep scans.
- ``ix_files_fixity_status`` and ``ix_archive_copies_copied_at``: the weekly summary's
  missing or modified files and its week of archive copies, without reading every
  file of the station.

Building them reads the files table once; on a ledger of millions of files the
upgrade takes a minute or more (``dockd ledger migrate``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 09:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

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
FLAGS = ("badge_mismatch", "clock_suspect")


def upgrade() -> None:
    op.create_index("ix_files_report", "files", REPORT_COLUMNS)
    for flag in FLAGS:
        op.create_index(
            f"ix_files_{flag}",
            "files",
            ["recorded_start"],
            sqlite_where=sa.text(f"{flag} = 1"),
            postgresql_where=sa.text(flag),
        )
    op.create_index("ix_files_state_expires", "files", ["state", "expires_at"])
    op.create_index("ix_files_state_trashed", "files", ["state", "trashed_at"])
    op.create_index("ix_files_fixity_status", "files", ["fixity_status"])
    op.create_index("ix_archive_copies_copied_at", "archive_copies", ["copied_at"])


def downgrade() -> None:
    op.drop_index("ix_archive_copies_copied_at", table_name="archive_copies")
    op.drop_index("ix_files_fixity_status", table_name="files")
    for name in ("state_trashed", "state_expires", *FLAGS, "report"):
        op.drop_index(f"ix_files_{name}", table_name="files")
