"""Which recorder is this? Ties a docked tree to a registered device (R1, R14).

Evidence is gathered from what the recorder offers (an ID file, the filesystem
UUID and label the dock saw, the serial or device number in file names) and
matched against the registry, strongest identifier first. An unmatched recorder
is never silently trusted: the caller applies the unknown-device policy.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from dockd.ingest.naming import NameInfo
from dockd.ledger import registry
from dockd.ledger.models import Device

_KV = re.compile(r"^\s*([A-Za-z_ ]+?)\s*[=:]\s*(\S.*?)\s*$")
_KEYS = {
    "serial": "serial",
    "sn": "serial",
    "serial_number": "serial",
    "serialno": "serial",
    "device": "device",
    "device_number": "device",
    "deviceno": "device",
    "id": "device",
    "device_id": "device",
}
MAX_ID_FILE = 64 * 1024


@dataclass(frozen=True)
class VolumeInfo:
    """What the dock knows of the recorder's filesystem (empty for a plain folder)."""

    fs_uuid: str | None = None
    fs_label: str | None = None
    serial: str | None = None  # USB serial reported by udev
    devnode: str | None = None  # the block device behind the mount, e.g. /dev/sdb1
    # When the dock saw the recorder arrive: the recorder's time file is measured against
    # it, and only a recorder docked now is compared with its last dock (clockcheck).
    seen_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """One thing the recorder says about itself: where it was read, what kind, the value."""

    source: str  # id-file | usb | volume | names
    kind: str  # number | serial | fs_uuid | fs_label
    value: str

    def __str__(self) -> str:
        return f"{self.kind} {self.value!r} ({self.source})"


@dataclass(frozen=True)
class Evidence:
    serial: str | None = None
    device: str | None = None
    fs_uuid: str | None = None
    fs_label: str | None = None
    # Every identifier seen, from every source, so that two that disagree are caught.
    claims: tuple[Claim, ...] = ()

    def ref(self) -> str:
        """A stable name for the recorder even when it is not registered."""
        for key in ("device", "serial", "fs_uuid", "fs_label"):
            value = getattr(self, key)
            if value:
                return value if key == "device" else f"{key}:{value}"
        return "unidentified"


@dataclass(frozen=True)
class Conflict:
    """The recorder's evidence points at two or more registered devices."""

    devices: tuple[Device, ...]
    claims: dict[str, tuple[Claim, ...]]  # device number -> the claims that name it

    def describe(self) -> str:
        return "; ".join(
            f"device {number} by {', '.join(str(c) for c in claims)}"
            for number, claims in self.claims.items()
        )


@dataclass(frozen=True)
class Identity:
    device: Device | None
    ref: str  # device number when registered, else the best identifier seen
    how: str | None  # which identifier matched: number / serial / fs_uuid / fs_label / operator
    conflict: Conflict | None = None


def volume_of(path: Path) -> VolumeInfo:
    """Filesystem UUID and label of ``path`` when it is a mount point (via ``findmnt``).

    Lets ``dockd ingest /media/recorder`` match a recorder registered by its
    filesystem UUID or label, as the dock daemon does from udev.
    """
    if not os.path.ismount(path):
        return VolumeInfo()
    try:
        out = subprocess.run(
            ["findmnt", "--json", "--output", "SOURCE,UUID,LABEL", "--mountpoint", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        fs = json.loads(out)["filesystems"][0]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return VolumeInfo()
    source = fs.get("source") or ""
    return VolumeInfo(
        fs_uuid=fs.get("uuid") or None,
        fs_label=fs.get("label") or None,
        devnode=source if source.startswith("/dev/") else None,
    )


def _clean_value(value: str) -> str | None:
    """An identifier as the registry can hold it: printable, no NUL, not absurdly long."""
    value = "".join(c for c in value if c.isprintable()).strip()
    return value[:128] or None


def parse_id_file(data: bytes) -> dict[str, str]:
    """``serial`` / ``device`` from the bytes of an ID file (``key=value`` lines).

    Anything else the recorder wrote is ignored; a value made only of control
    characters counts as absent.
    """
    text = data[:MAX_ID_FILE].decode("utf-8", "replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _KV.match(line)
        if m:
            key = _KEYS.get(m.group(1).strip().lower().replace(" ", "_"))
            value = _clean_value(m.group(2))
            if key and value and key not in out:
                out[key] = value
    return out


def read_id_file(root: Path, candidates: Sequence[str]) -> dict[str, str]:
    """``serial`` / ``device`` from the first ID file present (``key=value`` lines).

    Only small regular files are read; a link or special file is ignored.
    """
    for rel in candidates:
        path = root / rel
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ID_FILE:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        out = parse_id_file(data)
        if out:
            return out
    return {}


def _majority(values: Iterable[str | None]) -> str | None:
    counts = Counter(v for v in values if v)
    return counts.most_common(1)[0][0] if counts else None


def gather_evidence(
    root: Path, volume: VolumeInfo, id_files: Sequence[str], names: Iterable[NameInfo | None]
) -> Evidence:
    idf = read_id_file(root, id_files)
    infos = [n for n in names if n is not None]
    name_serial = _majority(n.serial for n in infos)
    name_device = _majority(n.device for n in infos)
    sources: list[tuple[str, str, str | None]] = [
        ("id-file", "number", idf.get("device")),
        ("id-file", "serial", idf.get("serial")),
        ("usb", "serial", volume.serial),
        ("volume", "fs_uuid", volume.fs_uuid),
        ("volume", "fs_label", volume.fs_label),
    ]
    # Every device or serial any file name carries is a claim, not only the most
    # common: a card holding another recorder's files must raise a conflict.
    sources += [("names", "number", v) for v in sorted({n.device for n in infos if n.device})]
    sources += [("names", "serial", v) for v in sorted({n.serial for n in infos if n.serial})]
    return Evidence(
        serial=idf.get("serial") or volume.serial or name_serial,
        device=idf.get("device") or name_device,
        fs_uuid=volume.fs_uuid,
        fs_label=volume.fs_label,
        claims=tuple(Claim(src, kind, value) for src, kind, value in sources if value),
    )


_STRENGTH = ("number", "serial", "fs_uuid", "fs_label")


def identify(session: Session, evidence: Evidence, *, device_number: str | None = None) -> Identity:
    """Match the evidence against the registry; never pick silently between two devices.

    ``device_number`` is the operator's word (``dockd ingest --device``): it must
    name a registered device, and it wins over what the recorder says. Otherwise
    every claim is looked up; when they name two or more different devices the
    identity carries a :class:`Conflict` and no device. A filesystem UUID or label
    shared by several registered devices identifies none of them.
    """
    if device_number is not None:
        dev = registry.device_by_number(session, device_number)
        return Identity(dev, dev.number, "operator")
    named: dict[int, tuple[Device, list[Claim]]] = {}
    for claim in evidence.claims:
        matches = registry.devices_matching(session, claim.kind, claim.value)
        if len(matches) != 1:
            continue
        dev = matches[0]
        named.setdefault(dev.id, (dev, []))[1].append(claim)
    if not named:
        return Identity(None, evidence.ref(), None)
    if len(named) > 1:
        devices = tuple(sorted((d for d, _ in named.values()), key=lambda d: d.number))
        conflict = Conflict(devices, {d.number: tuple(named[d.id][1]) for d in devices})
        ref = "conflict:" + "+".join(d.number for d in devices)
        return Identity(None, ref, None, conflict)
    dev, claims = next(iter(named.values()))
    how = min((c.kind for c in claims), key=_STRENGTH.index)
    return Identity(dev, dev.number, how)
