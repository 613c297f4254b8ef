"""The dock watcher: block-device events from udev's netlink socket (the only pyudev import).

An emitter thread reads the netlink socket and hands each event, as a plain
:class:`BlockEvent`, to a callback (the session manager's queue). It listens to
udev's source, where udevd has already probed the filesystem (``ID_FS_TYPE``,
``ID_FS_UUID``, ``ID_FS_LABEL``) and the USB identity (``ID_BUS``,
``ID_VENDOR_ID``, ``ID_SERIAL_SHORT``). Where no udevd runs (a container, a
rescue system) it falls back to the kernel's source, says so in the log, and the
same facts are read from sysfs and ``blkid`` instead (:func:`complete_event`).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyudev
import structlog

from dockd.config.dock import SAFE_DEVNODE, DockConfig, render
from dockd.dock.match import BlockEvent

log = structlog.get_logger("dockd.dock")

UDEV_CONTROL = Path("/run/udev/control")
_BLKID_KEYS = {
    "TYPE": "ID_FS_TYPE",
    "UUID": "ID_FS_UUID",
    "LABEL": "ID_FS_LABEL",
    "USAGE": "ID_FS_USAGE",
    "VERSION": "ID_FS_VERSION",
}
_USB_ATTRS = {
    "idVendor": "ID_VENDOR_ID",
    "idProduct": "ID_MODEL_ID",
    "serial": "ID_SERIAL_SHORT",
    "manufacturer": "ID_VENDOR",
    "product": "ID_MODEL",
}


def udevd_running(control: Path = UDEV_CONTROL) -> bool:
    """True when a udev daemon answers on its control socket.

    The socket file outlives a crashed or killed udevd, so its existence proves
    nothing: connecting does.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(control))
        except OSError:
            return False
    return True


def choose_source(setting: str, control: Path = UDEV_CONTROL) -> tuple[str, str]:
    """(source, why): ``udev`` when udevd runs (or is forced), else ``kernel``."""
    if setting != "auto":
        return setting, f"dock.udev_source = {setting!r}"
    if udevd_running(control):
        return "udev", f"udevd answers on {control}"
    return "kernel", (
        f"no udev daemon answers on {control}: listening to kernel uevents instead; "
        "filesystems are probed with blkid and USB identity is read from sysfs"
    )


def _event_of(dev: Any, action: str, source: str) -> BlockEvent:
    now_m, now_w = time.monotonic(), time.time()
    props = {str(k): str(v) for k, v in dev.properties.items()}
    return BlockEvent(
        action=action,
        devpath=str(dev.device_path),
        devnode=dev.device_node,
        sys_name=str(dev.sys_name),
        subsystem=str(dev.subsystem or ""),
        devtype=dev.device_type,
        properties=props,
        received=now_m,
        received_wall=now_w,
        source=source,
    )


def _usb_identity(dev: Any) -> dict[str, str]:
    """ID_BUS and the USB ids of the nearest USB parent, read from sysfs."""
    parent = dev.find_parent("usb", "usb_device")
    if parent is None:
        return {}
    out = {"ID_BUS": "usb"}
    for attr, key in _USB_ATTRS.items():
        with contextlib.suppress(KeyError, UnicodeDecodeError, OSError):
            value = parent.attributes.asstring(attr).strip()
            if value:
                out[key] = value
    return out


def _unescape(value: str) -> str:
    """blkid's export format escapes unusual characters as ``\\xHH`` or ``\\c``."""

    def one(m: re.Match[str]) -> str:
        text = m.group(0)
        return chr(int(text[2:], 16)) if text.startswith("\\x") else text[1:]

    return re.sub(r"\\x[0-9a-fA-F]{2}|\\.", one, value)


def probe_filesystem(cfg: DockConfig, devnode: str) -> dict[str, str]:
    """``ID_FS_*`` properties of a device, from blkid (used without udevd)."""
    if not SAFE_DEVNODE.match(devnode):
        return {}
    argv = render(cfg.blkid_command, device=devnode)
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            timeout=cfg.helper_timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("blkid failed", devnode=devnode, error=str(exc))
        return {}
    if proc.returncode != 0:  # 2: nothing found (no medium, unknown content)
        return {}
    out: dict[str, str] = {}
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key in _BLKID_KEYS:
            out[_BLKID_KEYS[key]] = _unescape(value)
    return out


