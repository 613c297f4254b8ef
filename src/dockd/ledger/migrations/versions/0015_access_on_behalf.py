"""Access asked on behalf of the party concerned or a higher office (issue 15).

004 全过程 §27 and 001 §20: the party concerned (当事人) and higher offices (上级机关)
may ask to view or copy footage. They hold no account; a member of staff asks for
them. ``access_requests`` gains who it is for (``on_behalf_kind``: party or office;
``on_behalf_name``) and the document it rests on (``on_behalf_ref``).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 09:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = (
    ("on_behalf_kind", sa.String(length=16)),
    ("on_behalf_name", sa.Text()),
    ("on_behalf_ref", sa.Text()),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("access_requests", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_requests", recreate="never") as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
