"""``[directory]``: LDAP or Active Directory, where a web-view login may be checked (issue 12).

Agencies already run a directory; an account with a DN (``dockd users add --ldap-dn``,
or ``--ldap`` to use ``bind_dn_template``) logs in by binding as itself with the
password it typed. The DN comes from the account, else from ``bind_dn_template``
(``uid={login},ou=people,dc=example,dc=org``), else from a search under
``search_base`` with ``search_filter`` (``(sAMAccountName={login})``) made as the
service account ``bind_dn``, whose password is read from ``bind_password_file``:
never written in this file, which many people may read.

``url = ""`` (the default) means no directory. ``ldaps://`` speaks TLS from the
start; ``ldap://`` is upgraded with StartTLS unless ``start_tls = false`` (a
password would then cross the network in clear: only for a directory on this host).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from dockd.config.base import AbsolutePath, Section

_URL = re.compile(r"^ldaps?://[A-Za-z0-9.\-\[\]:]+(?::\d{1,5})?/?$")
_EXAMPLE_URL = 'e.g. "ldaps://dc.example.org" or "ldap://127.0.0.1:389"'


def _placeholder(value: str, example: str) -> str:
    if value and "{login}" not in value:
        raise ValueError(f"{value!r} has no {{login}} placeholder; e.g. {example!r}")
    leftover = value.replace("{login}", "")
    if "{" in leftover or "}" in leftover:
        raise ValueError(f"{value!r}: only {{login}} may stand in braces; e.g. {example!r}")
    return value


class DirectoryConfig(Section):
    """Where and how a web-view login is checked against LDAP / Active Directory."""

    # ldaps://HOST[:PORT] or ldap://HOST[:PORT]; "" means no directory.
    url: str = ""
    # StartTLS on an ldap:// URL (ldaps:// is TLS anyway).
    start_tls: bool = True
    # The DN of a login, {login} escaped per RFC 4514; or "" to search.
    bind_dn_template: str = ""
    # Where to search for a login's entry, and the filter ({login} escaped per RFC 4515).
    search_base: str = ""
    search_filter: str = ""
    # The service account the search binds as, and the file holding its password.
    bind_dn: str = ""
    bind_password_file: AbsolutePath | None = None
    # The CA certificate (PEM) the directory's certificate must chain to; None: the system's.
    ca_file: AbsolutePath | None = None
    # Seconds to connect, and to wait for each answer.
    timeout_s: Annotated[int, Field(ge=1, le=300)] = 10

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if value and not _URL.match(value):
            raise ValueError(f'{value!r} is not an LDAP URL ({_EXAMPLE_URL}, or "" for none)')
        return value

    @field_validator("bind_dn_template")
    @classmethod
    def _template(cls, value: str) -> str:
        return _placeholder(value, "uid={login},ou=people,dc=example,dc=org")

    @field_validator("search_filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        example = "(sAMAccountName={login})"
        if value and not (value.startswith("(") and value.endswith(")")):
            raise ValueError(f"{value!r} is not an LDAP filter in parentheses; e.g. {example!r}")
        return _placeholder(value, example)

    @model_validator(mode="after")
    def _complete(self) -> DirectoryConfig:
        if not self.url:
            return self
        if self.search_base and not self.search_filter:
            raise ValueError(
                'search_base is set but search_filter is not; e.g. "(sAMAccountName={login})"'
            )
        if self.search_filter and not self.search_base:
            raise ValueError(
                'search_filter is set but search_base is not; e.g. "ou=people,dc=example,dc=org"'
            )
        if bool(self.bind_dn) != (self.bind_password_file is not None):
            raise ValueError(
                "bind_dn and bind_password_file go together: the service "
                "account the search binds as, and the file with its password"
            )
        if not self.url.startswith("ldaps://") and not self.start_tls and self.ca_file:
            raise ValueError(
                "ca_file is set but the connection is not TLS: use ldaps:// or start_tls = true"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @property
    def searches(self) -> bool:
        """No template: a login's DN is found by a search."""
        return not self.bind_dn_template and bool(self.search_base)
