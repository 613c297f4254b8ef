"""Mounting recorders: read-only, nosuid, nodev, noexec, under the runtime directory.

A recorder is mounted by the helper configured for its filesystem type, run as
an argument list (never through a shell). The kernel's own driver is preferred
where the running kernel has it; FUSE helpers (fusefat, exfat-fuse) take over
where it has not. Whatever the helper did, the mount table is read back: a
mount that is not read-only, nosuid, nodev and noexec is fixed with a bind
remount or taken down again, never used.

A filesystem that is already mounted (a desktop automounter under one of the
``automount_roots``) is used where it is and left mounted: it is never mounted
twice. A filesystem mounted anywhere else is not touched at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from dockd.config.dock import SAFE_DEVNODE, DockConfig, MountHelper, render
from dockd.dock.match import BlockEvent
from dockd.errors import DockdError

log = structlog.get_logger("dockd.dock")

MOUNTINFO = Path("/proc/self/mountinfo")
RO_FLAGS = ("ro", "nosuid", "nodev", "noexec")
RW_FLAGS = ("rw", "nosuid", "nodev", "noexec")
POLL_S = 0.05  # how often a helper run checks its stop event
MIN_HELPER_S = 0.5  # the least a helper gets, even past the stop deadline (a lazy unmount)
TIMED_OUT, ABANDONED = 124, 130  # exit codes _run reports for a helper it killed


class MountError(DockdError):
    """A recorder could not be mounted (or safely used where it is mounted)."""


class MountAbandoned(MountError):
    """The mount was given up because the recorder left or dockd is stopping."""


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    major: int
    minor: int
    mountpoint: Path
    options: frozenset[str]  # per-mount options (ro, nosuid, nodev, noexec ...)
    fstype: str
    source: str


_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse the kernel's mount table (see proc(5)); malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        major, _, minor = fields[2].partition(":")
        try:
            mj, mn = int(major), int(minor)
        except ValueError:
            continue
        out.append(
            MountEntry(
                major=mj,
                minor=mn,
                mountpoint=Path(_unescape(fields[4])),
                options=frozenset(fields[5].split(",")),
                fstype=tail[0],
                source=_unescape(tail[1]),
            )
        )
    return out


def read_mounts(path: Path = MOUNTINFO) -> list[MountEntry]:
    return parse_mountinfo(path.read_text(encoding="utf-8", errors="replace"))


def kernel_supports(fstype: str, *, release: str | None = None) -> bool:
    """The running kernel has ``fstype``: registered now, or as a loadable module."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/filesystems").read_text().splitlines():
            if line.split() and line.split()[-1] == fstype:
                return True
    base = Path("/lib/modules") / (release or os.uname().release)
    for index in ("modules.dep", "modules.builtin"):
        with contextlib.suppress(OSError):
            for line in (base / index).read_text().splitlines():
                name = Path(line.split(":", 1)[0]).name
                if name.split(".ko", 1)[0] == fstype:
                    return True
    return False


def _program_exists(program: str) -> bool:
    if "/" in program:
        return os.access(program, os.X_OK)
    return shutil.which(program) is not None


