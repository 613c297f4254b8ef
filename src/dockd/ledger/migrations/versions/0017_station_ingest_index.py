"""A station's ingests of a period by index (issue 16): the weekly and daily summaries.

- ``ix_files_station_ingested``: ``(station, ingested_at)``. Both summaries count what
  one station ingested in a week or a day. With ``ix_files_ingested_at`` alone the
  database visits every file any station ingested in that period to check its
  station; at ten million files that is most of the weekly summary's time.

Building it reads the files table once: 19 s on a SQLite ledger of ten million files
here. It locks ``files`` against writes while it runs, which stops no dock: every
station refuses a ledger whose schema is not its own, so the ledger is migrated
before its stations' new dockd starts (docs/operations.md, Upgrade).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-26 17:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_files_station_ingested", "files", ["station", "ingested_at"])


def downgrade() -> None:
    op.drop_index("ix_files_station_ingested", table_name="files")