def current_diskseq(sys_name: str) -> str | None:
    """The kernel's disk sequence number of the medium in the slot now (Linux >= 5.15)."""
    try:
        return Path(f"/sys/class/block/{sys_name}/diskseq").read_text().strip() or None
    except OSError:
        return None


def superseded(ev: BlockEvent) -> bool:
    """The medium changed since this add/change event was sent: a newer event follows.

    (``losetup`` first creates a loop device, then configures it: two events,
    the first one carrying the old sequence number but, once probed, the new
    filesystem.)
    """
    seq = ev.prop("DISKSEQ")
    if ev.action == "remove" or seq is None:
        return False
    now = current_diskseq(ev.sys_name)
    return now is not None and now != seq


def _has_medium(sys_name: str) -> bool:
    try:
        return int(Path(f"/sys/class/block/{sys_name}/size").read_text().strip()) > 0
    except (OSError, ValueError):
        return False


def complete_event(cfg: DockConfig, ev: BlockEvent) -> BlockEvent:
    """Add what udevd would have added to a kernel-source event (filesystem, USB ids).

    Udev-source events are returned unchanged. Called from the dispatcher, never
    from the emitter, so a slow blkid cannot make the netlink socket overflow.
    """
    if ev.source != "kernel" or ev.action == "remove" or not ev.devnode:
        return ev
    if not _has_medium(ev.sys_name):
        return ev
    return replace(ev, properties={**ev.properties, **probe_filesystem(cfg, ev.devnode)})


class UdevWatcher:
    """Emitter thread over a pyudev netlink monitor, stoppable at any moment."""

    def __init__(self, cfg: DockConfig, emit: Callable[[BlockEvent], None]) -> None:
        self._cfg = cfg
        self._emit = emit
        self._context = pyudev.Context()
        self.source, self.why = choose_source(cfg.udev_source)
        self._monitor: Any = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def start(self) -> None:
        """Open the netlink socket and start reading; events from now on are not lost."""
        if self.source == "kernel":
            log.warning("udev source fallback", source="kernel", why=self.why)
        else:
            log.info("listening for block devices", source=self.source, why=self.why)
        self._monitor = pyudev.Monitor.from_netlink(self._context, source=self.source)
        self._monitor.filter_by("block")
        with contextlib.suppress(OSError, AttributeError):
            self._monitor.set_receive_buffer_size(8 * 1024 * 1024)
        self._monitor.start()
        self._thread = threading.Thread(target=self._run, name="dock-watcher", daemon=True)
        self._thread.start()

    def coldplug(self) -> list[BlockEvent]:
        """Block devices present before we started, as ``add`` events.

        With udevd, only devices udev has finished with are listed (the others
        arrive as events); their filesystem facts come from udev's database.
        """
        out = []
        for dev in self._context.list_devices(subsystem="block"):
            if self.source == "udev" and not dev.is_initialized:
                continue
            ev = _event_of(dev, "add", "kernel" if self.source == "kernel" else "coldplug")
            if self.source == "kernel":
                ev = _with_usb(ev, dev)
            out.append(ev)
        return out

    def _run(self) -> None:
        mon = self._monitor
        assert mon is not None
        while True:
            try:
                ready, _, _ = select.select([mon.fileno(), self._wake_r], [], [])
            except InterruptedError:
                continue
            if self._wake_r in ready:
                return
            while True:
                try:
                    dev = mon.poll(timeout=0)
                except OSError as exc:  # ENOBUFS: the kernel dropped events
                    log.error("udev monitor receive failed; re-reading devices", error=str(exc))
                    for ev in self.coldplug():  # a docked medium is not docked twice
                        self._emit(ev)
                    break
                if dev is None:
                    break
                if dev.subsystem != "block":
                    continue
                ev = _event_of(dev, str(dev.action or "change"), self.source)
                if self.source == "kernel" and ev.action != "remove":
                    ev = _with_usb(ev, dev)
                self._emit(ev)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading events; waits at most ``timeout`` s for the emitter thread."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():  # busy in a callback: it sees the wake-up next
                log.warning("udev watcher thread still busy at stop")
                return
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._monitor = None


def _with_usb(ev: BlockEvent, dev: Any) -> BlockEvent:
    usb = _usb_identity(dev)
    if not usb:
        return ev
    return replace(ev, properties={**usb, **ev.properties})
