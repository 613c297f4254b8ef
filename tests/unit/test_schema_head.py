"""The schema version dockd needs is the newest migration it ships.

Opening a ledger compares the ledger's version with :data:`dockd.ledger.db.SCHEMA_HEAD`
instead of loading alembic and every migration script; a migration added without
moving that constant would make every dockd refuse the ledgers it has just migrated.
"""

from __future__ import annotations

from dockd.ledger import db


def test_schema_head_is_the_newest_migration() -> None:
    assert db.head_revision() == db.migrations_head()
