"""The place of a recording (地点) for the recording form (issue 15; 004 管理办法 §12(二)).

- ``cases.place``: where the case happened, from the case system's export.
- ``files.place``: where a recording was made: its case's place when tagged from the
  case, or set by hand (``dockd tag --place``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 10:35:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): the auditor views name these tables.
    for table in ("cases", "files"):
        op.add_column(table, sa.Column("place", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ("files", "cases"):
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column("place")
