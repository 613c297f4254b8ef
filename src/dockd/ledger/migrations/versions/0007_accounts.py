"""Accounts and roles (issue 12): who acts is known, never typed.

- ``accounts``: a login (the OS login, ``os_uid`` once known), a name, an optional
  argon2id ``password_hash`` and ``ldap_dn`` for the web view, when it was disabled
  and why, when it was made and by whom.
- ``account_roles``: the roles of each account (officer, device-manager, custodian,
  legal, leader, auditor, admin).
- The ``system`` account (role admin) is seeded here: root without sudo acts as it
  (automation: the daemon, cron, the first ``dockd users add``), so it must exist
  before anything can be asked of it, including on a read-only path (``dockd whoami``,
  a query under a read-only database role) that could not create it lazily.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 07:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SYSTEM_LOGIN = "system"


def upgrade() -> None:
    accounts = op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("os_uid", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("ldap_dn", sa.Text(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("login", name=op.f("uq_accounts_login")),
        sa.UniqueConstraint("os_uid", name=op.f("uq_accounts_os_uid")),
    )
    op.create_table(
        "account_roles",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_roles_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "role", name=op.f("pk_account_roles")),
    )
    assert accounts is not None
    # Naive UTC on SQLite, as the models store it; aware on PostgreSQL.
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(
        accounts,
        [
            {
                "login": SYSTEM_LOGIN,
                "name": "dockd itself (root without sudo)",
                "os_uid": 0,
                "created_at": now,
                "created_by": "migration 0007",
            }
        ],
    )
    # No explicit id: PostgreSQL's sequence would not know it and hand it out again.
    op.execute(
        "INSERT INTO account_roles (account_id, role) "
        "SELECT id, 'admin' FROM accounts WHERE login = 'system'"
    )


def downgrade() -> None:
    op.drop_table("account_roles")
    op.drop_table("accounts")
