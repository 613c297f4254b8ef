"""An index of each recorder's files by their path on it: the ingest's "already here
by name?" (issue 16).

Every file docked first asks whether the same recorder already gave a file of the
same path and size (``take._present_by_name``: ``device_ref``, ``source_path_raw``,
``size_bytes``). No index began with ``device_ref``, so each file read the whole files
table: nothing on a new ledger, seconds per file on one of ten million files.
``ix_files_device_source`` (SQLite) makes it a search; the recorder and the size are
checked on the few rows found. On PostgreSQL it is ``ix_files_source_path``, a hash
index of the path alone: a btree entry is limited to about 2.7 KB, and a recorder's
path may be longer (a FAT of deep folders) and must still be taken, not fail the
insert.

Built like revision 0017's indexes: one read of the files table, which is locked
against writes until the migration commits (on PostgreSQL a dock waits for it):
migrate a large shared ledger at a quiet hour.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26 21:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    if _postgresql():
        op.create_index(
            "ix_files_source_path", "files", ["source_path_raw"], postgresql_using="hash"
        )
    else:
        op.create_index("ix_files_device_source", "files", ["device_ref", "source_path_raw"])


def downgrade() -> None:
    if _postgresql():
        op.drop_index("ix_files_source_path", table_name="files")
    else:
        op.drop_index("ix_files_device_source", table_name="files")
