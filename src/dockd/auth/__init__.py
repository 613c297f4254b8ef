"""Who is acting, and what they may do (issue 12: accounts, roles, approvals).

``roles`` names the roles and the :class:`~dockd.auth.roles.Actor` (an account with its
roles); ``accounts`` keeps accounts in the ledger (every change an audit event);
``actor`` resolves who runs dockd from the OS (``SUDO_UID``'s account under sudo, the
``system`` account for root without sudo), never from typed text; ``permissions`` is
the one table of which roles may run each command, and ``require``; ``passwords``
hashes the web view's passwords (argon2id). It sits below the stages and above the
ledger, so every stage can ask it and it can read accounts from the ledger.
"""
