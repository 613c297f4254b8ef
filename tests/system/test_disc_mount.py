"""A disc image as Linux mounts it (issue 15, 刻录光盘): the kernel's own UDF driver, an
independent reader of what pycdlib wrote, finds the bag with its real names (Chinese
too), and bagit-python validates it from the mount. Root: a read-only loop mount.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import bagit
import pytest

from dockd.evidence import disc
from tests.helpers.skips import need, unavailable

pytestmark = pytest.mark.root

CHINESE = "执法记录仪_现场_2026年3月15日.mp4"


def test_the_kernel_mounts_the_udf_tree_and_the_bag_validates_from_it(tmp_path: Path) -> None:
    need(root=True, tools=("xorriso", "mount", "umount"), why="a read-only loop mount of the image")
    src = tmp_path / "bag"
    (src / "clips").mkdir(parents=True)
    (src / "clips" / CHINESE).write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64)
    (src / "note.txt").write_text("两份拷贝\n", encoding="utf-8")
    bagit.make_bag(str(src), checksums=["sha256", "sha512"])
    image = disc.make_image(src, tmp_path / "case.iso", volid="K_1_2026")

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "udf", "-o", "loop,ro", str(image.path), str(mnt)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if "unknown filesystem type" in proc.stderr:
        unavailable("needs the kernel's udf file system (modprobe udf): the image's UDF tree")
    assert proc.returncode == 0, proc.stderr
    try:
        fstype = subprocess.run(
            ["findmnt", "-n", "-o", "FSTYPE", str(mnt)], capture_output=True, text=True, check=False
        ).stdout.strip()
        assert fstype == "udf"
        assert (mnt / "data" / "clips" / CHINESE).read_bytes() == (
            src / "data" / "clips" / CHINESE
        ).read_bytes()
        from_disc = bagit.Bag(str(mnt))
        from_disc.validate()  # every payload and tag file re-hashed, from the kernel's UDF
        assert set(from_disc.payload_files()) == {f"data/clips/{CHINESE}", "data/note.txt"}
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)
