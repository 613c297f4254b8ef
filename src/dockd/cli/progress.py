"""A progress bar on the terminal for long runs: fixity, archive, retention, an export.

The runs tell a :class:`dockd.context.Progress` how far they are; here that becomes a
rich bar on stderr with files done/total, bytes, rate and ETA. Only a person sees it:
nothing is drawn when stderr is not a terminal (a pipe, a file, journald under
systemd), for ``--format json``, or with ``TERM=dumb``; the daemon's runs never get one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from dockd.context import NO_PROGRESS, Progress


def wanted(*, json_output: bool = False) -> bool:
    """Is someone watching stderr on a terminal (and not reading JSON)?"""
    if json_output or os.environ.get("TERM") == "dumb" or os.environ.get("JOURNAL_STREAM"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class _Files(ProgressColumn):
    def render(self, task: Task) -> Text:
        done, total = task.fields.get("files_done", 0), task.fields.get("files_total")
        return Text(f"{done}/{total} files" if total is not None else f"{done} files")


class _Bytes(ProgressColumn):
    def render(self, task: Task) -> Text:
        done, total = task.fields.get("bytes_done", 0), task.fields.get("bytes_total")
        shown = filesize.decimal(done)
        return Text(f"{shown}/{filesize.decimal(total)}" if total is not None else shown)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("? /s")
        if task.fields.get("by_bytes"):
            return Text(f"{filesize.decimal(int(speed))}/s")
        return Text(f"{speed:.1f} files/s")


class TerminalProgress:
    """A :class:`~dockd.context.Progress` drawn as one rich bar per phase on stderr.

    The bar (and its ETA) follows the bytes when a phase knows how many it will read,
    else the files; a phase of unknown length shows counts and rate without an ETA.
    """

    def __init__(self, console: Console) -> None:
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            _Files(),
            _Bytes(),
            _Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self._task: TaskID | None = None
        self._by_bytes = False
        self._files = 0
        self._bytes = 0

    def __enter__(self) -> TerminalProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()
        self._bar.stop()

    def _finish(self) -> None:
        if self._task is not None:
            task = self._bar.tasks[-1]
            if task.total is not None:
                self._bar.update(self._task, completed=task.total)
            self._bar.stop_task(self._task)

    def begin(self, what: str, files: int | None, nbytes: int | None = None) -> None:
        self._finish()
        self._by_bytes = nbytes is not None and nbytes > 0
        self._files = self._bytes = 0
        self._task = self._bar.add_task(
            what,
            total=nbytes if self._by_bytes else files,
            files_done=0,
            files_total=files,
            bytes_done=0,
            bytes_total=nbytes,
            by_bytes=self._by_bytes,
        )

    def step(self, nbytes: int = 0) -> None:
        if self._task is None:
            return
        self._files += 1
        self._bytes += nbytes
        self._bar.update(
            self._task,
            advance=nbytes if self._by_bytes else 1,
            files_done=self._files,
            bytes_done=self._bytes,
        )


@contextlib.contextmanager
def progress_for(*, json_output: bool = False) -> Iterator[Progress]:
    """A bar on the terminal for the run inside the block, or the no-op when nobody watches."""
    if not wanted(json_output=json_output):
        yield NO_PROGRESS
        return
    with TerminalProgress(Console(stderr=True)) as bar:
        yield bar
