"""Logging with structlog: native journald fields under systemd, JSON lines elsewhere
when not on a terminal, readable lines on a terminal.

Every event carries what an operator needs to find it again: the dock session,
the device and, where there is one, the file. Under systemd each of those is a
journal field of its own (``DOCKD_SESSION_ID``, ``DOCKD_DEVICE``, ...) beside a
``PRIORITY`` per level, so ``journalctl -p warning`` and
``journalctl DOCKD_DEVICE=CAM-0042`` find them.

The journal is written with its native protocol
(https://systemd.io/JOURNAL_NATIVE_PROTOCOL/) rather than a binding of libsystemd:
the protocol is a datagram of ``KEY=VALUE`` lines, the bindings need a C toolchain
and libsystemd's headers to install, and a socket path of our own choosing lets the
tests read exactly what journald would receive.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import socket
import struct
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog
from structlog.typing import EventDict, WrappedLogger

Format = Literal["auto", "json", "console", "journald"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: Where journald listens for native messages.
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")

#: syslog priorities (journald's ``PRIORITY``) of structlog's level names.
PRIORITIES = {
    "debug": 7,
    "info": 6,
    "notice": 5,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "exception": 3,
    "critical": 2,
    "fatal": 2,
}

#: Keys that are journald's own fields or the logger's bookkeeping, not event context.
_NOT_CONTEXT = frozenset({"event", "level", "timestamp", "exception", "exc_info", "stack"})
_NOT_FIELD_CHARS = re.compile(r"[^A-Z0-9_]")
_FIELD_NAME_MAX = 64  # journald drops fields with longer names
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


class _Stream(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the time of writing (it may be swapped, e.g. by tests)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    def fileno(self) -> int:
        return sys.stderr.fileno()


def stream_is_journal(stream: object) -> bool:
    """Whether ``stream`` is connected to the journal: systemd sets ``JOURNAL_STREAM`` to
    ``DEVICE:INODE`` of the stream it connects stdout/stderr to (systemd.exec(5)); a
    redirected stderr (``2>file``, a pipe) no longer matches it."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    fileno = getattr(stream, "fileno", None)
    if not expected or fileno is None:
        return False
    try:
        st = os.fstat(fileno())
    except (OSError, ValueError):  # no real file behind it (a test's capture, a closed fd)
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _field_name(key: str) -> str:
    """``session_id`` -> ``DOCKD_SESSION_ID``; characters journald refuses become ``_``."""
    return ("DOCKD_" + _NOT_FIELD_CHARS.sub("_", key.upper()))[:_FIELD_NAME_MAX]


def _message(event_dict: Mapping[str, Any]) -> str:
    """What ``journalctl`` shows: the event, its context as ``key=value`` (a line in
    ``journalctl -u dockd`` says which device and which file), then any traceback."""
    parts = [str(event_dict.get("event", ""))]
    for key, value in event_dict.items():
        if key in _NOT_CONTEXT:
            continue
        text = _value_text(value)
        if not text or re.search(r'[\s"=]', text):
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    message = " ".join(parts)
    for key in ("exception", "stack"):
        if event_dict.get(key):
            message += "\n" + str(event_dict[key]).rstrip("\n")
    return message


def _encode_field(name: str, value: str) -> bytes:
    """One field: ``NAME=value\\n``, or for a value with a newline the binary form
    ``NAME\\n``, its length as a little-endian 64-bit integer, the value, ``\\n``."""
    data = value.encode("utf-8", "backslashreplace")  # undecodable file names stay readable
    if b"\n" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def journal_fields(event_dict: Mapping[str, Any]) -> dict[str, str]:
    """The journal fields of one event (its exception, if any, already formatted to text)."""
    fields = {
        "PRIORITY": str(PRIORITIES.get(str(event_dict.get("level", "")), 6)),
        "SYSLOG_IDENTIFIER": "dockd",
        "MESSAGE": _message(event_dict),
    }
    for key, value in event_dict.items():
        if key not in _NOT_CONTEXT:
            fields[_field_name(str(key))] = _value_text(value)
    return fields


def journal_datagram(event_dict: Mapping[str, Any]) -> bytes:
    """The native-protocol message of one event."""
    return b"".join(_encode_field(k, v) for k, v in journal_fields(event_dict).items())


