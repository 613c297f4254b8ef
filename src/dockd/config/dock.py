"""``[dock]``: how the daemon recognises, mounts and takes recorders.

Three groups of keys:

* **match rules** (``[[dock.match]]``): which block devices are recorders. A
  device is docked when it carries a filesystem listed in ``filesystems`` and at
  least one rule matches it; every condition a rule names must hold. The default
  rule takes any USB device; allow-lists narrow it to vendors, models, serials.
* **mount helpers** (``[[dock.mount_helpers]]``): one command per filesystem type,
  run as an argument list (never through a shell). The first helper whose
  program exists (and, for ``kernel = true``, whose filesystem the running kernel
  supports) is used, so the kernel's vfat/exfat is preferred and FUSE helpers
  (fusefat, exfat-fuse) take over where the kernel has no driver.
* **sessions**: parallelism, the runtime directory, the optional wipe, shutdown bound.
* **what the officer sees** (``[[dock.bay]]``, ``status_file``, ``on_event``): each USB
  port's name (by udev ``ID_PATH``) and optional LED, the state file ``dockd status``
  reads, and the command run, without a shell, on each dock event.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from dockd.config.base import AbsolutePath, Section

#: Mount options every read-only helper must pass (R9: the recorder is never written).
REQUIRED_RO = frozenset({"ro", "nosuid", "nodev", "noexec"})
#: Mount options a read-write (wipe) helper must still pass.
REQUIRED_RW = frozenset({"nosuid", "nodev", "noexec"})
COMMAND_FIELDS = frozenset({"device", "mountpoint", "options"})
OPTION_FIELDS = frozenset({"device"})
_FSTYPE = r"^[a-z0-9_.+-]{1,32}$"
#: Placeholders of ``on_event``: the values of the event (see docs/dock.md).
EVENT_FIELDS = frozenset({"event", "bay", "state", "device", "devnode"})


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def _check_fields(values: tuple[str, ...], allowed: frozenset[str], what: str) -> None:
    for v in values:
        try:
            unknown = _fields(v) - allowed
        except ValueError as exc:
            raise ValueError(f"{what} {v!r}: {exc}") from exc
        if unknown:
            raise ValueError(
                f"{what} {v!r} uses unknown placeholder(s) {sorted(unknown)}; "
                f"allowed: {sorted(allowed)}"
            )


class MatchRule(Section):
    """Which block devices are recorders. Every condition given must hold.

    String lists are allow-lists (any entry may match, case-insensitive);
    ``devname``, ``fs_labels`` and ``properties`` values are shell-style globs.
    """

    name: str = "rule"
    bus: str | None = None  # udev ID_BUS, e.g. "usb" (also true for a USB parent in sysfs)
    subsystem: str = "block"
    devname: str | None = None  # glob on the device node, e.g. "/dev/loop*"
    vendors: tuple[str, ...] = ()  # ID_VENDOR_ID (e.g. "1d6b") or ID_VENDOR (e.g. "ZFY")
    models: tuple[str, ...] = ()  # ID_MODEL_ID or ID_MODEL
    serials: tuple[str, ...] = ()  # ID_SERIAL_SHORT or ID_SERIAL
    fs_labels: tuple[str, ...] = ()  # globs on ID_FS_LABEL
    properties: dict[str, str] = Field(default_factory=dict)  # udev property -> glob

    @model_validator(mode="after")
    def _not_everything(self) -> MatchRule:
        if not (
            self.bus
            or self.devname
            or self.vendors
            or self.models
            or self.serials
            or self.fs_labels
            or self.properties
        ):
            raise ValueError(
                f"match rule {self.name!r} has no condition and would take every block "
                "device, the system disk included; give at least bus, devname, vendors, "
                "models, serials, fs_labels or properties"
            )
        return self


class MountHelper(Section):
    """How to mount one filesystem type: an argument list with placeholders.

    ``{device}`` is the device node, ``{mountpoint}`` the directory under the
    runtime directory, ``{options}`` the ``options`` (read-only mount) or the
    ``write_options`` (the optional wipe); options may use ``{device}`` too.
    """

    fstype: Annotated[str, Field(pattern=_FSTYPE)]
    command: tuple[str, ...]
    options: str = "ro,nosuid,nodev,noexec"
    write_options: str | None = None  # None: this helper cannot mount for a wipe
    kernel: bool = False  # True: used only when the running kernel has this filesystem

    @field_validator("command")
    @classmethod
    def _command_ok(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not value[0]:
            raise ValueError("must name a program, e.g. ['fusefat', '-o', '{options}', ...]")
        _check_fields(value, COMMAND_FIELDS, "argument")
        joined = " ".join(value)
        for needed in ("{device}", "{mountpoint}"):
            if needed not in joined:
                raise ValueError(f"must contain {needed}")
        return value

    @field_validator("options")
    @classmethod
    def _ro_ok(cls, value: str) -> str:
        _check_fields((value,), OPTION_FIELDS, "options")
        missing = REQUIRED_RO - {o.strip() for o in value.split(",")}
        if missing:
            raise ValueError(
                f"must include {sorted(missing)}: recorders are mounted read-only, "
                "nosuid, nodev, noexec"
            )
        return value

    @field_validator("write_options")
    @classmethod
    def _rw_ok(cls, value: str | None) -> str | None:
        if value is None:
            return value
        _check_fields((value,), OPTION_FIELDS, "write_options")
        opts = {o.strip() for o in value.split(",")}
        missing = REQUIRED_RW - opts
        if missing:
            raise ValueError(f"must include {sorted(missing)} (even for the wipe)")
        if "ro" in opts:
            raise ValueError("is for the read-write wipe mount and must not contain 'ro'")
        return value


class Bay(Section):
    """One USB port of the dock: its name for the officer, and its LED if it has one.

    ``id_path`` is udev's ``ID_PATH`` of the port (``udevadm info /dev/sdX | grep
    ID_PATH``): the same for whatever recorder is plugged into that port.
    """

    name: Annotated[str, Field(min_length=1, max_length=64)]
    id_path: Annotated[str, Field(min_length=1, max_length=256)]
    led: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_:.+-]{1,64}$")] = None


_RO = "ro,nosuid,nodev,noexec"


def _kernel(fstype: str, extra: str) -> MountHelper:
    """The running kernel's own driver for ``fstype``, through mount(8)."""
    return MountHelper(
        fstype=fstype,
        kernel=True,
        command=("mount", "-t", fstype, "-o", "{options}", "{device}", "{mountpoint}"),
        options=f"{_RO},{extra}",
        write_options=f"rw,nosuid,nodev,noexec,{extra}",
    )


