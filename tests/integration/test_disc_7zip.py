"""A disc image as another program reads its UDF tree (issue 15, 刻录光盘): 7-Zip's UDF
reader, written independently of pycdlib, finds the bag with its real names (Chinese
too), and bagit-python validates what it extracted.

The kernel's UDF driver would be the natural reader, but the machines the tests run on
have no udf module (a kernel without loadable modules); 7-Zip (Debian's ``7zip``) reads
the same on-disc structures in user space and is what an archivist on Windows often uses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import bagit

from dockd.evidence import disc
from tests.helpers.skips import need

CHINESE = "执法记录仪_现场_2026年3月15日.mp4"
SEVEN_ZIP = "7zz"


def _seven_zip(*args: str) -> str:
    proc = subprocess.run(
        [SEVEN_ZIP, *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_seven_zip_reads_the_udf_tree_and_the_bag_validates_from_it(tmp_path: Path) -> None:
    need(tools=(SEVEN_ZIP, "xorriso"), why="7-Zip reads the image's UDF tree (apt install 7zip)")
    src = tmp_path / "bag"
    (src / "clips").mkdir(parents=True)
    clip = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
    (src / "clips" / CHINESE).write_bytes(clip)
    (src / "note.txt").write_text("两份拷贝\n", encoding="utf-8")
    bagit.make_bag(str(src), checksums=["sha256", "sha512"])
    image = disc.make_image(src, tmp_path / "case.iso", volid="K_1_2026")

    listing = _seven_zip("l", "-tUDF", str(image.path))
    assert f"data/clips/{CHINESE}" in listing  # the real name, as UDF holds it

    out = tmp_path / "from-udf"
    _seven_zip("x", "-tUDF", f"-o{out}", str(image.path))
    assert (out / "data" / "clips" / CHINESE).read_bytes() == clip
    from_disc = bagit.Bag(str(out))
    from_disc.validate()  # every payload and tag file re-hashed, from 7-Zip's UDF read
    assert set(from_disc.payload_files()) == {f"data/clips/{CHINESE}", "data/note.txt"}


def test_a_flipped_byte_in_the_udf_data_is_seen_by_the_bag_read_through_7zip(
    tmp_path: Path,
) -> None:
    need(tools=(SEVEN_ZIP, "xorriso"), why="7-Zip reads the image's UDF tree (apt install 7zip)")
    src = tmp_path / "bag"
    src.mkdir()
    clip = bytes(range(256)) * 256
    (src / "clip.mp4").write_bytes(clip)
    bagit.make_bag(str(src), checksums=["sha256"])
    image = disc.make_image(src, tmp_path / "case.iso", volid="K_2_2026").path

    data = bytearray(image.read_bytes())
    at = data.find(clip[:4096])
    assert at > 0
    data[at + 100] ^= 0xFF
    damaged = tmp_path / "damaged.iso"
    damaged.write_bytes(bytes(data))

    out = tmp_path / "from-udf"
    _seven_zip("x", "-tUDF", f"-o{out}", str(damaged))
    try:
        bagit.Bag(str(out)).validate()
    except bagit.BagValidationError as exc:
        assert "data/clip.mp4" in str(exc)
    else:
        raise AssertionError("a flipped byte in the image validated")
