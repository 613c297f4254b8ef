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
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from conftest import need
from dockd.dock.watcher import udevd_running

MiB = 1024 * 1024
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
    """``python -m dockd --config X run`` as a subprocess, with sd_notify wired up."""

    def __init__(self, config: Path, log_path: Path, *, watchdog_usec: int | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.watchdog_usec = watchdog_usec
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.notifications: list[str] = []

    def start(self, timeout: float = 60) -> Daemon:
        address = f"@dockd-test-{secrets.token_hex(6)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:])
        env = {**os.environ, "NOTIFY_SOCKET": address}
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
        self.wait_notify("READY=1", timeout)
        return self

    def _drain(self, timeout: float) -> None:
        assert self.sock is not None
        self.sock.settimeout(timeout)
        with contextlib.suppress(TimeoutError, BlockingIOError):
            while True:
                self.notifications.append(self.sock.recv(4096).decode())
                self.sock.settimeout(0.0)

    def wait_notify(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in n for n in self.notifications):
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"dockd exited ({self.proc.returncode}) before {text}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text} from dockd within {timeout} s:\n{self.tail()}")
            self._drain(0.2)

    def terminate(self, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._drain(0.05)
        return code, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(30)
        self.kill()
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
