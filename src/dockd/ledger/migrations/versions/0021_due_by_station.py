"""The retention sweep's and the listing's due files by station, and in order (issue 16).

``ix_files_state_expires`` was ``(state, expires_at)`` and ``ix_files_state_trashed``
``(state, trashed_at)``; both are now ``(state, station, <time>, id)``. Every question
asked of them names the station, and asks for files in the order of their time, then
their id: the sweep's batches, ``dockd sweep upcoming`` and its pages, ``dockd trash
list``. With the station and the id in the index they are answered from the index
alone, on a ledger shared by many stations too.

PostgreSQL's planner needed it most: it multiplies the selectivity of ``state =
'stored'`` by that of ``expires_at < now``, and the purged files (two thirds of a
ten-million-file ledger) keep their old expiries, so it expected a third of the table
where there were none, and read the whole table (2.3 s for one page of the upcoming
deletions). An index-only scan costs it little whatever it expects.

Built as revision 0019: one read of the files table each, locked against writes until
the migration commits (a dock waits for it): migrate a large ledger at a quiet hour.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-27 11:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

INDEXES = {"ix_files_state_expires": "expires_at", "ix_files_state_trashed": "trashed_at"}


def upgrade() -> None:
    for name, column in INDEXES.items():
        op.drop_index(name, table_name="files")
        op.create_index(name, "files", ["state", "station", column, "id"])


def downgrade() -> None:
    for name, column in INDEXES.items():
        op.drop_index(name, table_name="files")
        op.create_index(name, "files", ["state", column])
