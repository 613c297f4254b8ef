"""A real ``dockd web`` for the browser tests: a station on disk whose ledger is filled by
a real ``dockd ingest`` of a recorder made by fixtures.make_recorder, accounts added with
``dockd users add ... --password-stdin``, and the server started as a subprocess on a
free port, ready once ``/login`` answers.

Every command runs as ``python -m dockd`` with this checkout first on PYTHONPATH, as
root without sudo (the ``system`` account, an admin), as ``dockd-web.service`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dockd.clock import FixedClock
from dockd.ledger.models import Recording
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.cli_station import Station, make_station
from tests.helpers.ledgers import register
from tests.helpers.station import NOW

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"  # noqa: S105 (a test account's)
READY_WITHIN_S = 60.0  # a loaded CI machine; the poll ends as soon as /login answers

# Views need two approvals, from two people (legal, then the leader); the cookie goes
# over plain HTTP to the browser on this machine.
STATION_EXTRA = """
[web]
cookie_secure = false

[access]
view = [["legal"], ["leader"]]
"""


@dataclass
class WebStation:
    """A station, its recorder's files (ids by file name) and the people who log in."""

    station: Station
    recorder: Recorder
    files: dict[str, int] = field(default_factory=dict)
    logins: dict[str, str] = field(default_factory=dict)  # login -> full name

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(REPO / "src"), str(REPO)])
        return self.station.env(PYTHONPATH=path, PYTHONUNBUFFERED="1", LANG="C.UTF-8")

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dockd", "--config", str(self.station.config), *args]

    def dockd(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run one ``dockd`` command to its end; a failure fails the test with its output."""
        proc = subprocess.run(
            self.argv(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, f"dockd {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc

    def add_person(self, login: str, name: str, *roles: str) -> None:
        """An account that logs in to the web view with :data:`PASSWORD`."""
        role_args = [a for r in roles for a in ("--role", r)]
        self.dockd("users", "add", login, "--name", name, *role_args, "--password-stdin",
                   stdin=PASSWORD + "\n")  # fmt: skip
        self.logins[login] = name

    def access_register(self) -> list[dict[str, Any]]:
        """``dockd report access``: every view and export registered."""
        out = self.dockd("report", "access", "--format", "json").stdout
        rows: list[dict[str, Any]] = json.loads(out)
        return rows


def make_web_station(root: Path) -> WebStation:
    """The test station with recorder DV-0001 of officer 012345, Zhang Wei (registered and
    assigned), ingested by ``dockd ingest``: three clips, a photo and an audio note of
    2026-03-15 from 06:30 station time."""
    station = make_station(root, STATION_EXTRA)
    rec = make_recorder(root / "recorder", clips=3, extras=False)
    web = WebStation(station, rec)
    with station.ledger() as led:
        register(led, FixedClock(NOW), rec)
    web.dockd("ingest", str(rec.root))
    with station.ledger() as led, led.read() as s:
        web.files = {Path(r.source_path).name: r.id for r in s.scalars(select(Recording))}
    assert len(web.files) == 5, web.files
    return web


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (our own loopback)
            return int(resp.status) == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextlib.contextmanager
def running_web(web: WebStation) -> Iterator[str]:
    """``dockd web --port N`` on a free port until the block ends; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = web.station.root / f"web-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            web.argv("web", "--port", str(port)),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=web.env(),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while not _answers(f"{base}/login"):
            try:  # the wait between two polls, ended early if the server dies
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            else:
                raise AssertionError(
                    f"dockd web exited with {proc.returncode} before answering:\n"
                    + log.read_text(errors="replace")
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"dockd web did not answer {base}/login within {READY_WITHIN_S:g} s:\n"
                    + log.read_text(errors="replace")
                )
        yield base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
