"""Alembic migrations of the ledger schema (run by ``dockd ledger migrate``)."""
