"""dockd's structlog events as a test sees them.

:func:`log_events` is structlog's :func:`~structlog.testing.capture_logs` at every
level: a ``dockd`` command run in-process earlier may have left structlog filtering
at its configured level (``[logging] level = "error"``), which would drop the info
and warning events a test looks for before any capture saw them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import structlog
from structlog.testing import capture_logs

Event = MutableMapping[str, Any]


@contextlib.contextmanager
def log_events() -> Iterator[list[Event]]:
    """Every event logged inside the block, at every level, as a dict (``event``,
    ``log_level`` and the fields, bound ones included); structlog as before after it."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET))
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


def named(logs: list[Event], event: str) -> list[Event]:
    """The events called ``event``, in the order logged."""
    return [e for e in logs if e["event"] == event]


def assert_fields(event: Event, **expected: Any) -> None:
    """``event`` has each expected field with exactly that value (other fields may be there)."""
    got = {k: event.get(k, "<missing>") for k in expected}
    assert got == expected, f"{event['event']!r}: {got} != {expected}"
