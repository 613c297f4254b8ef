"""Access requests and grants (issue 12): viewing and exporting footage need approvals.

- ``access_requests``: who asked (the signed-in account), what (a case or file ids),
  which kind (view, export, external), why, the rule's steps in force when asked, and
  what became of it (pending, granted until ``expires_at``, denied).
- ``access_decisions``: each approval or denial, by whom and with which roles; one per
  person and request, so two approvals always come from two people.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 07:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=True),
        sa.Column("file_ids", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_requests")),
    )
    op.create_index(
        op.f("ix_access_requests_case_number"), "access_requests", ["case_number"], unique=False
    )
    op.create_index(
        op.f("ix_access_requests_requested_by"), "access_requests", ["requested_by"], unique=False
    )
    op.create_index(op.f("ix_access_requests_status"), "access_requests", ["status"], unique=False)
    op.create_table(
        "access_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access_requests.id"],
            name=op.f("fk_access_decisions_request_id_access_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_decisions")),
        sa.UniqueConstraint(
            "request_id", "decided_by", name=op.f("uq_access_decisions_request_id_decided_by")
        ),
    )
    op.create_index(
        op.f("ix_access_decisions_request_id"), "access_decisions", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_access_decisions_request_id"), table_name="access_decisions")
    op.drop_table("access_decisions")
    op.drop_index(op.f("ix_access_requests_status"), table_name="access_requests")
    op.drop_index(op.f("ix_access_requests_requested_by"), table_name="access_requests")
    op.drop_index(op.f("ix_access_requests_case_number"), table_name="access_requests")
    op.drop_table("access_requests")
