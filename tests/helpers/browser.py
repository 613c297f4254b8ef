"""A real browser for the web view's tests: Playwright's sync API driving Debian's
Chromium (package ``chromium``) headless, one fresh context (no cookies) per person.

Missing Chromium or Playwright skips the test with the reason, and fails it under
``CI=true`` (:func:`tests.helpers.skips.need`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tests.helpers.skips import need

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = os.environ.get("DOCKD_TEST_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
FLAGS = (
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def need_browser() -> None:
    """Skip (or fail under CI) unless Playwright and Chromium are both here."""
    if importlib.util.find_spec("playwright") is None:
        need(tools=("playwright (PyPI package)",), why="the browser tests drive Chromium with it")
    need(tools=(CHROMIUM,), why="the browser tests drive Debian's Chromium (apt install chromium)")


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, closed at the end of the block."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(FLAGS))
        try:
            yield browser
        finally:
            browser.close()
