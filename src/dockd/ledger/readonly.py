"""Read-only access for auditors to a PostgreSQL ledger: ``dockd ledger grant-readonly ROLE``.

An auditor's database role may read the documented views (every ``v_*`` view of the
ledger's schema: v_files, v_access_register, v_deletions, ... including views later
revisions add) and nothing else: ``USAGE`` on the schema and ``SELECT`` on those views,
no privilege on any table. A PostgreSQL view runs with its owner's rights, so the views
work without the tables, and the raw tables (``files``, ``audit_events``, ...) stay
closed, as does every write.

The role is created if missing, ``NOLOGIN`` unless asked (a group role that login
roles are made members of, ``GRANT ROLE TO person``, is the usual way); an existing
role keeps its attributes, except that ``--login`` lets it log in. Running it again is
harmless: it grants what is missing, takes back any table privilege the role was given
by hand, and records one ``ledger.grant_readonly`` audit event each time, in the same
transaction. A superuser, or the role dockd itself connects as, is refused: either
would read and write everything whatever is granted.

On SQLite there are no roles: the ``[ledger] group`` reads the file
(:mod:`dockd.ledger.permissions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from dockd.errors import LedgerError, UsageError
from dockd.ledger import audit
from dockd.ledger.db import Ledger

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_$-]{0,62}")
VIEW_PREFIX = "v_"


@dataclass(frozen=True)
class ReadonlyGrant:
    """What ``grant-readonly`` did to one role."""

    role: str
    schema: str
    created: bool
    login: bool
    views: tuple[str, ...]
    revoked_tables: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "schema": self.schema,
            "created": self.created,
            "login": self.login,
            "views": list(self.views),
            "revoked_tables": list(self.revoked_tables),
        }


def _quote(session: Session, name: str) -> str:
    return str(session.get_bind().dialect.identifier_preparer.quote_identifier(name))


def _names(session: Session, sql: str, **params: str) -> tuple[str, ...]:
    return tuple(str(n) for n in session.scalars(text(sql), params))


def grant_readonly(
    ledger: Ledger, role: str, *, login: bool, at: datetime, station: str, actor: str
) -> ReadonlyGrant:
    """Make ``role`` a reader of the ledger's views and nothing else (see the module doc)."""
    if ledger.dialect != "postgresql":
        raise UsageError(
            "grant-readonly is for a PostgreSQL ledger; an SQLite ledger is read by the "
            "members of its [ledger] group (default dockd-audit): `usermod -aG GROUP LOGIN` "
            '(docs/operations.md, "Read access for auditors")'
        )
    if not ROLE_NAME.fullmatch(role):
        raise UsageError(
            f"{role!r} is not a role name dockd creates: use lower-case letters, digits, '_', "
            "'$' or '-', at most 63 characters, starting with a letter or '_' (e.g. auditor_ro)"
        )
    try:
        return _grant(ledger, role, login=login, at=at, station=station, actor=actor)
    except ProgrammingError as exc:
        raise LedgerError(
            f"cannot make {role!r} a reader of the ledger: {str(exc.orig).strip()}; run "
            "`dockd ledger grant-readonly` with a [ledger] url whose role owns the ledger "
            "and may create roles (CREATEROLE)"
        ) from exc


def _grant(
    ledger: Ledger, role: str, *, login: bool, at: datetime, station: str, actor: str
) -> ReadonlyGrant:
    with ledger.session() as s:
        me = str(s.scalar(text("SELECT current_user")))
        if role == me:
            raise UsageError(
                f"{role!r} is the role dockd connects as, which writes the ledger; "
                "name a separate role for auditors"
            )
        found = s.execute(
            text("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role}
        ).first()
        if found is not None and found.rolsuper:
            raise UsageError(
                f"{role!r} is a PostgreSQL superuser and reads and writes everything; "
                "name a role that is not (e.g. auditor_ro)"
            )
        q = _quote(s, role)
        if found is None:
            s.execute(text(f"CREATE ROLE {q} {'LOGIN' if login else 'NOLOGIN'}"))
        elif login and not found.rolcanlogin:
            s.execute(text(f"ALTER ROLE {q} LOGIN"))
        schema = str(s.scalar(text("SELECT current_schema()")))
        views = _names(
            s,
            "SELECT table_name FROM information_schema.views WHERE table_schema = :schema "
            "AND left(table_name, 2) = :prefix ORDER BY table_name",
            schema=schema,
            prefix=VIEW_PREFIX,
        )
        if not views:
            raise LedgerError(
                f"the ledger's schema {schema!r} has no {VIEW_PREFIX}* views; run "
                "`dockd ledger migrate` first"
            )
        # Tables the role was given something on directly (by hand, earlier): taken back.
        tables = _names(
            s,
            "SELECT DISTINCT c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'S') "
            "AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = :role) "
            "ORDER BY c.relname",
            schema=schema,
            role=role,
        )
        qs = _quote(s, schema)
        for table in tables:
            s.execute(text(f"REVOKE ALL ON {qs}.{_quote(s, table)} FROM {q}"))
        s.execute(text(f"GRANT USAGE ON SCHEMA {qs} TO {q}"))
        listed = ", ".join(f"{qs}.{_quote(s, v)}" for v in views)
        s.execute(text(f"GRANT SELECT ON {listed} TO {q}"))
        result = ReadonlyGrant(
            role=role,
            schema=schema,
            created=found is None,
            login=bool(login or (found is not None and found.rolcanlogin)),
            views=views,
            revoked_tables=tables,
        )
        audit.record(
            s,
            at=at,
            station=station,
            actor=actor,
            action="ledger.grant_readonly",
            subject_type="role",
            subject_id=role,
            details=result.as_dict(),
        )
    return result