def choose_helper(
    helpers: Iterable[MountHelper],
    fstype: str,
    *,
    kernel_has: Callable[[str], bool] = kernel_supports,
    program_exists: Callable[[str], bool] = _program_exists,
) -> MountHelper | None:
    """The first helper for ``fstype`` that can run here, in configured order."""
    for h in helpers:
        if h.fstype != fstype or not program_exists(h.command[0]):
            continue
        if h.kernel and not kernel_has(fstype):
            continue
        return h
    return None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a helper and its process group (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(MIN_HELPER_S)  # SIGKILL cannot be refused; only a process in D state lingers


def mountpoint_name(ev: BlockEvent) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{ev.sys_name}-{ev.medium}")[:100]


@dataclass
class Mount:
    """A recorder's filesystem, mounted by us (``owned``) or found mounted."""

    path: Path
    devnode: str
    fstype: str
    owned: bool
    helper: MountHelper | None = None
    writable: bool = False

    @property
    def how(self) -> str:
        if not self.owned:
            return "automounter"
        assert self.helper is not None
        return ("kernel " if self.helper.kernel else "") + self.helper.command[0]


def _devnum(ev: BlockEvent) -> tuple[int, int] | None:
    try:
        return int(ev.properties["MAJOR"]), int(ev.properties["MINOR"])
    except (KeyError, ValueError):
        pass
    if ev.devnode:
        with contextlib.suppress(OSError):
            rdev = os.stat(ev.devnode).st_rdev
            return os.major(rdev), os.minor(rdev)
    return None


class Mounter:
    """Mounts and unmounts recorders with the configured helpers."""

    def __init__(self, cfg: DockConfig) -> None:
        self.cfg = cfg
        self.root = cfg.runtime_dir / "mnt"
        self._deadline: float | None = None

    # ------------------------------------------------------------------ finding

    def mounts_of(self, ev: BlockEvent) -> list[MountEntry]:
        """Where this device's filesystem is mounted now (by anyone)."""
        num = _devnum(ev)
        node = ev.devnode
        real = os.path.realpath(node) if node else None
        sources = {node, real} - {None}
        return [
            m
            for m in read_mounts()
            if (num is not None and (m.major, m.minor) == num) or m.source in sources
        ]

    def under_automount_root(self, path: Path) -> bool:
        return any(path.is_relative_to(r) for r in self.cfg.automount_roots)

    def existing(self, ev: BlockEvent) -> Mount | None:
        """The automounter's mount of this device, if any; refuses any other mount.

        Raises :class:`MountError` when the filesystem is mounted somewhere that is
        neither ours nor an automount root (the system's own disks, an admin's
        mount): dockd never mounts a filesystem twice and never takes one in use.
        """
        for m in self.mounts_of(ev):
            if self.under_automount_root(m.mountpoint):
                return Mount(m.mountpoint, ev.devnode or "", ev.fs_type or m.fstype, owned=False)
            if m.mountpoint.is_relative_to(self.root):
                continue  # ours, from an earlier session still being taken down
            raise MountError(
                f"{ev.devnode} is already mounted at {m.mountpoint}, which is not under "
                f"dock.automount_roots {[str(r) for r in self.cfg.automount_roots]}; dockd "
                "does not mount a filesystem twice: unmount it, or add that directory to "
                "dock.automount_roots if an automounter puts recorders there"
            )
        return None

    # ------------------------------------------------------------------ mounting

    def stop_by(self, deadline: float) -> None:
        """The daemon is stopping: from now on no helper may outlive ``deadline``.

        Every helper run (an unmount above all) is then bounded by the time left
        until ``deadline`` (``time.monotonic()``) instead of ``helper_timeout_s``
        (but never less than ``MIN_HELPER_S``, so a lazy unmount still gets its go).
        """
        self._deadline = deadline

    def _time_left(self) -> float:
        limit = self.cfg.helper_timeout_s
        if self._deadline is not None:
            limit = min(limit, max(MIN_HELPER_S, self._deadline - time.monotonic()))
        return limit

    def _run(self, argv: list[str], *, stop: threading.Event | None = None) -> tuple[int, str]:
        """Run a helper, bounded; its output goes to a file (a FUSE daemon may keep it open).

        The helper (and whatever it started in its process group, such as the
        ``mount.<type>`` program ``mount`` runs) is killed when it outlives its
        time (exit 124) or when ``stop`` is set while it runs (exit 130: a
        recorder unplugged, or dockd stopping, mid-mount).
        """
        limit = self._time_left()
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except FileNotFoundError as exc:
                return 127, str(exc)
            deadline = time.monotonic() + limit
            code: int | None = None
            why = ""
            while code is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    why = f"timed out after {limit:.1f} s"
                elif stop is not None and stop.is_set():
                    why = "abandoned: recorder removed or dockd stopping"
                if why:
                    _kill_group(proc)
                    return (TIMED_OUT if left <= 0 else ABANDONED), why
                try:
                    code = proc.wait(min(left, POLL_S) if stop is not None else left)
                except subprocess.TimeoutExpired:
                    continue
            out.seek(0)
            text = out.read()[-4000:].decode("utf-8", "replace").strip()
        return code, text

    def _entry_at(self, path: Path) -> MountEntry | None:
        entries = [m for m in read_mounts() if m.mountpoint == path]
        return entries[-1] if entries else None

    def mount(
        self,
        ev: BlockEvent,
        *,
        writable: bool = False,
        at: Path | None = None,
        stop: threading.Event | None = None,
    ) -> Mount:
        """Mount the device under the runtime directory with its helper.

        ``stop`` set while the helper runs kills it and takes down whatever it
        managed to mount: :class:`MountError`.
        """
        devnode, fstype = ev.devnode or "", ev.fs_type or ""
        if not SAFE_DEVNODE.match(devnode):
            raise MountError(f"refusing to mount {devnode!r}: not a plain /dev path")
        helper = choose_helper(self.cfg.mount_helpers, fstype)
        if helper is None:
            raise MountError(
                f"no usable mount helper for {fstype} on {devnode}: the kernel has no "
                f"{fstype} driver and no [[dock.mount_helpers]] program for {fstype} is "
                "installed (e.g. apt install fusefat exfat-fuse)"
            )
        options = helper.write_options if writable else helper.options
        if options is None:
            raise MountError(
                f"the {helper.command[0]} helper for {fstype} has no write_options, so "
                f"{devnode} cannot be mounted read-write for the wipe"
            )
        path = at or self.root / mountpoint_name(ev)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        if self._entry_at(path) is not None:
            raise MountError(f"{path} is already a mount point; is another dockd running?")
        argv = render(
            helper.command,
            device=devnode,
            mountpoint=str(path),
            options=render((options,), device=devnode)[0],
        )
        code, output = self._run(argv, stop=stop)
        entry = self._entry_at(path)
        if code != 0 or entry is None:
            if entry is not None:
                self._umount(path)
            with contextlib.suppress(OSError):
                path.rmdir()
            if code == ABANDONED:
                raise MountAbandoned(f"mounting {devnode} ({fstype}) abandoned: {output}")
            raise MountError(
                f"mounting {devnode} ({fstype}) with {argv[0]} failed "
                f"(exit {code}): {output or 'no output'}; check the device and "
                "[[dock.mount_helpers]]"
            )
        mount = Mount(path, devnode, fstype, owned=True, helper=helper, writable=writable)
        self._enforce(mount, entry)
        log.info(
            "mounted",
            devnode=devnode,
            mountpoint=str(path),
            helper=mount.how,
            mode="read-write" if writable else "read-only",
        )
        return mount

    def _enforce(self, mount: Mount, entry: MountEntry) -> None:
        """Make sure the mount carries its safety flags; a helper may ignore some."""
        wanted = RW_FLAGS if mount.writable else RO_FLAGS
        if all(f in entry.options for f in wanted):
            return
        argv = render(
            self.cfg.remount_command, options=",".join(wanted), mountpoint=str(mount.path)
        )
        code, output = self._run(argv)
        after = self._entry_at(mount.path)
        if code == 0 and after is not None and all(f in after.options for f in wanted):
            log.info(
                "mount flags enforced",
                mountpoint=str(mount.path),
                helper=mount.how,
                missing=[f for f in wanted if f not in entry.options],
            )
            return
        self.unmount(mount)
        raise MountError(
            f"{mount.devnode} was mounted by {mount.how} without {list(wanted)} and a bind "
            f"remount could not add them (exit {code}: {output}); refusing to use it"
        )

    # ---------------------------------------------------------------- unmounting

    def _umount(self, path: Path) -> bool:
        """A normal unmount; if the mount is still there, a lazy one.

        A mount stays when it is busy (EBUSY: a process has its working directory
        or an open file in it, perhaps not even ours) or when the unmount helper
        hangs (a FUSE daemon that does not answer). Neither may hold up a session's
        end or the daemon's stop: the lazy unmount detaches the mount point at
        once, and the filesystem goes when its last user lets go.
        """
        code, output = self._run(render(self.cfg.unmount_command, mountpoint=str(path)))
        if self._entry_at(path) is None:
            return True
        busy = output or f"exit {code}"
        code, output = self._run(render(self.cfg.lazy_unmount_command, mountpoint=str(path)))
        gone = self._entry_at(path) is None
        log.warning(
            "lazy unmount",
            mountpoint=str(path),
            reason=busy,
            exit_code=code,
            output=output or None,
            detached=gone,
        )
        return gone

    def unmount(self, mount: Mount) -> None:
        """Take down a mount we made (a found mount is left as it was)."""
        if not mount.owned:
            return
        ok = self._umount(mount.path)
        with contextlib.suppress(OSError):
            mount.path.rmdir()
        if ok:
            log.info("unmounted", devnode=mount.devnode, mountpoint=str(mount.path))
        else:
            log.error("unmount failed", devnode=mount.devnode, mountpoint=str(mount.path))

    def remount(
        self,
        mount: Mount,
        ev: BlockEvent,
        *,
        writable: bool,
        stop: threading.Event | None = None,
    ) -> Mount:
        """Mount again at the same place, read-write (for the wipe) or read-only."""
        if not mount.owned:
            raise MountError(f"{mount.path} was mounted by an automounter; dockd leaves it as is")
        self.unmount(mount)
        return self.mount(ev, writable=writable, at=mount.path, stop=stop)

    def cleanup_stale(self) -> list[Path]:
        """Unmount what a crashed dockd left under the runtime directory."""
        removed = []
        for m in reversed(read_mounts()):
            if m.mountpoint.is_relative_to(self.root):
                self._umount(m.mountpoint)
                removed.append(m.mountpoint)
        if self.root.is_dir():
            for child in self.root.iterdir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        return removed
