"""Who is acting, and what they may do (issue 12: accounts, roles, approvals).

Reserved room: accounts and roles in the ledger, the caller known from ``SUDO_UID``
(or a password / LDAP for the web view), and one table of permissions per command.
It sits below the stages (dock, ingest, sweeps, evidence, reports) and above the
ledger, so every stage can ask it and it can read accounts from the ledger.
"""
