"""LDAP / Active Directory logins (issue 12) through ldap3, the only import of it.

A login is checked by binding to the directory as the person's own DN with the
password typed: the directory decides, dockd keeps no copy of the password. The DN
is the account's ``ldap_dn``, else ``[directory] bind_dn_template`` with the login
escaped as an RDN value (RFC 4514), else the one entry a search finds with the
login escaped in the filter (RFC 4515): a login such as ``a*)(uid=*`` matches
itself or nothing, never someone else.

An empty password is refused before the directory is asked: LDAP treats a simple
bind with a DN and no password as an *anonymous* bind (RFC 4513 §5.1.2), which
succeeds and would let anyone in. The password is never logged.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Protocol

import structlog
from ldap3 import NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from dockd.config.directory import DirectoryConfig
from dockd.errors import UsageError

log = structlog.get_logger("dockd.auth")


class DirectoryAccount(Protocol):
    @property
    def login(self) -> str: ...

    @property
    def ldap_dn(self) -> str | None: ...


def check_dn(dn: str) -> str:
    """``dn`` if it is a distinguished name (RFC 4514), else a UsageError with an example."""
    try:
        parts = parse_dn(dn)
    except LDAPException:
        parts = []
    if not dn.strip() or not parts:
        raise UsageError(
            f"{dn!r} is not a distinguished name; e.g. uid=jdoe,ou=people,dc=example,dc=org"
        )
    return dn


def dn_from_template(config: DirectoryConfig, login: str) -> str | None:
    """``bind_dn_template`` with ``login`` escaped as an RDN value; None without a template."""
    if not config.bind_dn_template:
        return None
    return config.bind_dn_template.replace("{login}", escape_rdn(login))


def _server(config: DirectoryConfig) -> Server:
    tls = Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_file=str(config.ca_file) if config.ca_file else None,
    )  # no version: the ssl module's default context (TLS 1.2+); ldap3 checks the host name
    return Server(
        config.url,
        use_ssl=config.url.startswith("ldaps://"),
        tls=tls,
        get_info=NONE,
        connect_timeout=config.timeout_s,
    )


def _secure(config: DirectoryConfig, conn: Connection) -> None:
    """Open ``conn``; on ldap:// with start_tls, upgrade it or fail: never bind in clear
    because the directory declined StartTLS."""
    conn.open()
    if config.start_tls and not config.url.startswith("ldaps://") and not conn.start_tls():
        conn.unbind()
        raise LDAPStartTLSError(f"{config.url} refused StartTLS: {conn.result}")


def _bound(config: DirectoryConfig, dn: str, password: str) -> Connection | None:
    """A connection bound as ``dn``, or None when the directory says no."""
    conn = Connection(
        _server(config),
        user=dn,
        password=password,
        authentication=SIMPLE,
        receive_timeout=config.timeout_s,
        read_only=True,
    )
    _secure(config, conn)
    if conn.bind():
        return conn
    conn.unbind()
    return None


def _search(config: DirectoryConfig, login: str) -> str | None:
    """The DN of the one entry the filter finds for ``login``, as the service account."""
    if config.bind_password_file is None:
        service_password = ""
    else:
        service_password = Path(config.bind_password_file).read_text().strip("\r\n")
    if config.bind_dn and not service_password:  # would be an anonymous bind, not the service
        log.warning("directory.service_password_empty", file=str(config.bind_password_file))
        return None
    conn = _bound(config, config.bind_dn, service_password) if config.bind_dn else None
    if config.bind_dn and conn is None:
        log.warning("directory.service_bind_refused", bind_dn=config.bind_dn)
        return None
    if conn is None:  # no service account: search anonymously, as the directory allows
        conn = Connection(_server(config), receive_timeout=config.timeout_s, read_only=True)
        _secure(config, conn)
    try:
        query = config.search_filter.replace("{login}", escape_filter_chars(login))
        conn.search(config.search_base, query, search_scope=SUBTREE, attributes=[], size_limit=2)
        found = [e["dn"] for e in conn.response or [] if e.get("type") == "searchResEntry"]
    finally:
        conn.unbind()
    if len(found) != 1:
        log.info("directory.login_not_found", login=login, entries=len(found))
        return None
    return str(found[0])


def dn_of(config: DirectoryConfig, account: DirectoryAccount) -> str | None:
    """The DN ``account`` binds as: its own, the template's, or the search's."""
    if account.ldap_dn:
        return account.ldap_dn
    if (dn := dn_from_template(config, account.login)) is not None:
        return dn
    if config.searches:
        return _search(config, account.login)
    return None


def authenticate(config: DirectoryConfig, account: DirectoryAccount, password: str) -> bool:
    """Does the directory accept ``password`` for ``account``? False when it cannot be asked."""
    if not config.enabled or not password:
        return False  # an empty password would be an anonymous bind, which always succeeds
    try:
        dn = dn_of(config, account)
        if dn is None:
            return False
        conn = _bound(config, dn, password)
    except (LDAPException, OSError) as exc:
        # The directory is down or refuses TLS: say so in the log, never the password.
        log.warning("directory.unreachable", url=config.url, error=str(exc))
        return False
    if conn is None:
        return False
    conn.unbind()
    return True


def find_dn(config: DirectoryConfig, login: str) -> str:
    """The DN ``login`` will bind as (``dockd users add --ldap``), or a UsageError saying why
    there is none: by the template, else by searching the directory now."""
    if not config.enabled:
        raise UsageError(
            "--ldap: the config's [directory] has no url; set it (docs/admin.md, "
            '"Directory") or give the DN with --ldap-dn'
        )
    if (dn := dn_from_template(config, login)) is not None:
        return dn
    if not config.searches:
        raise UsageError(
            "--ldap: [directory] has neither bind_dn_template nor search_base and "
            "search_filter; set one or give the DN with --ldap-dn"
        )
    try:
        found = _search(config, login)
    except (LDAPException, OSError) as exc:
        raise UsageError(f"--ldap: cannot search {config.url}: {exc}") from None
    if found is None:
        raise UsageError(
            f"--ldap: {config.url} has no single entry for {login!r} under "
            f"{config.search_base!r} (or refused the service account; see the log); "
            "give the DN with --ldap-dn"
        )
    return found
