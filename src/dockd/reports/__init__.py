"""Compliance reports for auditors and supervisors, read from the ledger alone."""
