"""systemd's readiness and watchdog protocol (sd_notify), without a dependency.

A service of ``Type=notify`` sends ``READY=1`` once it is serving and, when
``WatchdogSec=`` is set, ``WATCHDOG=1`` at least every ``$WATCHDOG_USEC``
microseconds; systemd restarts it when the pings stop. The messages are single
datagrams on the unix socket named by ``$NOTIFY_SOCKET`` (``@`` = abstract).

Sending never blocks for long: a unix datagram to a receiver whose queue is full
(``net.unix.max_dgram_qlen``, 10 by default) waits until the receiver reads. A
receiver that stops reading must not freeze the daemon's main thread (it would
never get to a SIGTERM's stop), so a message that cannot be queued within
``timeout`` seconds is dropped and reported as not sent.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

SEND_TIMEOUT_S = 0.5


def notify(
    message: str, env: Mapping[str, str] | None = None, *, timeout: float = SEND_TIMEOUT_S
) -> bool:
    """Send one sd_notify message; False when not run by systemd, or not sent in time."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.settimeout(timeout)  # also bounds the wait for room in a full queue
            s.connect(target)
            s.sendall(message.encode("utf-8"))
    except OSError:
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of ``WatchdogSec``), or None when off."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2 / 1_000_000
