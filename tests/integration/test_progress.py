"""A person at a terminal sees a progress bar (files, bytes, rate, ETA) while a sweep runs;
a pipe, JSON output and the daemon never get one. The terminal is a real pseudo-terminal
(``pty.openpty``) on the stderr of a real ``python -m dockd`` process."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from rich.console import Console

from dockd.cli.progress import TerminalProgress
from dockd.clock import FixedClock
from dockd.policy.placing import place_hold
from fixtures.make_recorder import make_recorder
from tests.helpers.cli_station import Station, make_station
from tests.helpers.ledgers import register
from tests.helpers.station import NOW


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Station:
    """A station with two recordings (and their sidecars) stored by the real command, and
    held (so the archive sweep copies them to its target)."""
    tmp_path = tmp_path_factory.mktemp("progress")
    rec = make_recorder(tmp_path / "rec", clips=2, extras=False)
    shelf = tmp_path / "shelf"
    shelf.mkdir(mode=0o750)
    archive = f'[[archive.targets]]\nname = "shelf"\npath = "{shelf}"\nreserve_mb = 0\n'
    st = make_station(tmp_path / "station", archive)
    with st.ledger() as led:
        register(led, FixedClock(NOW), rec)
    ingest = st.run("ingest", str(rec.root))
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    with st.ledger() as led, led.session() as s:
        place_hold(
            s,
            station="st-test",
            at=datetime.now(UTC),
            by="inspector",
            reason="evidence",
            device_ref="DV-0001",
            window_from=datetime(2020, 1, 1, tzinfo=UTC),
        )
    return st


def on_a_terminal(st: Station, *args: str, **extra: str) -> tuple[int, str, str]:
    """``python -m dockd ARGS`` with its stderr on a pseudo-terminal (stdout piped): the
    exit code, stdout, and everything the terminal showed."""
    master, slave = pty.openpty()
    env = {**st.env(TERM="xterm-256color"), "COLUMNS": "160", **extra}
    with subprocess.Popen(
        [sys.executable, "-m", "dockd", "-c", str(st.config), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    ) as proc:
        os.close(slave)
        shown = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed its end of the terminal
                break
            if not chunk:
                break
            shown += chunk
        out = proc.stdout.read() if proc.stdout is not None else b""
        code = proc.wait()
    os.close(master)
    return code, out.decode(), shown.decode(errors="replace")


def test_fixity_on_a_terminal_shows_a_bar_with_files_bytes_and_eta(station: Station) -> None:
    stored = len(station.rows())
    code, out, shown = on_a_terminal(station, "sweep", "fixity", "--all")
    assert code == 0, shown
    assert "fixity" in shown
    assert f"{stored}/{stored} files" in shown
    assert "ETA" in shown
    assert "━" in shown  # the bar itself
    assert "/s" in shown  # the rate
    assert "ETA" not in out  # the table on stdout stays clean


def test_fixity_on_a_pipe_shows_no_bar(station: Station) -> None:
    proc = station.run("sweep", "fixity", "--all")
    assert proc.returncode == 0, proc.stderr
    assert "ETA" not in proc.stderr and "━" not in proc.stderr
    assert "files" not in proc.stderr and "/s" not in proc.stderr
    assert 'ok: {"due": ' in proc.stderr  # the run's outcome, as without a terminal


def test_json_on_a_terminal_shows_no_bar(station: Station) -> None:
    code, out, shown = on_a_terminal(station, "sweep", "fixity", "--all", "--format", "json")
    assert code == 0, shown
    assert "ETA" not in shown and "━" not in shown
    assert f'"checked": {len(station.rows())}' in out


def test_stderr_going_to_journald_shows_no_bar(station: Station) -> None:
    """systemd sets JOURNAL_STREAM when stderr is the journal (even through a terminal)."""
    code, _, shown = on_a_terminal(station, "sweep", "fixity", "--all", JOURNAL_STREAM="8:1")
    assert code == 0, shown
    assert "ETA" not in shown and "files" not in shown


def test_retention_on_a_terminal_counts_files_without_a_known_total(station: Station) -> None:
    code, _, shown = on_a_terminal(station, "sweep", "retention", "--dry-run")
    assert code == 0, shown
    assert "retention: trash" in shown and "retention: purge" in shown
    assert "0 files" in shown


def test_archive_on_a_terminal_shows_its_target_and_files(station: Station) -> None:
    stored = len(station.rows())
    code, _, shown = on_a_terminal(station, "sweep", "archive")
    assert code == 0, shown
    assert "archive shelf" in shown
    assert f"{stored}/{stored} files" in shown and "ETA" in shown


def test_a_phase_that_knows_its_bytes_follows_them() -> None:
    """What the bar says after two of three files (bytes known), then an unknown phase."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    with TerminalProgress(console) as bar:
        bar.begin("export", 3, 3_000_000)
        bar.step(1_000_000)
        bar.step(1_000_000)
        bar._bar.refresh()
        assert "2/3 files" in screen.getvalue()
        assert "2.0 MB/3.0 MB" in screen.getvalue()
        bar.begin("retention: trash", None)
        bar.step()
        bar._bar.refresh()
    assert "1 files" in screen.getvalue()
    assert "ETA" in screen.getvalue()