DEFAULT_HELPERS: tuple[MountHelper, ...] = (
    _kernel("vfat", "utf8,shortname=mixed"),
    MountHelper(
        fstype="vfat",
        command=("fusefat", "-o", "{options}", "{device}", "{mountpoint}"),
        options=f"{_RO},fsname={{device}}",
        write_options="rw+,nosuid,nodev,noexec,fsname={device}",
    ),
    _kernel("exfat", "iocharset=utf8"),
    MountHelper(
        fstype="exfat",
        command=("mount.exfat-fuse", "-o", "{options}", "{device}", "{mountpoint}"),
        options=_RO,
        write_options="rw,nosuid,nodev,noexec",
    ),
)

DEFAULT_MATCH: tuple[MatchRule, ...] = (MatchRule(name="usb-storage", bus="usb"),)


class DockConfig(Section):
    """Dock watcher, mount helpers and session limits (see config.example.toml)."""

    runtime_dir: Path = Path("/run/dockd")
    udev_source: Literal["auto", "udev", "kernel"] = "auto"
    filesystems: tuple[Annotated[str, Field(pattern=_FSTYPE)], ...] = ("vfat", "exfat")
    match: tuple[MatchRule, ...] = DEFAULT_MATCH
    mount_helpers: tuple[MountHelper, ...] = DEFAULT_HELPERS
    unmount_command: tuple[str, ...] = ("umount", "{mountpoint}")
    lazy_unmount_command: tuple[str, ...] = ("umount", "--lazy", "{mountpoint}")
    remount_command: tuple[str, ...] = ("mount", "-o", "remount,bind,{options}", "{mountpoint}")
    blkid_command: tuple[str, ...] = ("blkid", "--probe", "--output", "export", "{device}")
    helper_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    automount_roots: tuple[Path, ...] = (Path("/media"), Path("/run/media"))
    automount_wait_s: Annotated[float, Field(ge=0, le=600)] = 2.0
    max_parallel: Annotated[int, Field(ge=1, le=64)] = 8
    copy_limit_mb_s: Annotated[float, Field(ge=0)] = 0.0  # per session; 0: no limit
    low_free_percent: Annotated[float, Field(ge=0, le=100)] = 10.0
    wipe_after_ingest: bool = False
    stop_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    bay: tuple[Bay, ...] = ()
    status_file: AbsolutePath = Path("/run/dockd/status.json")
    on_event: tuple[str, ...] = ()  # argv, e.g. ["/usr/local/bin/dock-led", "{event}"]
    on_event_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0

    @field_validator("on_event")
    @classmethod
    def _event_command(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value and not value[0]:
            raise ValueError("must name a program, e.g. ['/usr/local/bin/dock-led', '{event}']")
        _check_fields(value, EVENT_FIELDS, "argument")
        return value

    @field_validator("bay")
    @classmethod
    def _bays_unique(cls, value: tuple[Bay, ...]) -> tuple[Bay, ...]:
        for what in ("name", "id_path", "led"):
            seen = [getattr(b, what) for b in value if getattr(b, what) is not None]
            dupes = sorted({v for v in seen if seen.count(v) > 1})
            if dupes:
                raise ValueError(f"each [[dock.bay]] needs its own {what}; repeated: {dupes}")
        return value

    @field_validator("runtime_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path, e.g. /run/dockd")
        return value

    @field_validator("automount_roots")
    @classmethod
    def _roots_absolute(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for v in value:
            if not v.is_absolute() or v == Path("/"):
                raise ValueError(f"{str(v)!r} must be an absolute directory other than '/'")
        return value

    @field_validator("unmount_command", "lazy_unmount_command", "blkid_command")
    @classmethod
    def _one_placeholder(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        """An unmount command takes the ``{mountpoint}``, blkid the ``{device}``."""
        name = "device" if info.field_name == "blkid_command" else "mountpoint"
        if not value or f"{{{name}}}" not in value:
            raise ValueError(f"must be an argument list with a '{{{name}}}' argument")
        _check_fields(value, frozenset({name}), "argument")
        return value

    @field_validator("remount_command")
    @classmethod
    def _remount_ok(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        joined = " ".join(value)
        if not value or "{mountpoint}" not in joined or "{options}" not in joined:
            raise ValueError("must be an argument list using {options} and {mountpoint}")
        _check_fields(value, frozenset({"mountpoint", "options"}), "argument")
        return value

    @model_validator(mode="after")
    def _helpers_cover_filesystems(self) -> DockConfig:
        if not self.match:
            raise ValueError("dock.match needs at least one rule, or no recorder is ever docked")
        names = [r.name for r in self.match]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"match rule names must be unique; repeated: {dupes}")
        covered = {h.fstype for h in self.mount_helpers}
        missing = [f for f in self.filesystems if f not in covered]
        if missing:
            raise ValueError(
                f"no [[dock.mount_helpers]] entry for filesystem(s) {missing} listed in "
                "dock.filesystems; add a helper or remove the filesystem"
            )
        return self


def render(argv: tuple[str, ...], **values: str) -> list[str]:
    """Fill ``{name}`` placeholders in each argument; the result is an argument list.

    Only the known placeholders are replaced (plain string replacement, no
    format-spec evaluation), so a device path can never inject arguments.
    """
    out = []
    for arg in argv:
        for key, val in values.items():
            arg = arg.replace("{" + key + "}", val)
        out.append(arg)
    return out


SAFE_DEVNODE = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9/_.:+-]*$")
