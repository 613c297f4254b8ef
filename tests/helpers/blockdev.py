"""Real block devices for the dock tests: udevd, FAT32/exFAT images, loop devices, the daemon.

Nothing here is a fake. ``Udevd`` runs the system's systemd-udevd (and stops it
again); images are made with mkfs.vfat/mkfs.exfat on sparse files and filled
with mtools or through a FUSE mount; ``Loop`` attaches them with losetup, which
makes the kernel send real uevents; ``Daemon`` runs ``python -m dockd run`` as a
subprocess and talks sd_notify with it over a real datagram socket.

One thing the kernel will not do for a test is pull a USB plug. ``losetup -d``
on a loop device that a mount holds only sets auto-clear (the device lives on
until the mount lets go), and no uevent is sent. :meth:`Loop.unplug` therefore
detaches the loop device *and* asks the kernel to send the ``remove`` uevent a
vanished USB disk sends (``echo remove > /sys/class/block/loopN/uevent``); the
event travels kernel -> udevd -> netlink -> dockd like a real one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import blake3
from sqlalchemy import select

from dockd import store
from dockd.clock import FixedClock
from dockd.config import Config, parse_config
from dockd.dock.watcher import udevd_running
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Alert, DockSession, Recording
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import register
from tests.helpers.skips import need

MiB = 1024 * 1024
BIG = 256 * MiB
# Copies of BIG last >= 2.6 s on any machine (fusefat alone is slower here; a kernel vfat
# reading from the page cache is not): time to pull the plug, kill or stop mid-copy.
MID_COPY = "copy_limit_mb_s = 100"
TOOLS = (
    "losetup",
    "mkfs.vfat",
    "mkfs.exfat",
    "exfatlabel",
    "mcopy",
    "mdir",
    "blkid",
    "mount",
    "umount",
    "fusefat",
    "mount.exfat-fuse",
    "fsck.vfat",
    "fsck.exfat",
)
UDEVD_CANDIDATES = ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd")
T = TypeVar("T")


def udevd_binary() -> str | None:
    found = shutil.which("systemd-udevd")
    return found or next((p for p in UDEVD_CANDIDATES if os.access(p, os.X_OK)), None)


def need_blockdev(why: str) -> None:
    """Skip (or fail under CI) unless root and every tool of the dock tests is here."""
    need(root=True, tools=TOOLS, why=why)
    if udevd_binary() is None:
        need(tools=("systemd-udevd",), why=why)
    if not Path("/dev/fuse").exists() or not Path("/dev/loop-control").exists():
        need(tools=("/dev/fuse and /dev/loop-control",), why=why)


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool; raise with its output when it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc


def wait_for(what: str, fn: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------------------- udevd


class Udevd:
    """systemd-udevd for the test run: started here and stopped here.

    If a udevd already answers (the host runs one), it is used and left alone.
    """

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Udevd:
        if udevd_running():
            return self
        binary = udevd_binary()
        assert binary is not None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for("systemd-udevd to answer on /run/udev/control", udevd_running, 15)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


# ---------------------------------------------------------------------------- images


def _sparse(path: Path, size_mb: int) -> None:
    with path.open("wb") as fh:
        fh.truncate(size_mb * MiB)


def fat_image(path: Path, tree: Path, label: str, size_mb: int = 64) -> Path:
    """A FAT32 image holding ``tree`` (copied in with mtools' mcopy)."""
    _sparse(path, size_mb)
    run(["mkfs.vfat", "-F", "32", "-n", label, str(path)])
    env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"}
    children = sorted(str(p) for p in tree.iterdir())
    run(["mcopy", "-s", "-m", "-i", str(path), *children, "::/"], env=env)
    return path


def exfat_image(path: Path, tree: Path, label: str, size_mb: int = 64) -> Path:
    """An exFAT image holding ``tree``, filled through exfat-fuse on a loop device.

    The image is built under a throw-away label and renamed afterwards, so a
    running dockd whose rules match ``label`` never sees it half-filled.
    """
    _sparse(path, size_mb)
    run(["mkfs.exfat", "-L", "BUILDING", str(path)])
    mnt = path.with_suffix(".build")
    mnt.mkdir()
    loop = run(["losetup", "--find", "--show", str(path)]).stdout.strip()
    try:
        run(["mount.exfat-fuse", "-o", "rw", loop, str(mnt)])
        try:
            run(["cp", "-r", "--preserve=timestamps", f"{tree}/.", str(mnt)])
        finally:
            run(["umount", str(mnt)])
    finally:
        wait_for(
            f"{loop} to detach",
            lambda: subprocess.run(["losetup", "-d", loop], capture_output=True).returncode == 0,
            10,
        )
        mnt.rmdir()
    run(["exfatlabel", str(path), label])
    return path


def image_files(image: Path) -> list[str]:
    """Relative paths of the regular files on a FAT image (mtools, no mount)."""
    out = run(
        ["mdir", "-/", "-b", "-i", str(image), "::"],
        env={**os.environ, "LANG": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    return sorted(
        line.removeprefix("::/") for line in out.splitlines() if line and not line.endswith("/")
    )


# ---------------------------------------------------------------------------- loop


class Loop:
    """An image attached to a loop device; detached again however the test ends."""

    def __init__(self, image: Path) -> None:
        self.image = image.resolve()
        self.dev: str | None = None

    @property
    def name(self) -> str:
        assert self.dev is not None
        return Path(self.dev).name

    def attach(self) -> str:
        self.dev = run(["losetup", "--find", "--show", str(self.image)]).stdout.strip()
        return self.dev

    def bound(self) -> bool:
        """The loop device still serves our image (not yet auto-cleared)."""
        if self.dev is None:
            return False
        try:
            backing = Path(f"/sys/class/block/{self.name}/loop/backing_file").read_text()
        except OSError:
            return False
        return backing.strip() == str(self.image)

    def detach(self) -> None:
        if self.bound():
            assert self.dev is not None
            subprocess.run(["losetup", "-d", self.dev], capture_output=True, check=False)

    def unplug(self) -> None:
        """What pulling a USB recorder does: the device goes, the kernel says ``remove``."""
        name = self.name
        self.detach()
        Path(f"/sys/class/block/{name}/uevent").write_text("remove\n")

    def wait_released(self, timeout: float = 20) -> None:
        wait_for(f"{self.dev} to be released", lambda: not self.bound(), timeout)


# ---------------------------------------------------------------------------- daemon


class Daemon:
    """``python -m dockd --config X run`` as a subprocess, with sd_notify wired up.

    Like systemd, the harness reads the notify socket all the time (a thread), so
    ``notifications`` holds every message in the order sent.
    """

    def __init__(
        self,
        config: Path,
        log_path: Path,
        *,
        watchdog_usec: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.log_path = log_path
        self.watchdog_usec = watchdog_usec
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.notifications: list[str] = []
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()

    def spawn(self) -> Daemon:
        """Start the process (and the notify reader); do not wait for READY=1."""
        address = f"@dockd-test-{secrets.token_hex(6)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:])
        self.sock.settimeout(0.1)
        self._reader = threading.Thread(target=self._read, name="notify-reader", daemon=True)
        self._reader.start()
        env = {**os.environ, "NOTIFY_SOCKET": address, **self.extra_env}
        env.pop("DOCKD_CONFIG", None)
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dockd", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self

    def start(self, timeout: float = 60) -> Daemon:
        self.spawn()
        self.wait_notify("READY=1", timeout)
        return self

    def _read(self) -> None:
        sock = self.sock
        assert sock is not None
        while not self._closing.is_set():
            try:
                self.notifications.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_notify(self, text: str, timeout: float, *, after: int = 0) -> None:
        """Wait for a message containing ``text`` among those from index ``after`` on."""
        deadline = time.monotonic() + timeout
        while not any(text in n for n in self.notifications[after:]):
            if self.proc is not None and self.proc.poll() is not None:
                time.sleep(0.1)  # let the reader take what the process sent before exiting
                if any(text in n for n in self.notifications[after:]):
                    return
                raise AssertionError(
                    f"dockd exited ({self.proc.returncode}) before {text}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text} from dockd within {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took). ``timeout`` only guards the test."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        took = time.monotonic() - t0
        self._stop_reader()
        return code, took

    def _stop_reader(self) -> None:
        """Stop the reader once it has taken every message already sent."""
        if self._reader is None or self.sock is None:
            return
        self._closing.set()
        self._reader.join(5)
        self._reader = None
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError, OSError):
            while True:
                self.notifications.append(self.sock.recv(4096).decode())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(30)
        self.kill()
        self._stop_reader()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # ------------------------------------------------------------------ the log

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def events(self, name: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The JSON log events (optionally one kind, with these field values)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if not isinstance(ev, dict):
                continue
            if name is not None and ev.get("event") != name:
                continue
            if all(ev.get(k) == v for k, v in fields.items()):
                out.append(ev)
        return out

    def wait_event(self, name: str, timeout: float, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"dockd exited while waiting for {name!r}:\n{self.tail()}")
            evs = self.events(name, **fields)
            return evs[-1] if evs else None

        try:
            return wait_for(f"log event {name!r} {fields}", found, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None


# ---------------------------------------------------------------------------- cleanup


def unmount_under(root: Path) -> None:
    """Take down every mount below ``root`` (a test that failed half-way)."""
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        mp = line.split()[4]
        if Path(mp).is_relative_to(root):
            subprocess.run(["umount", "--lazy", mp], capture_output=True, check=False)


def mounts_under(root: Path) -> list[str]:
    return [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if Path(line.split()[4]).is_relative_to(root)
    ]


def new_label_prefix() -> str:
    """A label prefix no other test (or engineer) on this machine uses: 'D' + 5 hex."""
    return "D" + secrets.token_hex(3).upper()[:5]


@contextlib.contextmanager
def cleanup(*actions: Callable[[], None]) -> Iterator[None]:
    try:
        yield
    finally:
        for act in actions:
            with contextlib.suppress(Exception):
                act()


# ---------------------------------------------------------------------------- a dock


@dataclass
class DockEnv:
    """One test's dock: directories, config, ledger, udevd, loops, daemons; all torn down."""

    tmp: Path
    clock: FixedClock
    prefix: str = field(default_factory=new_label_prefix)
    udevd: Udevd | None = None
    loops: list[Loop] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)
    config_path: Path | None = None
    ledger: Ledger | None = None
    _config: Config | None = None

    @property
    def run_dir(self) -> Path:
        return self.tmp / "run"

    @property
    def store_root(self) -> Path:
        return self.tmp / "store"

    @property
    def config(self) -> Config:
        assert self._config is not None
        return self._config

    def configure(self, *, dock: str = "", ingest: str = "", automount_wait: float = 0) -> Config:
        text = f"""
[station]
unit = "Test Station"
id = "st-test"
timezone = "Asia/Shanghai"

[store]
root = "{self.store_root}"
quarantine = "{self.tmp / "quarantine"}"

[ledger]
url = "sqlite:///{self.tmp / "ledger.sqlite3"}"

[logging]
level = "info"
format = "auto"

[ingest]
{ingest}

[dock]
runtime_dir = "{self.run_dir}"
automount_roots = ["{self.tmp / "media"}"]
automount_wait_s = {automount_wait}
{dock}

[[dock.match]]
name = "test-images"
devname = "/dev/loop*"
fs_labels = ["{self.prefix}*"]
"""
        self.config_path = self.tmp / "dockd.toml"
        self.config_path.write_text(text)
        self._config = parse_config(text, source=str(self.config_path), base=self.tmp)
        if self.ledger is None:
            self.ledger = open_ledger(self._config.ledger.url)
        return self._config

    def recorder(self, name: str, **kw: Any) -> Recorder:
        return make_recorder(self.tmp / "trees" / name, **kw)

    def label(self, n: int) -> str:
        return f"{self.prefix}{n}"

    def fat(self, rec: Recorder, n: int, size_mb: int = 64) -> Path:
        return fat_image(self.tmp / f"rec{n}.img", rec.root, self.label(n), size_mb)

    def exfat(self, rec: Recorder, n: int, size_mb: int = 64) -> Path:
        return exfat_image(self.tmp / f"rec{n}.img", rec.root, self.label(n), size_mb)

    def attach(self, image: Path) -> Loop:
        loop = Loop(image)
        self.loops.append(loop)
        loop.attach()
        return loop

    def daemon(self, **kw: Any) -> Daemon:
        assert self.config_path is not None
        d = Daemon(self.config_path, self.tmp / "dockd.log", **kw)
        self.daemons.append(d)
        return d.start()

    def register(self, rec: Recorder, *, assign: bool = True) -> None:
        assert self.ledger is not None
        register(self.ledger, self.clock, rec, assign=assign)

    # ------------------------------------------------------------------ ledger

    def sessions(self) -> list[DockSession]:
        assert self.ledger is not None
        with self.ledger.read() as s:
            return list(s.scalars(select(DockSession).order_by(DockSession.id)))

    def wait_sessions(self, n: int, timeout: float = 90) -> list[DockSession]:
        """Wait until ``n`` sessions exist and none is running."""

        def done() -> list[DockSession] | None:
            rows = self.sessions()
            ended = [r for r in rows if r.outcome != "running"]
            return rows if len(rows) >= n and len(ended) == len(rows) else None

        try:
            return wait_for(f"{n} finished dock session(s)", done, timeout, every=0.2)
        except AssertionError:
            tail = self.daemons[-1].tail() if self.daemons else ""
            raise AssertionError(f"sessions: {self.sessions()!r}\n{tail}") from None

    def recordings(self, session_id: int | None = None) -> list[Recording]:
        assert self.ledger is not None
        q = select(Recording).order_by(Recording.id)
        if session_id is not None:
            q = q.where(Recording.session_id == session_id)
        with self.ledger.read() as s:
            return list(s.scalars(q))

    def alerts(self, kind: str) -> list[Alert]:
        assert self.ledger is not None
        with self.ledger.read() as s:
            return list(s.scalars(select(Alert).where(Alert.kind == kind)))

    def parts(self) -> list[Path]:
        roots = (self.store_root, self.tmp / "quarantine")
        return [p for r in roots for p in (r / store.INCOMING).glob("*.part")]

    def copying(self, min_bytes: int = 32 * MiB) -> Path | None:
        """The temporary file of a copy in progress, once it holds ``min_bytes``."""
        for p in self.parts():
            try:
                if p.stat().st_size >= min_bytes:
                    return p
            except FileNotFoundError:
                continue
        return None

    def teardown(self) -> None:
        for d in self.daemons:
            d.close()
        unmount_under(self.tmp)
        for loop in self.loops:
            loop.detach()
        if self.udevd is not None:
            self.udevd.stop()
        if self.ledger is not None:
            self.ledger.close()


def b3(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


def assert_stored_byte_for_byte(e: DockEnv, rec: Recorder, root: Path | None = None) -> None:
    rows = [r for r in e.recordings() if r.device_ref == rec.device_number]
    by_path = {r.source_path: r for r in rows}
    assert len(rows) == len(by_path) == len(rec.recordings), sorted(by_path)
    for r in rec.recordings:
        row = by_path[r.relpath]
        assert row.blake3 == b3(rec.path(r)), r.relpath
        assert b3((root or e.store_root) / row.store_path) == row.blake3
        assert row.verified


@contextlib.contextmanager
def dock_env(tmp: Path, clock: FixedClock, *, udevd: bool = True) -> Iterator[DockEnv]:
    """A test's dock (with its own systemd-udevd unless the host runs one); torn down after."""
    if udevd:
        need_blockdev("the dock tests use loop devices, FUSE mounts and systemd-udevd")
    else:
        need_blockdev("the dock tests use loop devices and FUSE mounts")
    e = DockEnv(tmp, clock)
    if udevd:
        e.udevd = Udevd(tmp / "udevd.log")
    try:
        if e.udevd is not None:
            e.udevd.start()
        yield e
    finally:
        e.teardown()
