"""Clock checks with their evidence.

- ``dock_sessions.clock_offset_s``: the recorder's clock minus the station's, in
  seconds, when the dock could measure it (the recorder's time file).
- ``files.clock_findings``: why a file is clock-suspect, as a JSON list of
  ``{"check": ..., "evidence": ...}``; files flagged before this revision have none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 06:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): the auditor views name these tables.
    op.add_column("dock_sessions", sa.Column("clock_offset_s", sa.Float(), nullable=True))
    op.add_column("files", sa.Column("clock_findings", sa.Text(), nullable=True))


def downgrade() -> None:
    for table, column in (("files", "clock_findings"), ("dock_sessions", "clock_offset_s")):
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column(column)
