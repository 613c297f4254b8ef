"""``dockd users add|list|disable|roles`` and ``dockd whoami``: accounts and their roles.

Every users command is run by an admin (root without sudo is the ``system`` account, an
admin, so root adds the first person); ``users list`` also by an auditor. Each change
is an audit event whose actor is the account that made it.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dockd.auth import accounts
from dockd.auth.actor import uid_of_login
from dockd.auth.roles import Role
from dockd.cli.common import App, Format, app_of, render
from dockd.errors import UsageError

app = typer.Typer(help="Accounts: who may run dockd, with which roles.", no_args_is_help=True)

Login = Annotated[str, typer.Argument(help="The person's OS login.")]
Fmt = Annotated[Format, typer.Option("--format", "-f")]


def _stamp(state: App) -> accounts.Stamp:
    actor = state.account()  # checked against the permission table by dockd.cli
    return accounts.Stamp(at=state.clock.now(), station=state.config.station.id, actor=actor.login)


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("--password-stdin: no password on standard input")
    return password


@app.command("add")
def users_add(
    ctx: typer.Context,
    login: Login,
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    role: Annotated[list[Role], typer.Option("--role", help="A role (repeat for more).")],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read a password (web view) from stdin."),
    ] = False,
    uid: Annotated[
        int | None, typer.Option("--uid", help="OS uid (default: the uid of LOGIN, if any).")
    ] = None,
    ldap_dn: Annotated[
        str | None, typer.Option("--ldap-dn", help="Directory DN (web view, via LDAP).")
    ] = None,
    ldap: Annotated[
        bool,
        typer.Option("--ldap", help="Directory DN from [directory] (template or search)."),
    ] = False,
) -> None:
    """Give a person an account with one or more roles."""
    # Imported here: LDAP and Argon2 are for this command only, not for every dockd command.
    from dockd.auth import directory
    from dockd.auth.passwords import hash_password

    state = app_of(ctx)
    stamp = _stamp(state)
    if ldap and ldap_dn is not None:
        raise UsageError("give --ldap (the DN from [directory]) or --ldap-dn DN, not both")
    if ldap_dn is not None:
        ldap_dn = directory.check_dn(ldap_dn)
    elif ldap:
        ldap_dn = directory.find_dn(state.config.directory, login)
    password_hash = hash_password(_read_password()) if password_stdin else None
    os_uid = uid if uid is not None else uid_of_login(login)
    with state.ledger.session() as s:
        acc = accounts.add_account(
            s,
            stamp,
            login=login,
            name=name,
            roles=tuple(dict.fromkeys(role)),
            os_uid=os_uid,
            password_hash=password_hash,
            ldap_dn=ldap_dn,
        )
        shown_uid = f"uid {acc.os_uid}" if acc.os_uid is not None else "no OS uid yet"
        typer.echo(f"added account {acc.login} ({acc.name}; {shown_uid}): {', '.join(role)}")


@app.command("list")
def users_list(ctx: typer.Context, fmt: Fmt = Format.table) -> None:
    """Every account, its roles and whether it is active."""
    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.read() as s:
        rows = [
            {
                "login": a.login,
                "name": a.name,
                "uid": a.os_uid,
                "roles": sorted(r.value for r in roles),
                "password": a.password_hash is not None,
                "ldap_dn": a.ldap_dn,
                "disabled_at": a.disabled_at.astimezone(tz).isoformat() if a.disabled_at else None,
                "disabled_reason": a.disabled_reason,
                "created_at": a.created_at.astimezone(tz).isoformat(),
                "created_by": a.created_by,
            }
            for a, roles in accounts.list_accounts(s)
        ]
    render(rows, fmt, title="accounts")


@app.command("disable")
def users_disable(
    ctx: typer.Context,
    login: Login,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")],
) -> None:
    """Disable an account: it can no longer act; its history stays."""
    state = app_of(ctx)
    stamp = _stamp(state)
    with state.ledger.session() as s:
        accounts.disable_account(s, stamp, login, reason=reason)
    typer.echo(f"disabled account {login}")


@app.command("roles")
def users_roles(
    ctx: typer.Context,
    login: Login,
    add: Annotated[list[Role] | None, typer.Option("--add", help="A role to give.")] = None,
    remove: Annotated[list[Role] | None, typer.Option("--remove", help="A role to take.")] = None,
) -> None:
    """Give or take roles."""
    state = app_of(ctx)
    stamp = _stamp(state)
    with state.ledger.session() as s:
        after = accounts.change_roles(
            s, stamp, login, add=tuple(add or ()), remove=tuple(remove or ())
        )
    typer.echo(f"{login} has {', '.join(sorted(after)) or 'no role'}")


def whoami(ctx: typer.Context) -> None:
    """Who dockd takes you for: your account and its roles."""
    actor = app_of(ctx).account()
    typer.echo(actor.describe())


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="users")
    root.command("whoami")(whoami)
