"""Retention, holds, cases, archive copies and sweep runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:32:11.867341
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("officer_badge", sa.String(length=32), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("party", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_case_number"), ["case_number"], unique=False)
        batch_op.create_index(
            "ix_cases_officer_window", ["officer_badge", "starts_at"], unique=False
        )

    op.create_table(
        "sweep_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep_runs")),
    )
    with op.batch_alter_table("sweep_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweep_runs_kind"), ["kind"], unique=False)

    op.create_table(
        "archive_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("batch", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("blake3", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("copied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_archive_copies_file_id_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_copies")),
        sa.UniqueConstraint("file_id", "target", name=op.f("uq_archive_copies_file_id_target")),
    )
    with op.batch_alter_table("archive_copies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_archive_copies_batch"), ["batch"], unique=False)
        batch_op.create_index(batch_op.f("ix_archive_copies_file_id"), ["file_id"], unique=False)

    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("case_number", sa.String(length=64), nullable=True),
        sa.Column("device_ref", sa.String(length=128), nullable=True),
        sa.Column("officer_badge", sa.String(length=32), nullable=True),
        sa.Column("window_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed_by", sa.String(length=64), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=64), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name=op.f("fk_holds_file_id_files")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_holds_case_number"), ["case_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_holds_device_ref"), ["device_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_holds_file_id"), ["file_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_holds_officer_badge"), ["officer_badge"], unique=False)
        batch_op.create_index(batch_op.f("ix_holds_released_at"), ["released_at"], unique=False)

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("trash_path", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_fixity_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("fixity_status", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_files_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_files_last_fixity_at"), ["last_fixity_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_files_trashed_at"), ["trashed_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_trashed_at"))
        batch_op.drop_index(batch_op.f("ix_files_last_fixity_at"))
        batch_op.drop_index(batch_op.f("ix_files_expires_at"))
        batch_op.drop_column("fixity_status")
        batch_op.drop_column("last_fixity_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("purged_at")
        batch_op.drop_column("trash_path")
        batch_op.drop_column("trashed_at")

    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_holds_released_at"))
        batch_op.drop_index(batch_op.f("ix_holds_officer_badge"))
        batch_op.drop_index(batch_op.f("ix_holds_file_id"))
        batch_op.drop_index(batch_op.f("ix_holds_device_ref"))
        batch_op.drop_index(batch_op.f("ix_holds_case_number"))

    op.drop_table("holds")
    with op.batch_alter_table("archive_copies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_archive_copies_file_id"))
        batch_op.drop_index(batch_op.f("ix_archive_copies_batch"))

    op.drop_table("archive_copies")
    with op.batch_alter_table("sweep_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweep_runs_kind"))

    op.drop_table("sweep_runs")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_officer_window")
        batch_op.drop_index(batch_op.f("ix_cases_case_number"))

    op.drop_table("cases")
