"""Clock checks with their evidence.

- ``dock_sessions.clock_offset_s``: the recorder's clock minus the station's, in
  seconds, when the dock could measure it (the recorder's time file).
- ``files.clock_findings``: why a file is clock-suspect, as a JSON list of
  ``{"check": ..., "evidence": ...}``; files flagged before this revision have none.
- ``files.officer_by_hand``: the officer was set by a person (``dockd tag --officer``),
  so the assignments no longer re-attribute the file.
- ``v_files`` (and the views over it) gain ``time_source``, ``badge_mismatch``,
  ``device_conflict``, ``officer_by_hand`` and ``clock_findings`` at the end.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 06:40:00.000000
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _load_0003() -> Any:
    """Revision 0003's module (Alembic loads revisions by path, not as a package)."""
    path = Path(__file__).with_name("0003_auditor_views.py")
    spec = importlib.util.spec_from_file_location("dockd_migration_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The auditor views as revision 0003 made them (one definition of v_files).
_views = _load_0003()
MORE = (
    ",\n               f.time_source, f.badge_mismatch, f.device_conflict,"
    " f.officer_by_hand, f.clock_findings"
)


def _remake_v_files(more: str) -> None:
    """v_files with ``more`` columns, and the views over it (PostgreSQL froze their *)."""
    for name in _views.ON_V_FILES:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DROP VIEW IF EXISTS v_files")
    op.execute(_views.v_files(op.get_bind().dialect.name, more))
    for name, body in _views.ON_V_FILES.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): the auditor views name these tables.
    op.add_column("dock_sessions", sa.Column("clock_offset_s", sa.Float(), nullable=True))
    op.add_column("files", sa.Column("clock_findings", sa.Text(), nullable=True))
    op.add_column(
        "files",
        sa.Column("officer_by_hand", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    _remake_v_files(MORE)


def downgrade() -> None:
    _remake_v_files("")
    for table, column in (
        ("files", "officer_by_hand"),
        ("files", "clock_findings"),
        ("dock_sessions", "clock_offset_s"),
    ):
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column(column)
