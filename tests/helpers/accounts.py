"""People in tests: accounts with roles, and dockd run in-process as one of them.

dockd acts as the account of ``SUDO_UID`` when root runs it through sudo (see
``dockd.auth.actor``). In-process, a test is whoever runs pytest; :func:`act_as` makes
the command see what sudo would give it (uid 0, ``SUDO_UID`` of the account), so the
real resolution runs (account by uid, disabled, roles, permission table), not a
stand-in. Tests with real OS accounts (``useradd``, ``sudo``) are in
tests/integration/test_accounts.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dockd.auth import accounts
from dockd.auth.roles import Role
from dockd.config import load_config
from dockd.ledger.db import Ledger, open_ledger

# Uids no OS account of a test machine has: the accounts are known by uid alone.
_UIDS = itertools.count(61000)


def add_account(
    ledger: Ledger,
    login: str,
    *roles: Role | str,
    station: str = "st-test",
    at: datetime | None = None,
) -> int:
    """An account with ``roles``, added by ``system`` as root would; returns its uid."""
    uid = next(_UIDS)
    stamp = accounts.Stamp(at or datetime.now(UTC), station, "system")
    with ledger.session() as s:
        accounts.add_account(
            s,
            stamp,
            login=login,
            name=login.replace("-", " ").title(),
            roles=tuple(Role(r) for r in roles),
            os_uid=uid,
        )
    return uid


def act_as(monkeypatch: pytest.MonkeyPatch, uid: int | None) -> None:
    """From now on, in-process ``dockd`` runs as ``sudo dockd`` by ``uid`` would (None:
    as root without sudo, the ``system`` account)."""

    def identity(env: Any = None) -> dict[str, Any]:
        sudo = {} if uid is None else {"SUDO_UID": str(uid)}
        return {"uid": 0, "sudo_uid": uid, "env": sudo}

    monkeypatch.setattr("dockd.cli.common.process_identity", identity)


def act_as_new(
    monkeypatch: pytest.MonkeyPatch, login: str, *roles: Role | str, config: Path | None = None
) -> int:
    """Add an account with ``roles`` to the ledger of ``config`` (default: $DOCKD_CONFIG;
    created if new) and act as it from now on; returns its uid."""
    cfg = load_config(config)
    ledger = open_ledger(cfg.ledger.url, group=cfg.ledger.group)
    try:
        uid = add_account(ledger, login, *roles, station=cfg.station.id)
    finally:
        ledger.close()
    act_as(monkeypatch, uid)
    return uid
