"""The station's written duties (issue 15): explanations of missing footage, inspections.

- ``explanations``: a gap or a non-recording explained in writing (R12): device or
  officer, the time span, the reason, who wrote it and who approved it.
- ``inspections``: the inspection register 检查台账 (R16): date, inspector, devices and
  files checked, findings, follow-up.
- Auditor views ``v_explanations`` and ``v_inspections``: what an auditor's read-only
  database role sees of them (``dockd ledger grant-readonly`` grants every ``v_*``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 09:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


V_EXPLANATIONS = """
    CREATE VIEW v_explanations AS
    SELECT e.id AS explanation_id, e.kind, e.device_ref, e.officer_badge, e.start_at,
           e.end_at, e.reason, e.station, e.written_by, e.written_at, e.approved_by,
           e.approved_at
    FROM explanations e
"""
V_INSPECTIONS = """
    CREATE VIEW v_inspections AS
    SELECT i.id AS inspection_id, i.inspected_on, i.inspector, i.devices, i.files,
           i.findings, i.follow_up, i.station, i.recorded_at
    FROM inspections i
"""


def upgrade() -> None:
    op.create_table(
        "explanations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_ref", sa.String(length=128), nullable=True),
        sa.Column("officer_badge", sa.String(length=32), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("written_by", sa.String(length=64), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_explanations")),
    )
    op.create_index(
        op.f("ix_explanations_device_ref"), "explanations", ["device_ref"], unique=False
    )
    op.create_index(
        op.f("ix_explanations_officer_badge"), "explanations", ["officer_badge"], unique=False
    )
    op.create_table(
        "inspections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("inspected_on", sa.String(length=10), nullable=False),
        sa.Column("inspector", sa.String(length=64), nullable=False),
        sa.Column("devices", sa.Text(), nullable=False),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("follow_up", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspections")),
    )
    op.create_index(
        op.f("ix_inspections_inspected_on"), "inspections", ["inspected_on"], unique=False
    )
    op.execute(V_EXPLANATIONS)
    op.execute(V_INSPECTIONS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_inspections")
    op.execute("DROP VIEW IF EXISTS v_explanations")
    op.drop_index(op.f("ix_inspections_inspected_on"), table_name="inspections")
    op.drop_table("inspections")
    op.drop_index(op.f("ix_explanations_officer_badge"), table_name="explanations")
    op.drop_index(op.f("ix_explanations_device_ref"), table_name="explanations")
    op.drop_table("explanations")
