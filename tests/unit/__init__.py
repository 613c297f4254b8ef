"""Tests of one module at a time: pure functions, a temp SQLite ledger at most."""
