"""Local-time columns in the auditor views, from the station's zone kept in the ledger.

- ``station_zones``: which IANA zone each station's files are read in; dockd writes
  it when a command opens the ledger with its config (:mod:`dockd.ledger.zone`).
- ``station_zone_offsets``: a zone's UTC offset between its transitions, 1970-2100,
  for SQLite, which has no time zone database (PostgreSQL uses ``AT TIME ZONE``).
- ``v_files`` (and the views over it) gain ``recorded_start_local``,
  ``recorded_end_local`` and ``ingested_at_local`` at the end: station time, without
  an offset (SQLite: text ``YYYY-MM-DD HH:MM:SS``; PostgreSQL: timestamp). A file of
  a station with no zone written takes the zone written last.
- ``v_station_zones``: the zones, for a read-only PostgreSQL role (views only).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 09:20:00.000000
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _load_0006() -> Any:
    """Revision 0006's module: v_files as 0003 defines it, with 0006's columns, remade
    with the views over it (Alembic loads revisions by path, not as a package)."""
    path = Path(__file__).with_name("0006_clock_evidence.py")
    spec = importlib.util.spec_from_file_location("dockd_migration_0006", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_0006 = _load_0006()

# The file's station's zone, else the zone written last (a file brought from a
# station that never opened this ledger).
_ZONE = (
    "COALESCE((SELECT z.zone FROM station_zones z WHERE z.station = f.station),"
    " (SELECT z.zone FROM station_zones z ORDER BY z.updated_at DESC LIMIT 1))"
)


def local(column: str, dialect: str) -> str:
    """``column`` (a UTC time of ``files f``) in its station's time, without an offset."""
    if dialect == "postgresql":
        return f"({column} AT TIME ZONE {_ZONE})"
    offset = (
        "(SELECT printf('%+d seconds', o.offset_s) FROM station_zone_offsets o"  # noqa: S608
        f" WHERE o.zone = {_ZONE} AND o.utc_from <= {column} AND {column} < o.utc_until)"
    )  # fixed SQL: the migration's own column names
    return f"datetime({column}, {offset})"


LOCAL_COLUMNS = (
    ("f.recorded_start", "recorded_start_local"),
    ("f.recorded_end", "recorded_end_local"),
    ("f.ingested_at", "ingested_at_local"),
)


def more(dialect: str) -> str:
    """0006's columns, then the local times."""
    return str(_0006.MORE) + "".join(
        f",\n               {local(col, dialect)} AS {name}" for col, name in LOCAL_COLUMNS
    )


def upgrade() -> None:
    op.create_table(
        "station_zones",
        sa.Column("station", sa.String(64), primary_key=True),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.String(19), nullable=False),  # UTC, YYYY-MM-DD HH:MM:SS
    )
    op.create_table(
        "station_zone_offsets",
        sa.Column("zone", sa.String(64), primary_key=True),
        sa.Column("utc_from", sa.String(19), primary_key=True),
        sa.Column("utc_until", sa.String(19), nullable=False),
        sa.Column("offset_s", sa.Integer(), nullable=False),
    )
    _0006._remake_v_files(more(op.get_bind().dialect.name))
    op.execute("CREATE VIEW v_station_zones AS SELECT station, zone, updated_at FROM station_zones")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_station_zones")
    # Dropping columns: 0006's helper drops and remakes the views (no in-place replace).
    dialect = op.get_bind().dialect.name
    for name in _0006._views.ON_V_FILES:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DROP VIEW IF EXISTS v_files")
    op.execute(_0006._views.v_files(dialect, _0006.MORE))
    for name, body in _0006._views.ON_V_FILES.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
    op.drop_table("station_zone_offsets")
    op.drop_table("station_zones")
