"""Access requests and grants (issue 12): viewing and exporting footage need approvals.

- ``access_requests``: who asked (the signed-in account), what (a case or file ids),
  which kind (view, export, external), why, the rule's steps in force when asked, and
  what became of it (pending, granted until ``expires_at``, denied).
- ``access_decisions``: each approval or denial, by whom and with which roles; one per
  person and request, so two approvals always come from two people.
- Auditor views: ``v_access_register`` gains ``grant_id`` (the grant each view and
  export used; a column at the end, so PostgreSQL replaces the view in place and grants
  on it survive), and ``v_access_requests`` / ``v_access_decisions`` show the requests
  and their decisions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 07:10:00.000000
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _load_0003() -> Any:
    """Revision 0003's module (Alembic loads revisions by path, not as a package)."""
    path = Path(__file__).with_name("0003_auditor_views.py")
    spec = importlib.util.spec_from_file_location("dockd_migration_0003_for_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _access_register(dialect: str, *, grant: bool) -> str:
    """``v_access_register`` as 0003 made it, with ``grant_id`` at the end if ``grant``."""
    views = _load_0003()
    more = ""
    if grant:
        grant_of = views._json("e.details", "grant", dialect)
        more = f",\n               CAST({grant_of} AS INTEGER) AS grant_id"
    return f"""
        CREATE VIEW v_access_register AS
        SELECT e.id AS event_id, e.at, e.action,
               CAST(e.subject_id AS INTEGER) AS file_id,
               {views._json("e.details", "by", dialect)} AS accessed_by,
               {views._json("e.details", "reason", dialect)} AS reason,
               {views._json("e.details", "approved_by", dialect)} AS approved_by,
               {views._json_true("e.details", "restricted", dialect)} AS restricted,
               {views._json("e.details", "case", dialect)} AS case_number,
               {views._json("e.details", "export_id", dialect)} AS export_id,
               e.station{more}
        FROM audit_events e
        WHERE e.action IN ('file.view', 'file.export')
        """  # noqa: S608 (fixed SQL, dialect-chosen expressions)


V_ACCESS_REQUESTS = """
    CREATE VIEW v_access_requests AS
    SELECT r.id AS request_id, r.kind, r.case_number, r.file_ids, r.reason, r.restricted,
           r.steps, r.station, r.requested_by, r.requested_at, r.status, r.decided_at,
           r.expires_at
    FROM access_requests r
"""
V_ACCESS_DECISIONS = """
    CREATE VIEW v_access_decisions AS
    SELECT d.id AS decision_id, d.request_id, d.decision, d.decided_by, d.roles, d.reason, d.at
    FROM access_decisions d
"""


def _remake_register(*, grant: bool) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql" and grant:
        body = _access_register(dialect, grant=True)
        op.execute(body.replace("CREATE VIEW", "CREATE OR REPLACE VIEW"))
        return
    op.execute("DROP VIEW IF EXISTS v_access_register")
    op.execute(_access_register(dialect, grant=grant))


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
    op.execute(V_ACCESS_REQUESTS)
    op.execute(V_ACCESS_DECISIONS)
    _remake_register(grant=True)


def downgrade() -> None:
    _remake_register(grant=False)
    op.execute("DROP VIEW IF EXISTS v_access_decisions")
    op.execute("DROP VIEW IF EXISTS v_access_requests")
    op.drop_index(op.f("ix_access_decisions_request_id"), table_name="access_decisions")
    op.drop_table("access_decisions")
    op.drop_index(op.f("ix_access_requests_status"), table_name="access_requests")
    op.drop_index(op.f("ix_access_requests_requested_by"), table_name="access_requests")
    op.drop_index(op.f("ix_access_requests_case_number"), table_name="access_requests")
    op.drop_table("access_requests")
