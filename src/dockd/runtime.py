"""The machine's runtime directory and the locks that live in it; and the process's
heap held still while a large report is built (:func:`heap_held`).

Locks are ``flock``s on files under the runtime directory: the kernel drops them
when their holder dies (kill -9, power loss), so a crash never leaves a lock to
clean up. The directory is ``$DOCKD_RUNTIME_DIR`` or ``/run/dockd``: deliberately
not a config key, so two configs cannot make two daemons or two ingests of one
recorder that do not see each other. A user who cannot create ``/run/dockd``
(a demo run without root) gets ``$XDG_RUNTIME_DIR/dockd`` or a per-user temp dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

RUNTIME_ENV = "DOCKD_RUNTIME_DIR"
SYSTEM_RUNTIME_DIR = Path("/run/dockd")
#: The daemon's lock, in the runtime directory: held by ``dockd run`` while it lives.
#: Here, not in dockd.daemon.service, so that whoever checks it (``dockd health``,
#: ``dockd ledger``) need not import the daemon and all it watches with.
LOCK_NAME = "dockd.lock"
_POLL_S = 0.2


def runtime_dir() -> Path:
    """The runtime directory, created (0750) if needed."""
    env = os.environ.get(RUNTIME_ENV)
    candidates = [Path(env)] if env else [SYSTEM_RUNTIME_DIR]
    if not env:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg:
            candidates.append(Path(xdg) / "dockd")
        candidates.append(Path(tempfile.gettempdir()) / f"dockd-{os.getuid()}")
    last: OSError | None = None
    for path in candidates:
        try:
            path.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            last = exc
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    raise OSError(f"no usable runtime directory among {[str(p) for p in candidates]}: {last}")


def _boot_time() -> float:
    """When this machine booted (POSIX seconds), from /proc/stat; 0 when unknown."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0.0


BOOT_TIME = _boot_time()


UNKNOWN = "unknown"  # a boot or machine id that cannot be read


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return UNKNOWN


BOOT_ID = _boot_id()  # differs after every reboot


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            if found := Path(path).read_text().strip():
                return found
    return UNKNOWN


MACHINE_ID = _machine_id()  # this installation's, unlike a host name shared by clones


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat``):
    with its PID, it names one process of one boot. None when there is no such process
    (or no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state is first
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def before_boot(timestamp: float) -> bool:
    """Was ``timestamp`` (POSIX seconds) before this boot? Then no process of it lives."""
    return timestamp < BOOT_TIME


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` (on this machine) still running?"""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class FileLock:
    """An exclusive ``flock`` on one file; the file holds the holder's PID and a note."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, note: str = "") -> bool:
        """Take the lock if it is free; never blocks."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{note}\n".encode(), 0)
        self._fd = fd
        return True

    def acquire(self, note: str = "", *, stop: threading.Event | None = None) -> bool:
        """Wait for the lock; returns False if ``stop`` was set first."""
        while not self.try_acquire(note):
            if stop is not None:
                if stop.wait(_POLL_S):
                    return False
            else:
                threading.Event().wait(_POLL_S)
        return True

    def holder(self) -> int | None:
        """The PID written by the process that holds (or last held) the lock."""
        try:
            first = self.path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


# ------------------------------------------------------------------------ the heap

_held = 0
_held_lock = threading.Lock()


@contextlib.contextmanager
def heap_held() -> Iterator[None]:
    """While a report or listing builds its hundreds of thousands of rows: the objects
    the process already had are left out of the cyclic garbage collector's passes
    (``gc.freeze``), and given back to it after (``gc.unfreeze``).

    Each full pass otherwise walks every object of the process (its modules, the
    ORM's registries, the config) again for every few thousand rows made: 10-15 % of
    a month's gaps report or untagged file list at ten million files, and most of its
    spread. Nothing is lost: garbage among the held objects is collected once they
    are given back. Threads nest: the last one out gives the heap back.
    """
    global _held
    with _held_lock:
        if _held == 0:
            gc.freeze()
        _held += 1
    try:
        yield
    finally:
        with _held_lock:
            _held -= 1
            if _held == 0:
                gc.unfreeze()
