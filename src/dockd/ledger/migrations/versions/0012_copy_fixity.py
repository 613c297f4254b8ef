"""Archive copies have their own fixity (issue 15, "two copies that guard each other").

``archive_copies`` gains ``fixity_status`` (ok | missing | modified; NULL: never
checked since it was copied) and ``last_fixity_at``, which the fixity sweep keeps for
each copy on its target's own cycle, as ``files`` keeps them for the store.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 09:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive_copies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fixity_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("last_fixity_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_archive_copies_last_fixity_at"), ["last_fixity_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("archive_copies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_archive_copies_last_fixity_at"))
        batch_op.drop_column("last_fixity_at")
        batch_op.drop_column("fixity_status")
