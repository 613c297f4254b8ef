"""A station on disk driven through the real ``dockd`` command, for the tests that run
it as a subprocess (crashes, hostile recorders): config file, store, quarantine, SQLite
ledger and its own runtime directory, so its recorder locks meet no other test's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from dockd.ledger import registry
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Alert, DockSession, Recording
from tests.helpers.station import NOW, config_text

DOCKD = str(Path(sys.executable).with_name("dockd"))

# Processes started with `Station.start`; `kill_started` ends whatever a failed test
# left (a `dockd ingest` paused for ever would hold its recorder's lock).
_started: list[subprocess.Popen[bytes]] = []


def kill_started() -> None:
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@dataclass
class Station:
    root: Path
    config: Path
    ledger_url: str

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def runtime(self) -> Path:
        return self.root / "run"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKD_")}
        env.update(DOCKD_RUNTIME_DIR=str(self.runtime), COLUMNS="500", **extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [DOCKD, "-c", str(self.config), *args]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, env=self.env(**env), check=False
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def start(self, *args: str, stdout: bool = False, **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env(**env),
            start_new_session=True,
        )
        _started.append(proc)
        return proc

    @contextlib.contextmanager
    def ledger(self) -> Iterator[Ledger]:
        led = open_ledger(self.ledger_url)
        try:
            yield led
        finally:
            led.close()

    def rows(self) -> list[Recording]:
        with self.ledger() as led, led.read() as s:
            return list(s.scalars(select(Recording).order_by(Recording.id)))

    def sessions(self) -> list[DockSession]:
        with self.ledger() as led, led.read() as s:
            return list(s.scalars(select(DockSession).order_by(DockSession.id)))

    def alerts(self, kind: str) -> list[Alert]:
        with self.ledger() as led, led.read() as s:
            return list(s.scalars(select(Alert).where(Alert.kind == kind).order_by(Alert.id)))

    def add_device(self, number: str, serial: str) -> None:
        with self.ledger() as led, led.session() as s:
            registry.add_device(
                s,
                number=number,
                serial=serial,
                brand="Test",
                model="BWC-1",
                at=NOW - timedelta(days=120),
                station="st-test",
                actor="admin",
            )


def make_station(root: Path, extra: str = "", *, ledger_url: str | None = None) -> Station:
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o750)  # the ledger's directory, as dockd wants it
    url = ledger_url or f"sqlite:///{root / 'ledger.sqlite3'}"
    config = root / "dockd.toml"
    config.write_text(config_text(root, extra, ledger_url=url), encoding="utf-8")
    return Station(root, config, url)
