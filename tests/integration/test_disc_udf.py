"""The three trees of a disc image (issue 15, 刻录光盘), and the images made before them.

An image made by dockd carries one set of files under UDF (full real names), ISO 9660
with Rock Ridge (valid unique ISO names, the real names in Rock Ridge) and Joliet (names
Windows accepts, cut to 64 bytes and kept unique). Each tree is read here by a reader
other than the writer where Debian has one: ``xorriso`` for Rock Ridge, Joliet and plain
ISO 9660, ``udfinfo`` for the UDF file system. Images xorriso wrote (with MD5 tags)
before dockd wrote UDF are still checked, extracted from and refused when damaged.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import bagit
import pytest

from dockd.evidence import disc, udf
from tests.helpers.skips import need
from tests.helpers.udftree import udf_tree

LONG_CHINESE = "执法记录仪现场录像" * 4 + ".mp4"  # 36 characters, 112 bytes of UTF-8
NAMES = [
    LONG_CHINESE,
    "a-b.mp4",  # these three are one ISO 9660 name: A_B.MP4
    "a_b.mp4",
    "A B.mp4",
    "Clip.MP4",  # one name to Windows
    "clip.mp4",
    "10:15 interview?.wav",  # ':' and '?' are not allowed in Joliet
    "README",
    "x" * 80 + ".jpg",  # too long for Joliet
    "y" * 80 + ".jpg",
]


@pytest.fixture(autouse=True)
def _xorriso() -> None:
    need(tools=("xorriso",), why="disc images are read back by xorriso")


def xorriso(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        ["xorriso", *args], capture_output=True, text=True, env=env, check=False, timeout=300
    )


def tree(image: Path, *how: str) -> set[str]:
    """The files of one tree of ``image`` as xorriso loads it (``-read_fs ...``)."""
    proc = xorriso(*how, "-indev", str(image), "-find", "/", "-type", "f")
    assert proc.returncode == 0, proc.stderr
    return {ln.strip("'") for ln in proc.stdout.splitlines() if ln.startswith("'/")}


def a_bag(root: Path) -> Path:
    src = root / "bag"
    (src / "现场 2026.03.15").mkdir(parents=True)
    for i, name in enumerate(NAMES):
        (src / "现场 2026.03.15" / name).write_bytes(f"{i} {name}\n".encode() * (100 + i))
    bagit.make_bag(str(src), checksums=["sha256"])
    return src


def test_each_tree_has_every_file_under_names_its_readers_accept(tmp_path: Path) -> None:
    need(tools=("udfinfo",), why="the image's UDF tree is read by udftools")
    src = a_bag(tmp_path)
    made = disc.make_image(src, tmp_path / "names.iso", volid="NAMES")
    files = {"/" + p.relative_to(src).as_posix(): p for p in src.rglob("*") if p.is_file()}

    # UDF: the real names, Chinese and long ones whole, each file's content intact.
    info = subprocess.run(["udfinfo", str(made.path)], capture_output=True, text=True, check=True)
    assert "label=NAMES" in info.stdout and f"numfiles={len(files)}" in info.stdout
    in_udf = udf_tree(made.path)
    assert set(in_udf) == set(files)
    assert f"/data/现场 2026.03.15/{LONG_CHINESE}" in in_udf
    for path, content in in_udf.items():
        assert content == files[path].read_bytes(), path

    # Rock Ridge (what xorriso and Linux's isofs read): the same real names.
    assert tree(made.path) == set(files)

    # Joliet: one file for each, names Windows accepts, at most 64 bytes, unique as
    # Windows compares them (case folded); a name that fits is kept as it is.
    joliet = tree(made.path, "-read_fs", "norock")
    assert len(joliet) == len(files)
    names = [p.rsplit("/", 1)[1] for p in joliet if p.startswith("/data/")]
    assert len({n.casefold() for n in names}) == len(names)
    assert all(len(n.encode()) <= 64 and not re.search(r"[*:;?\\]", n) for n in names)
    assert {"a-b.mp4", "a_b.mp4", "A B.mp4", "README"} <= set(names)
    assert {"Clip.MP4", "clip.mp4"} & set(names) and len([n for n in names if "lip" in n]) == 2
    assert any(n.startswith("执法记录仪") and n.endswith(".mp4") for n in names)
    assert "/data/现场 2026.03.15/README" in joliet

    # Plain ISO 9660 (level 3): upper-case d-characters, unique, every file there.
    plain = tree(made.path, "-read_fs", "ecma119", "-ecma119_map", "unmapped")
    assert len(plain) == len(files)
    assert all(re.fullmatch(r"[A-Z0-9_]+(\.[A-Z0-9_]{0,3})?;1", p.rsplit("/", 1)[1]) for p in plain)


def test_name_mangling_keeps_names_unique_in_each_directory() -> None:
    iso = udf.iso_names_of([(n, False) for n in NAMES] + [("a.b", True), ("A_B", True)])
    assert len({v.split(";")[0] for v in iso.values()}) == len(iso)
    assert iso["a-b.mp4"] == "A_B.MP4;1" and iso["a_b.mp4"] == "A_B_1.MP4;1"
    assert iso["a.b"] == "A_B" and iso["A_B"] == "A_B_1"
    assert all(len(v.split(";")[0]) <= 30 for v in iso.values())

    joliet = udf.joliet_names_of(NAMES)
    assert joliet["a-b.mp4"] == "a-b.mp4" and joliet["clip.mp4"] == "clip~1.mp4"
    assert joliet["10:15 interview?.wav"] == "10_15 interview_.wav"
    assert len(joliet[LONG_CHINESE].encode()) <= 64 and joliet[LONG_CHINESE].endswith("~1.mp4")
    assert joliet["x" * 80 + ".jpg"] != joliet["y" * 80 + ".jpg"]


# ------------------------------------------------------------------- images xorriso wrote


def an_old_image(src: Path, image: Path) -> Path:
    """An image as dockd wrote them before UDF: xorriso, Rock Ridge + Joliet, MD5 tags."""
    proc = xorriso(
        "-abort_on", "FAILURE", "-local_charset", "UTF-8", "-md5", "on",
        "-outdev", f"stdio:{image}", "-volid", "OLD", "-joliet", "on",
        "-compliance", "joliet_long_names", "-map", str(src), "/", "-commit",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return image


def test_an_image_xorriso_wrote_is_still_checked_by_its_md5s(tmp_path: Path) -> None:
    src = a_bag(tmp_path)
    old = an_old_image(src, tmp_path / "old.iso")
    new = disc.make_image(src, tmp_path / "new.iso", volid="NEW").path
    assert disc.md5_tagged(old) and not disc.md5_tagged(new)
    # xorriso's tag words inside a file (a text about images) do not make an image old.
    words = src.parent / "words"
    words.mkdir()
    (words / "tag.txt").write_bytes(b"libisofs_checksum_tag_v1 pos=16 md5=0\n" * 60)
    bagit.make_bag(str(words), checksums=["sha256"])
    assert not disc.md5_tagged(disc.make_image(words, tmp_path / "w.iso", volid="W").path)

    inner = f"/data/现场 2026.03.15/{LONG_CHINESE}"
    for image in (old, new):
        disc.verify_image(image)
        disc.check_image(image)
        out = tmp_path / f"{image.stem}.mp4"
        disc.extract_file(image, inner, out)  # the fixity sweep's read of a copy
        assert out.read_bytes() == (src / inner.lstrip("/")).read_bytes()

    # A byte flipped in a file of the old image: its recorded MD5 names the file.
    content = (src / inner.lstrip("/")).read_bytes()
    data = bytearray(old.read_bytes())
    at = data.find(content)
    assert at >= 0
    data[at + 7] ^= 0xFF
    bad = tmp_path / "old-flipped.iso"
    bad.write_bytes(bytes(data))
    assert disc.md5_tagged(bad)
    with pytest.raises(disc.DiscError) as err:
        disc.check_image(bad)
    assert str(bad) in str(err.value) and "MD5 MISMATCH" in str(err.value)
    assert LONG_CHINESE in str(err.value)
    with pytest.raises(disc.DiscError, match="damaged"):
        disc.extract_file(bad, inner, tmp_path / "flipped.mp4")


def test_an_image_whose_trees_disagree_is_refused(tmp_path: Path) -> None:
    """A Joliet name changed after writing (the trees no longer agree): refused, named."""
    src = a_bag(tmp_path)
    made = disc.make_image(src, tmp_path / "ok.iso", volid="OK")
    data = bytearray(made.path.read_bytes())
    at = data.find("a-b.mp4".encode("utf-16-be"))
    assert at >= 0
    data[at : at + 2] = "z".encode("utf-16-be")
    bad = tmp_path / "bad.iso"
    bad.write_bytes(bytes(data))
    with pytest.raises(disc.DiscError) as err:
        disc.verify_image(bad)
    message = str(err.value)
    assert str(bad) in message and "Joliet tree" in message and "a-b.mp4" in message


def test_a_name_udf_cannot_hold_is_refused_naming_it(tmp_path: Path) -> None:
    src = tmp_path / "bag"
    src.mkdir()
    (src / ("a" * 251 + ".mp4")).write_bytes(b"clip")  # Linux takes 255 bytes, UDF 253
    out = tmp_path / "out"
    with pytest.raises(disc.DiscError) as err:
        disc.make_image(src, out / "long.iso", volid="LONG")
    message = str(err.value)
    assert "long.iso" in message and "UDF filename too long" in message
    assert "Rename or leave out what it names" in message
    assert list(out.iterdir()) == []  # no image, no partial file
