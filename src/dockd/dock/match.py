"""Is this block device a recorder? Pure functions of what udev (or sysfs) said.

A :class:`BlockEvent` is the watcher's plain-data view of one udev event, free
of pyudev, so the decisions below are tested without any device.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockd.config.dock import MatchRule
from dockd.ingest.identify import VolumeInfo


@dataclass(frozen=True)
class BlockEvent:
    """One add/change/remove of a block device, with its udev properties."""

    action: str  # add | change | remove | coldplug
    devpath: str  # sysfs path, stable while the device is plugged in
    devnode: str | None
    sys_name: str
    subsystem: str
    devtype: str | None
    properties: Mapping[str, str] = field(default_factory=dict)
    received: float = 0.0  # time.monotonic() when the daemon read the event
    received_wall: float = 0.0  # time.time() of the same moment
    source: str = "udev"  # udev | kernel | coldplug

    def prop(self, key: str) -> str | None:
        value = self.properties.get(key)
        return value if value else None

    @property
    def fs_type(self) -> str | None:
        return self.prop("ID_FS_TYPE")

    @property
    def has_filesystem(self) -> bool:
        usage = self.prop("ID_FS_USAGE")
        return self.fs_type is not None and usage in (None, "filesystem")

    @property
    def medium(self) -> str:
        """What distinguishes this medium from the next one in the same slot.

        The kernel's disk sequence number changes on every media change and loop
        re-attach; without it, the filesystem UUID stands in.
        """
        return self.prop("DISKSEQ") or self.prop("ID_FS_UUID") or self.devpath

    @property
    def volume(self) -> VolumeInfo:
        """What the ingest may use to identify the recorder."""
        return VolumeInfo(
            fs_uuid=self.prop("ID_FS_UUID"),
            fs_label=self.prop("ID_FS_LABEL"),
            serial=self.prop("ID_SERIAL_SHORT"),
            devnode=self.devnode,
        )

    def describe(self) -> dict[str, str | None]:
        """The fields that go into every log event about this device."""
        return {
            "devnode": self.devnode,
            "fs_type": self.fs_type,
            "fs_label": self.prop("ID_FS_LABEL"),
            "fs_uuid": self.prop("ID_FS_UUID"),
            "usb_serial": self.prop("ID_SERIAL_SHORT"),
        }


def _any_equal(wanted: tuple[str, ...], *values: str | None) -> bool:
    have = {v.lower() for v in values if v}
    return any(w.lower() in have for w in wanted)


def _glob(pattern: str, value: str | None) -> bool:
    return value is not None and fnmatch.fnmatchcase(value, pattern)


def rule_matches(rule: MatchRule, ev: BlockEvent) -> bool:
    """Every condition the rule names holds for this device."""
    p = ev.prop
    checks = [
        ev.subsystem == rule.subsystem,
        rule.bus is None or (p("ID_BUS") or "").lower() == rule.bus.lower(),
        rule.devname is None or _glob(rule.devname, ev.devnode),
        not rule.vendors or _any_equal(rule.vendors, p("ID_VENDOR_ID"), p("ID_VENDOR")),
        not rule.models or _any_equal(rule.models, p("ID_MODEL_ID"), p("ID_MODEL")),
        not rule.serials or _any_equal(rule.serials, p("ID_SERIAL_SHORT"), p("ID_SERIAL")),
        not rule.fs_labels or any(_glob(g, p("ID_FS_LABEL")) for g in rule.fs_labels),
        all(_glob(g, p(k)) for k, g in rule.properties.items()),
    ]
    return all(checks)


def first_match(rules: tuple[MatchRule, ...], ev: BlockEvent) -> MatchRule | None:
    return next((r for r in rules if rule_matches(r, ev)), None)


def dockable(
    rules: tuple[MatchRule, ...], filesystems: tuple[str, ...], ev: BlockEvent
) -> tuple[MatchRule | None, str]:
    """(the rule that takes it, why) or (None, why not)."""
    rule = first_match(rules, ev)
    if rule is None:
        return None, "no [[dock.match]] rule matches"
    if not ev.has_filesystem:
        return None, "no filesystem (no media, or a partition table only)"
    if ev.fs_type not in filesystems:
        return None, f"filesystem {ev.fs_type!r} is not in dock.filesystems"
    return rule, f"matched rule {rule.name!r}"
