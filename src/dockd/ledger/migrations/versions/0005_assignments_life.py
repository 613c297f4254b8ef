"""Assignments with a life: retired or lost recorders, badge mismatches.

- ``devices.retired_reason``: why ``retired_at`` is set: 'retired' or 'lost'.
- ``files.badge_mismatch``: the badge in the file name is not that of the officer
  assigned to the device at the recording time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 04:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): the auditor views name these tables.
    op.add_column("devices", sa.Column("retired_reason", sa.String(length=16), nullable=True))
    op.add_column(
        "files",
        sa.Column("badge_mismatch", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    for table, column in (("files", "badge_mismatch"), ("devices", "retired_reason")):
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column(column)
