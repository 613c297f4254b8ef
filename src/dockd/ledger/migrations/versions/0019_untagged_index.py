"""A partial index of the stored files still without a case (issue 16).

``ix_files_untagged``: ``(recorded_start, device_ref, officer_id, badge_hint,
duration_s, case_number, state)`` of the files whose ``case_number`` is NULL and whose state is
``stored``, the predicate written as ``reports.footage.untagged_sql`` writes it
(``(case_number || '') IS NULL``, constants inline) so that both databases see that
the report's condition implies it. The untagged report counts a month's such files
per officer, device and day from this index alone; before, it read the table for
each of them (a month of a ten-million-file ledger: 370,000 rows).

Built like revisions 0017 and 0018: one read of the files table, locked against
writes until the migration commits (a dock waits for it): migrate a large shared
ledger at a quiet hour.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-27 08:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# the case and the state as well (one value each here): else SQLite reads the table to
# test the report's condition
COLUMNS = [
    "recorded_start",
    "device_ref",
    "officer_id",
    "badge_hint",
    "duration_s",
    "case_number",
    "state",
]
WHERE = "(case_number || '') IS NULL AND state = 'stored'"


def upgrade() -> None:
    op.create_index(
        "ix_files_untagged",
        "files",
        COLUMNS,
        sqlite_where=sa.text(WHERE),
        postgresql_where=sa.text(WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_files_untagged", table_name="files")
