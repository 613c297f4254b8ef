"""What every dockd fuzz target shares: property checks and failure signatures.

A target calls ``guarded(check, data)`` from its ``TestOneInput``. ``check`` raises
:class:`PropertyFailure` when a promised property does not hold; that, like any
other unexpected exception, reaches atheris and becomes a libFuzzer crash with its
input saved as ``crash-<sha1>``.

Before re-raising, the failure's signature (exception type and the innermost frame
inside dockd, or the property's name) is printed as ``FUZZ-SIGNATURE: ...``.
``fuzz/run.sh`` collects these: after a crash it restarts the target for the rest of
its time with ``FUZZ_KNOWN_FAILURES`` naming a file of signatures already found, which
``guarded`` then lets pass, so one shallow bug does not end a ten-minute run and
deeper ones are still found. Run by hand (no ``FUZZ_KNOWN_FAILURES``), every failure
is a crash.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path


class PropertyFailure(AssertionError):
    """A property the code under test promises does not hold for this input."""

    def __init__(self, prop: str, *context: object) -> None:
        self.prop = prop
        super().__init__(f"{prop}: " + ", ".join(repr(c)[:300] for c in context))


def require(ok: bool, prop: str, *context: object) -> None:
    """Raise :class:`PropertyFailure` naming ``prop`` (and the values shown) unless ``ok``."""
    if not ok:
        raise PropertyFailure(prop, *context)


def signature(exc: BaseException) -> str:
    """A short, stable name for one kind of failure (the same bug gives the same name)."""
    if isinstance(exc, PropertyFailure):
        return f"property: {exc.prop}"
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/dockd/" in f.filename]
    where = (ours or frames)[-1] if frames else None
    if where is None:
        return type(exc).__name__
    name = where.filename
    name = "dockd/" + name.rsplit("/dockd/", 1)[1] if "/dockd/" in name else Path(name).name
    return f"{type(exc).__name__} at {name}:{where.lineno}"


def _known() -> frozenset[str]:
    path = os.environ.get("FUZZ_KNOWN_FAILURES")
    if not path:
        return frozenset()
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return frozenset()
    return frozenset(line.strip() for line in lines if line.strip())


KNOWN = _known()


def guarded(check: Callable[[bytes], None], data: bytes) -> None:
    """Run one input; a new kind of failure is printed with its signature and re-raised."""
    try:
        check(data)
    except Exception as exc:
        sig = signature(exc)
        if sig in KNOWN:
            return
        print(f"FUZZ-SIGNATURE: {sig}", file=sys.stderr, flush=True)
        raise
