"""Device life (issue 15): a named custodian per recorder and its service record.

- ``devices.custodian``: the login of the account answerable for the recorder
  (定人管理, 004 管理办法 §8); NULL until one is named.
- ``device_events``: maintenance, repair, custodian changes and disposal (报废), each
  with when it happened, a note, an optional reference (work order, vendor ticket),
  and who recorded it when (004 管理办法 §16; 000 §13; 001 §14).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 09:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): the auditor views name the devices table.
    op.add_column("devices", sa.Column("custodian", sa.String(length=64), nullable=True))
    op.create_table(
        "device_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("happened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_events_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_events")),
    )
    op.create_index("ix_device_events_device_when", "device_events", ["device_id", "happened_at"])


def downgrade() -> None:
    op.drop_index("ix_device_events_device_when", table_name="device_events")
    op.drop_table("device_events")
    with op.batch_alter_table("devices", recreate="never") as batch_op:
        batch_op.drop_column("custodian")
