"""``dockd ingest SOURCE``: the same ingest the daemon runs when a recorder docks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from dockd.cli.common import app_of
from dockd.ingest.identify import volume_of
from dockd.ingest.outcome import FileOutcome, FileStatus, SessionOutcome, SessionResult
from dockd.ingest.pipeline import run_ingest


class RichProgress:
    """Files and bytes bars with rate, shown only on a terminal."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._files = self._progress.add_task("files", total=0)
        self._bytes = self._progress.add_task("bytes", total=0)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, files: int, total_bytes: int) -> None:
        self._progress.update(self._files, total=files)
        self._progress.update(self._bytes, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._bytes, nbytes)

    def file_done(self, outcome: FileOutcome) -> None:
        self._progress.advance(self._files, 1)
        if outcome.status == FileStatus.PRESENT:
            self._progress.advance(self._bytes, outcome.size)


def summary(result: SessionResult, console: Console) -> None:
    """The end-of-run report: counts, and every file that did not make it, with why."""
    where = "quarantine (unregistered recorder)" if result.quarantined else "store"
    console.print(
        f"session {result.session_id}: recorder {result.device_ref} "
        f"({'identified by ' + result.identified_by if result.identified_by else 'NOT registered'})"
        f" -> {where}"
    )
    console.print(
        f"  outcome {result.outcome}: {result.count(FileStatus.STORED)} stored, "
        f"{result.count(FileStatus.PRESENT)} already present, "
        f"{result.count(FileStatus.FAILED)} failed, {result.count(FileStatus.REFUSED)} refused, "
        f"{result.bytes_copied} bytes copied"
    )
    for f in result.files:
        if f.status in (FileStatus.FAILED, FileStatus.REFUSED):
            console.print(f"  {f.status.upper():8} {f.relpath}: {f.reason}", markup=False)
        elif f.flags:
            console.print(
                f"  FLAGGED  {f.relpath} -> {f.store_path} [{', '.join(f.flags)}]", markup=False
            )


def ingest(
    ctx: typer.Context,
    source: Annotated[
        Path, typer.Argument(help="The recorder's mount point or a copy of it.", file_okay=False)
    ],
    device: Annotated[
        str | None,
        typer.Option("--device", help="Device number, when the recorder cannot identify itself."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="If another process is ingesting this recorder, wait for it instead of "
            "exiting with code 73.",
        ),
    ] = False,
) -> None:
    """Copy and hash every recording under SOURCE into the store; exit 1 if any file failed.

    Before it starts, whatever a crashed run left is put right: its temporaries and
    unrecorded files are removed from the store and its session is closed.
    """
    state = app_of(ctx)
    ictx = state.context(state.account())
    console = Console(stderr=True)
    volume = volume_of(source)
    if sys.stderr.isatty():
        with RichProgress(console) as bar:
            result = run_ingest(
                ictx, source, device_number=device, volume=volume, progress=bar, wait=wait
            )
    else:
        result = run_ingest(ictx, source, device_number=device, volume=volume, wait=wait)
    summary(result, Console())
    if result.outcome != SessionOutcome.COMPLETE:
        raise typer.Exit(2 if result.outcome == SessionOutcome.REFUSED else 1)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
