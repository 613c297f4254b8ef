"""Recorders whose tree or names try to mislead: folders that nest without end, and
file names that point at two registered devices."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from dockd.config.ingest import IngestConfig
from dockd.ingest.discover import discover
from dockd.ingest.identify import VolumeInfo, gather_evidence, identify
from dockd.ingest.naming import NameInfo
from dockd.ledger import registry
from dockd.ledger.db import Ledger


def test_folders_nested_without_end_are_refused_as_unreadable_not_a_crash(tmp_path: Path) -> None:
    # 100 levels, made through directory fds (the path is longer than Python likes)
    cur = os.open(tmp_path, os.O_RDONLY)
    for _ in range(100):
        os.mkdir("d", dir_fd=cur)
        nxt = os.open("d", os.O_RDONLY, dir_fd=cur)
        os.close(cur)
        cur = nxt
    fd = os.open("deep.mp4", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=cur)
    os.close(fd)
    os.close(cur)
    (tmp_path / "top.mp4").write_bytes(b"top")
    (tmp_path / "d" / "one.mp4").write_bytes(b"one")

    found, refused = discover(tmp_path, IngestConfig())

    assert [c.relpath for c in found] == [PurePosixPath("d/one.mp4"), PurePosixPath("top.mp4")]
    [too_deep] = refused
    assert too_deep.unreadable and "nested deeper than 64" in too_deep.reason


def test_file_names_of_two_registered_devices_are_a_conflict_not_a_majority(
    ledger: Ledger, tmp_path: Path
) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with ledger.session() as s:
        for number in ("DV-0042", "DV-0043"):
            registry.add_device(s, number=number, at=at, station="st-test", actor="admin")
    # a card moved between recorders: 60 files named for one device, 40 for the other
    names = [NameInfo(rule="r", device="DV-0042")] * 60 + [
        NameInfo(rule="r", device="DV-0043")
    ] * 40
    evidence = gather_evidence(tmp_path, VolumeInfo(), (), names)
    with ledger.read() as s:
        identity = identify(s, evidence)
    assert identity.device is None and identity.conflict is not None
    assert sorted(d.number for d in identity.conflict.devices) == ["DV-0042", "DV-0043"]
    assert identity.ref == "conflict:DV-0042+DV-0043"
