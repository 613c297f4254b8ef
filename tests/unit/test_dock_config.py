"""``[dock]``: match rules, mount helpers and their safety checks, pure decisions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockd.config import Config, parse_config
from dockd.config.dock import DockConfig, render
from dockd.dock.match import BlockEvent, dockable
from dockd.dock.mounts import (
    Mounter,
    MountError,
    choose_helper,
    kernel_supports,
    mountpoint_name,
    parse_mountinfo,
)
from dockd.errors import ConfigError


def dock_config(text: str) -> DockConfig:
    return parse_config(text).dock


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return "\n".join(info.value.problems)


def usb_stick(**props: str) -> BlockEvent:
    base = {
        "ID_BUS": "usb",
        "ID_VENDOR_ID": "2e8a",
        "ID_VENDOR": "ZFY",
        "ID_MODEL_ID": "0003",
        "ID_MODEL": "DSJ-V9",
        "ID_SERIAL_SHORT": "ZFY2024000123",
        "ID_FS_TYPE": "vfat",
        "ID_FS_USAGE": "filesystem",
        "ID_FS_UUID": "1BC1-ED64",
        "ID_FS_LABEL": "RECORDER",
        "DISKSEQ": "42",
        "MAJOR": "8",
        "MINOR": "17",
    }
    base.update(props)
    return BlockEvent(
        action="add",
        devpath="/devices/pci0000:00/usb1/1-1/host6/target6:0:0/6:0:0:0/block/sdb/sdb1",
        devnode="/dev/sdb1",
        sys_name="sdb1",
        subsystem="block",
        devtype="partition",
        properties={k: v for k, v in base.items() if v},
    )


def test_defaults_take_usb_filesystems_and_prefer_the_kernel_driver() -> None:
    cfg = Config().dock
    assert [(r.name, r.bus) for r in cfg.match] == [("usb-storage", "usb")]
    assert cfg.max_parallel == 8 and cfg.wipe_after_ingest is False
    vfat = [h for h in cfg.mount_helpers if h.fstype == "vfat"]
    assert [h.kernel for h in vfat] == [True, False]
    assert vfat[1].command[0] == "fusefat"
    for h in cfg.mount_helpers:
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(h.options.split(","))


def test_a_full_dock_table_parses() -> None:
    cfg = dock_config(
        """
[dock]
runtime_dir = "/run/dockd"
max_parallel = 3
filesystems = ["vfat"]
wipe_after_ingest = true
automount_roots = ["/media"]

[[dock.match]]
name = "zfy"
bus = "usb"
vendors = ["2e8a"]
serials = ["ZFY2024000123", "ZFY2024000124"]

[[dock.mount_helpers]]
fstype = "vfat"
command = ["fusefat", "-o", "{options}", "{device}", "{mountpoint}"]
options = "ro,nosuid,nodev,noexec,fsname={device}"
"""
    )
    assert cfg.max_parallel == 3 and cfg.wipe_after_ingest
    assert cfg.match[0].serials == ("ZFY2024000123", "ZFY2024000124")
    rule, why = dockable(cfg.match, cfg.filesystems, usb_stick())
    assert rule is not None and rule.name == "zfy", why


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[dock.match]]\nname = "all"\n', "would take every block device"),
        (
            '[[dock.mount_helpers]]\nfstype = "vfat"\n'
            'command = ["fusefat", "{device}", "{mountpoint}"]\noptions = "ro,nosuid,nodev"\n',
            "must include ['noexec']",
        ),
        (
            '[[dock.mount_helpers]]\nfstype = "vfat"\ncommand = ["fusefat", "{device}"]\n',
            "must contain {mountpoint}",
        ),
        (
            '[[dock.mount_helpers]]\nfstype = "vfat"\n'
            'command = ["sh", "-c", "{shell}", "{device}", "{mountpoint}"]\n',
            "unknown placeholder(s) ['shell']",
        ),
        (
            '[[dock.mount_helpers]]\nfstype = "vfat"\n'
            'command = ["fusefat", "{device}", "{mountpoint}"]\n'
            'write_options = "ro,nosuid,nodev,noexec"\n',
            "must not contain 'ro'",
        ),
        ('[dock]\nfilesystems = ["vfat", "ntfs"]\n', "no [[dock.mount_helpers]] entry"),
        ('[dock]\nruntime_dir = "run"\n', "must be an absolute path"),
        ("[dock]\nmax_parallel = 0\n", "dock.max_parallel"),
        ('[dock]\nautomount_roots = ["/"]\n', "other than '/'"),
        ("[dock]\nwipe_afer_ingest = true\n", "unknown key"),
    ],
)
def test_unsafe_or_wrong_dock_settings_are_errors(text: str, expected: str) -> None:
    assert expected in problems(text)


def test_helpers_are_argument_lists_and_placeholders_are_not_reexpanded() -> None:
    argv = render(
        ("fusefat", "-o", "{options}", "{device}", "{mountpoint}"),
        device="/dev/sdb1",
        mountpoint="/run/dockd/mnt/sdb1-42 {device}; rm -rf /",
        options="ro,nosuid,nodev,noexec",
    )
    assert argv == [
        "fusefat",
        "-o",
        "ro,nosuid,nodev,noexec",
        "/dev/sdb1",
        "/run/dockd/mnt/sdb1-42 {device}; rm -rf /",
    ]


# ------------------------------------------------------------------ match rules


def test_default_rule_takes_a_usb_recorder_with_a_filesystem() -> None:
    cfg = Config().dock
    rule, _ = dockable(cfg.match, cfg.filesystems, usb_stick())
    assert rule is not None


@pytest.mark.parametrize(
    ("props", "why"),
    [
        ({"ID_BUS": "ata"}, "no [[dock.match]] rule matches"),
        ({"ID_FS_TYPE": "", "ID_FS_USAGE": ""}, "no filesystem"),
        ({"ID_FS_TYPE": "ext4"}, "not in dock.filesystems"),
        ({"ID_FS_TYPE": "crypto_LUKS", "ID_FS_USAGE": "crypto"}, "no filesystem"),
    ],
)
def test_default_rule_leaves_other_devices_alone(props: dict[str, str], why: str) -> None:
    cfg = Config().dock
    rule, reason = dockable(cfg.match, cfg.filesystems, usb_stick(**props))
    assert rule is None and why in reason


def test_allow_lists_by_vendor_model_serial_label_and_property() -> None:
    cfg = dock_config(
        """
