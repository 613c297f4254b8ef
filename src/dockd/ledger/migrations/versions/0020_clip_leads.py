"""Each clip's lead kept in its row, for the gaps report at ten million files (issue 16).

- ``files.lead_end``, ``files.lead_id``: the latest end among the device's earlier
  video and audio clips, and the first clip to end then (``dockd.ledger.leads``).
  The gaps report (R12) read a month's breaks with a window over every clip of the
  month (about 400,000 at ten million files: 1.7 s on SQLite, 1.1 s on PostgreSQL);
  a break can only come before a clip that starts after its lead ends, so it now
  reads those clips alone.
- ``ix_files_device_line``: ``(device_ref, recorded_start, id)`` of the video and
  audio clips (partial), a device's clips in order, for keeping the leads as clips
  arrive or are corrected. Partial also so that no other query takes it: SQLite chose
  it, as a whole index, for the usage and clock reports' grouping by device and read
  the table for every row (usage-device at 10M files 0.29 -> 0.63 s).
- ``ix_files_gap``: ``(recorded_start, lead_end, lead_id, device_ref, officer_id,
  badge_hint, case_number)`` of the clips that start after their lead ends (partial):
  all the report reads of them.

The leads of the clips already in the ledger are computed here, a device at a time
(every clip read once, in order, and its row written): on a ledger of millions of
files this takes minutes, with the files table locked against writes until the
migration commits (a dock waits for it): migrate a large ledger at a quiet hour.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dockd.ledger import leads

# what the gaps report reads of a break, so that it reads this index alone
GAP_COLUMNS = [
    "recorded_start",
    "lead_end",
    "lead_id",
    "device_ref",
    "officer_id",
    "badge_hint",
    "case_number",
]

CLIPS = "kind IN ('video', 'audio')"  # as leads.is_clip writes it

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("files", sa.Column("lead_end", sa.DateTime(timezone=True), nullable=True))
    op.add_column("files", sa.Column("lead_id", sa.Integer(), nullable=True))
    op.create_index(
        "ix_files_device_line",
        "files",
        ["device_ref", "recorded_start", "id"],
        sqlite_where=sa.text(CLIPS),
        postgresql_where=sa.text(CLIPS),
    )
    leads.relead_all(op.get_bind())
    op.create_index(
        "ix_files_gap",
        "files",
        GAP_COLUMNS,
        sqlite_where=sa.text("lead_end < recorded_start"),
        postgresql_where=sa.text("lead_end < recorded_start"),
    )


def downgrade() -> None:
    op.drop_index("ix_files_gap", table_name="files")
    op.drop_index("ix_files_device_line", table_name="files")
    with op.batch_alter_table("files", recreate="never") as batch:
        batch.drop_column("lead_id")
        batch.drop_column("lead_end")
