"""``[ledger]``: the database auditors query, SQLite by default, PostgreSQL for many stations."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import field_validator

from dockd.config.base import Section


class LedgerConfig(Section):
    """The database auditors query: SQLite by default, PostgreSQL for many stations."""

    url: str = "sqlite:////var/lib/dockd/ledger.sqlite3"
    # OS group owning the SQLite ledger file (0640), its -wal/-shm and the directories
    # dockd creates (0750), so that auditors in it can read the ledger. "dockd-audit"
    # (made by systemd/dockd.sysusers.conf); the former default "dockd" still works, and
    # an existing ledger keeps the group it has. Not used for PostgreSQL.
    group: str = "dockd-audit"

    @field_validator("group")
    @classmethod
    def _group_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", value):
            raise ValueError(
                f"{value!r} is not a group name: use letters, digits, '_', '.' or '-', at "
                "most 32 characters, starting with a letter or '_' (e.g. \"dockd\")"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url_ok(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("must be an SQLAlchemy URL starting with sqlite:// or postgresql://")
        if value.split("://", 1)[1].split("/", 1)[0].count("@") > 1:
            raise ValueError(
                "has more than one '@' before the host: write an '@' in the password as %40"
            )
        # Imported here: the configuration (and the pure policy reading it) loads no
        # database library until a ledger URL is actually checked.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value).port  # noqa: B018  (parsing the port is the check)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"is not a database URL SQLAlchemy can read ({exc})") from None
        return value


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    m = re.match(r"^sqlite(?:\+\w+)?://(?P<rest>[^?]*)", url)
    if m is None or not m.group("rest").startswith("/"):
        return None
    name = m.group("rest")[1:].removeprefix("file:")
    if not name or name == ":memory:":
        return None
    return Path(name)