[[dock.match]]
name = "zfy-model"
bus = "usb"
vendors = ["zfy"]
models = ["0003"]
serials = ["ZFY2024000123"]
fs_labels = ["REC*"]
properties = { ID_USB_DRIVER = "usb-*" }
"""
    )
    ok = usb_stick(ID_USB_DRIVER="usb-storage")
    assert dockable(cfg.match, cfg.filesystems, ok)[0] is not None
    for bad in (
        {"ID_VENDOR_ID": "ffff", "ID_VENDOR": "Other"},
        {"ID_MODEL_ID": "9999", "ID_MODEL": "X"},
        {"ID_SERIAL_SHORT": "OTHER1"},
        {"ID_FS_LABEL": "BACKUP"},
        {"ID_USB_DRIVER": "uas"},
    ):
        ev = usb_stick(**{"ID_USB_DRIVER": "usb-storage", **bad})
        assert dockable(cfg.match, cfg.filesystems, ev)[0] is None, bad


def test_loop_devices_need_a_rule_of_their_own() -> None:
    loop = BlockEvent(
        action="change",
        devpath="/devices/virtual/block/loop3",
        devnode="/dev/loop3",
        sys_name="loop3",
        subsystem="block",
        devtype="disk",
        properties={"ID_FS_TYPE": "exfat", "ID_FS_USAGE": "filesystem", "ID_FS_LABEL": "DTEST1"},
    )
    assert dockable(Config().dock.match, ("vfat", "exfat"), loop)[0] is None
    cfg = dock_config('[[dock.match]]\nname = "loops"\ndevname = "/dev/loop*"\n')
    assert dockable(cfg.match, cfg.filesystems, loop)[0] is not None
    assert loop.medium == "/devices/virtual/block/loop3"  # no DISKSEQ, no UUID
    assert usb_stick().medium == "42"
    assert usb_stick().volume.serial == "ZFY2024000123"


# ------------------------------------------------------------------ mounts


def test_mountinfo_is_parsed_with_escapes() -> None:
    text = (
        "36 25 8:17 / /media/zhang/REC\\040ONE rw,nosuid,nodev,relatime shared:1 - vfat "
        "/dev/sdb1 rw,fmask=0022\n"
        "40 25 0:39 / /run/dockd/mnt/sdc1-7 ro,nosuid,nodev,noexec - fuse /dev/sdc1 ro\n"
        "garbage line\n"
    )
    a, b = parse_mountinfo(text)
    assert (a.major, a.minor, a.mountpoint) == (8, 17, Path("/media/zhang/REC ONE"))
    assert a.options == {"rw", "nosuid", "nodev", "relatime"} and a.fstype == "vfat"
    assert b.source == "/dev/sdc1" and "noexec" in b.options


def test_helper_choice_prefers_the_kernel_and_falls_back_to_fuse() -> None:
    helpers = Config().dock.mount_helpers
    present = {"mount", "fusefat", "mount.exfat-fuse"}

    def choose(fstype: str, kernel: bool) -> str | None:
        h = choose_helper(
            helpers, fstype, kernel_has=lambda _: kernel, program_exists=present.__contains__
        )
        return None if h is None else ("kernel " if h.kernel else "") + h.command[0]

    assert choose("vfat", True) == "kernel mount"
    assert choose("vfat", False) == "fusefat"
    assert choose("exfat", False) == "mount.exfat-fuse"
    assert choose("ntfs", True) is None
    present.discard("fusefat")
    assert choose("vfat", False) is None


def test_kernel_support_is_read_from_the_running_kernel() -> None:
    registered = Path("/proc/filesystems").read_text().split()[-1]
    assert kernel_supports(registered)
    assert not kernel_supports("no-such-filesystem")


def test_a_filesystem_mounted_elsewhere_is_never_taken(tmp_path: Path) -> None:
    """The root filesystem's device, as if it matched a rule: refused, not remounted."""
    dev = os.stat("/").st_dev
    ev = BlockEvent(
        action="add",
        devpath="/devices/virtual/block/x",
        devnode="/dev/does-not-exist",
        sys_name="x",
        subsystem="block",
        devtype="disk",
        properties={"MAJOR": str(os.major(dev)), "MINOR": str(os.minor(dev))},
    )
    cfg = dock_config(f'[dock]\nruntime_dir = "{tmp_path}"\nautomount_roots = ["/media"]\n')
    with pytest.raises(MountError, match="already mounted at /"):
        Mounter(cfg).existing(ev)
    assert mountpoint_name(ev) == "x-_devices_virtual_block_x"


def test_the_documented_config_is_exactly_the_defaults() -> None:
    """config.example.toml documents every key with its default: it must not drift."""
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    documented = parse_config(example.read_text())
    defaults = Config()
    for section in (
        "dock",
        "retention",
        "archive",
        "fixity",
        "schedule",
        "ingest",
        "alerts",
        "logging",
        "reports",
    ):
        assert getattr(documented, section) == getattr(defaults, section), section
    assert documented.naming == defaults.naming
