"""Quarterly hand-overs (issue 15, R3): the package made for the archivist and its receipt.

- ``handovers``: one row per station and quarter: the period, where the bag was
  made, its export id, file count and bytes, the BLAKE3 of its ``blake3sums.txt``
  and ``tagmanifest-sha256.txt`` (so a receipt can tell the bag it checks is this
  one), who made it when, and who received it when, with a note.
- ``handover_files``: which files each package holds (a closed case's footage in a
  hand-over counts as filed).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("quarter", sa.String(length=8), nullable=False),
        sa.Column("period_start", when, nullable=False),
        sa.Column("period_end", when, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("export_id", sa.String(length=32), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sums_blake3", sa.String(length=64), nullable=False),
        sa.Column("tagmanifest_blake3", sa.String(length=64), nullable=False),
        sa.Column("made_at", when, nullable=False),
        sa.Column("made_by", sa.String(length=64), nullable=False),
        sa.Column("received_at", when, nullable=True),
        sa.Column("received_by", sa.String(length=64), nullable=True),
        sa.Column("receipt_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handovers")),
        sa.UniqueConstraint("station", "quarter", name=op.f("uq_handovers_station_quarter")),
    )
    op.create_table(
        "handover_files",
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
            name=op.f("fk_handover_files_handover_id_handovers"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_handover_files_file_id_files")
        ),
        sa.PrimaryKeyConstraint("handover_id", "file_id", name=op.f("pk_handover_files")),
    )
    op.create_index(op.f("ix_handover_files_file_id"), "handover_files", ["file_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_handover_files_file_id"), table_name="handover_files")
    op.drop_table("handover_files")
    op.drop_table("handovers")
