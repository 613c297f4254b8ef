"""Modules together: a temp SQLite ledger, temp dirs, the CLI in-process, real video."""
