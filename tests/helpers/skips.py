"""Skip a test whose real components are missing, or fail it under ``CI=true``.

Tests that need root, loop devices, FUSE, udevd or PostgreSQL call :func:`need` with
what they need: outside CI a missing tool skips the test with the reason; under
``CI=true`` it fails, because CI must run every test (.ci/run installs everything).
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(*, root: bool = False, tools: tuple[str, ...] = (), why: str = "") -> None:
    """Skip (outside CI) or fail (under CI=true) when the test's real components are missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    problems = []
    if root and os.geteuid() != 0:
        problems.append("root")
    if missing:
        problems.append("tools " + ", ".join(missing))
    if not problems:
        return
    unavailable(f"needs {' and '.join(problems)}{': ' + why if why else ''}")


def unavailable(reason: str) -> None:
    """Skip (outside CI) or fail (under CI=true): what the test needs is not on this
    machine (a tool, root, a kernel file system), ``reason`` says what."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run must install these; skipping is not allowed)")
    pytest.skip(reason)
