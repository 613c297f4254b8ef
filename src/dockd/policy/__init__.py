"""Retention and holds.

``retention`` and ``holds`` are pure decisions, functions of values with no I/O (an
import-linter contract keeps the ledger and SQLAlchemy out of them). ``adapter`` is
their ledger adapter: the only module here that reads rows, writes them and records
audit events, by calling the pure functions.
"""