class _JournalRenderer:
    """The last processor for journald: the native message, and the JSON line the
    ``json`` format would have written, for when the journal cannot be reached."""

    def __init__(self) -> None:
        self._json = structlog.processors.JSONRenderer(ensure_ascii=False)

    def __call__(
        self, logger: WrappedLogger, name: str, event_dict: EventDict
    ) -> tuple[tuple[bytes, str], dict[str, Any]]:
        as_json = structlog.processors.dict_tracebacks(logger, name, dict(event_dict))
        line = str(self._json(logger, name, as_json))
        as_text = structlog.processors.format_exc_info(logger, name, dict(event_dict))
        return (journal_datagram(as_text), line), {}


class JournalLogger:
    """Sends each event to journald; writes its JSON line to ``fallback`` instead when
    the journal cannot take it (journald gone, socket removed), so no event is lost and
    logging never raises into the code that logged."""

    def __init__(self, socket_path: Path, fallback: _Stream) -> None:
        self._path = str(socket_path)
        self._fallback = fallback
        self._lock = threading.Lock()

    def msg(self, datagram: bytes, fallback_line: str) -> None:
        try:
            self._send(datagram)
        except OSError:
            with self._lock, contextlib.suppress(OSError, ValueError):
                self._fallback.write(fallback_line + "\n")
                self._fallback.flush()

    log = debug = info = warn = warning = error = exception = critical = fatal = msg

    def _send(self, datagram: bytes) -> None:
        # A socket per event: nothing to close at exit, nothing shared across a fork.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.sendto(datagram, self._path)
            except OSError as exc:
                if exc.errno != errno.EMSGSIZE:  # too big for one datagram
                    raise
                self._send_memfd(sock, datagram)

    def _send_memfd(self, sock: socket.socket, datagram: bytes) -> None:
        """A message too big for a datagram goes in a sealed memfd passed with SCM_RIGHTS."""
        fd = os.memfd_create("dockd-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(datagram)
            while view:
                view = view[os.write(fd, view) :]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            rights = struct.pack("i", fd)
            sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)], 0, self._path)
        finally:
            os.close(fd)


def _is_socket(path: Path) -> bool:
    try:
        return path.is_socket()
    except OSError:  # a directory we may not look into: not a journal we can write to
        return False


def _journal_factory(socket_path: Path, out: _Stream) -> Callable[..., JournalLogger]:
    logger = JournalLogger(socket_path, out)
    return lambda *args: logger


def _station_stamper(tz: tzinfo) -> structlog.typing.Processor:
    """The console's timestamp: station time as a person reads it (``2026-03-15
    06:30:05``), where journald and JSON lines keep ISO UTC for machines."""

    def stamp(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        event_dict["timestamp"] = datetime.now(tz).strftime("%Y-%m-%d %H:%M:%S")
        return event_dict

    return stamp


def setup_logging(
    level: str = "info",
    fmt: Format = "auto",
    *,
    stream: object = None,
    journal_socket: Path = JOURNAL_SOCKET,
    tz: tzinfo | None = None,
) -> None:
    """Configure structlog once for the process. Logs go to journald (``journald``, or
    ``auto`` when stderr is the journal and its socket is there), else to stderr.
    On the console the time is the station's (``tz``, the config's ``[station]
    timezone``), else ISO 8601 UTC."""
    out = stream if stream is not None else _CurrentStderr()
    tty = getattr(out, "isatty", lambda: False)()
    if fmt == "auto":
        if stream_is_journal(out) and _is_socket(journal_socket):
            fmt = "journald"
        else:
            fmt = "console" if tty else "json"
    exceptions: list[structlog.typing.Processor] = []
    renderer: structlog.typing.Processor
    factory: Any
    if fmt == "journald":
        # The journal renderer formats exceptions itself: text for journald, the JSON
        # format's dicts for the line it falls back to.
        renderer = _JournalRenderer()
        factory = _journal_factory(journal_socket, out)  # type: ignore[arg-type]
    elif fmt == "json":
        exceptions = [structlog.processors.dict_tracebacks]
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        factory = structlog.PrintLoggerFactory(file=out)  # type: ignore[arg-type]
    else:
        exceptions = [structlog.dev.set_exc_info]
        renderer = structlog.dev.ConsoleRenderer(colors=tty)
        factory = structlog.PrintLoggerFactory(file=out)  # type: ignore[arg-type]
    stamper: structlog.typing.Processor = structlog.processors.TimeStamper(fmt="iso", utc=True)
    if fmt == "console" and tz is not None:
        stamper = _station_stamper(tz)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamper,
            *exceptions,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
