"""``[metrics]``: the Prometheus endpoint of ``dockd run``, and what ``dockd health`` calls low.

``listen`` is ``HOST:PORT`` (an IPv6 address in brackets: ``[::1]:9470``), by default
the loopback only: the figures name no person, but they say how busy a station is,
so exposing them to the network is a choice made in the file (``0.0.0.0:9470``)
and in the firewall. ``""`` serves no metrics.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import Field, field_validator

from dockd.config.base import Section

DEFAULT_PORT = 9470
# A host name as DNS allows it (letters, digits, '-', dot-separated labels).
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def split_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); ValueError naming what is wrong, with an example."""
    example = f'e.g. "127.0.0.1:{DEFAULT_PORT}", "[::1]:{DEFAULT_PORT}", or "" for no metrics'
    m = re.fullmatch(
        r"\[(?P<v6>[^\]]*)\]:(?P<port6>[^:]*)|(?P<host>[^:\[\]]*):(?P<port>[^:]*)", value
    )
    if m is None:
        raise ValueError(f"{value!r} is not HOST:PORT ({example})")
    host = m.group("v6") if m.group("v6") is not None else m.group("host")
    port_text = m.group("port6") if m.group("v6") is not None else m.group("port")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(
            f"{value!r}: the port {port_text!r} is not a number from 1 to 65535 ({example})"
        )
    if m.group("v6") is not None:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"{value!r}: {host!r} in brackets is not an IPv6 address ({example})"
            ) from None
    elif not host:
        raise ValueError(f"{value!r} names no host: give the address to listen on ({example})")
    elif not _HOSTNAME.match(host):
        raise ValueError(f"{value!r}: {host!r} is not an IP address or host name ({example})")
    return host, int(port_text)


class MetricsConfig(Section):
    """The Prometheus endpoint ``dockd run`` serves, and ``dockd health``'s free-space floor."""

    # HOST:PORT the endpoint listens on; "" serves no metrics.
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    # `dockd health` fails when the store's (or the quarantine's) filesystem has less
    # than this percentage free.
    min_free_percent: Annotated[float, Field(ge=0, le=100)] = 10.0

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        value = value.strip()
        if value:
            split_listen(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when metrics are off."""
        return split_listen(self.listen) if self.listen else None
