"""What the probe reads from a file in ``.incoming`` (a name without extension).

Photos are read through FFmpeg's image demuxer first (told, not guessed: the guess
costs a JPEG five times the read), and whatever that cannot read is found by content,
so a file the recorder misnamed is still described, and a damaged one still flagged.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from dockd.ingest import probe as probe_module
from dockd.ingest.probe import probe, still_damage
from fixtures.make_recorder import write_jpeg, write_mp4


def _as_incoming(src: Path, tmp_path: Path) -> Path:
    """``src`` copied to a name like the copy's in .incoming: no extension."""
    dst = tmp_path / ".incoming" / "1234-abcd.part"
    dst.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def test_a_photo_is_read_as_an_image_with_its_size(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "IMG_0001.JPG", width=320, height=240)
    part = _as_incoming(tmp_path / "IMG_0001.JPG", tmp_path)

    told, guessed = probe(part, still=True), probe(part)
    assert told.error is None, told.error
    assert (told.video_codec, told.width, told.height) == ("mjpeg", 320, 240)
    assert told.duration_s is None  # a still has no duration, however it was read
    # the same picture as FFmpeg finds it by content, only the demuxer's name differs
    assert (guessed.video_codec, guessed.width, guessed.height) == ("mjpeg", 320, 240)


def test_a_video_the_recorder_named_as_a_photo_is_still_read_as_the_video(
    tmp_path: Path,
) -> None:
    start = datetime(2026, 3, 15, 6, 30, tzinfo=UTC)
    write_mp4(tmp_path / "clip.mp4", start=start, seconds=1.0)
    part = _as_incoming(tmp_path / "clip.mp4", tmp_path)

    info = probe(part, still=True)
    assert info.error is None, info.error
    assert info.video_codec == "h264" and info.duration_s == pytest.approx(1.0, abs=0.2)
    assert info.creation_time == start  # the recording time, from the MP4 itself


def test_a_damaged_photo_is_flagged_with_the_reason(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "IMG_0002.JPG", width=320, height=240)
    data = (tmp_path / "IMG_0002.JPG").read_bytes()
    broken = tmp_path / ".incoming" / "5678-ef01.part"
    broken.parent.mkdir()
    broken.write_bytes(b"\x00" * 64 + data[len(data) // 2 :])  # the header gone

    info = probe(broken, still=True)
    assert (info.error is not None and "unreadable" in info.error) or "no decodable" in (
        info.error or ""
    )


def test_a_video_whose_frames_are_gone_is_flagged_by_the_probe_itself(tmp_path: Path) -> None:
    """Its headers read (codec, length, time) but no frame decodes: flagged here, not
    later, because its recording time is judged against its mtime only when it
    decodes (clockcheck)."""
    write_mp4(tmp_path / "clip.mp4", start=datetime(2026, 3, 15, 6, 30, tzinfo=UTC), seconds=1.0)
    data = bytearray((tmp_path / "clip.mp4").read_bytes())
    at = data.index(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 : at - 4 + size] = bytes(size - 8)  # the media data zeroed
    part = tmp_path / ".incoming" / "9abc-def0.part"
    part.parent.mkdir()
    part.write_bytes(bytes(data))

    info = probe(part)
    assert info.error is not None and "PyAV" in info.error
    assert probe(part, still=True).error is not None  # named a photo, read as the video


def test_an_mp4_is_opened_once_told_its_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A video that starts with ISO media's ``ftyp`` box is opened with FFmpeg's mov
    demuxer, told, not guessed, and read as FFmpeg finds it by content."""
    write_mp4(tmp_path / "clip.mp4", start=datetime(2026, 3, 15, 6, 30, tzinfo=UTC), seconds=1.0)
    part = _as_incoming(tmp_path / "clip.mp4", tmp_path)
    guessed = probe_module._read(part, None, decode=True)
    opened: list[str | None] = []
    real_open = probe_module._open

    def spy(path: Path, fmt: str | None) -> av.container.InputContainer:
        opened.append(fmt)
        return real_open(path, fmt)

    monkeypatch.setattr(probe_module, "_open", spy)
    info = probe(part)
    assert opened == [probe_module.ISO_FORMAT]
    assert info.error is None and info == guessed


def test_what_cannot_be_read_at_all_comes_back_with_its_error(tmp_path: Path) -> None:
    """The probe never raises (a damaged file is still stored and flagged): not for a
    path whose first bytes cannot be read either (a directory stands in for a file
    the disk fails to read)."""
    unreadable = tmp_path / ".incoming" / "1234-abcd.part"
    unreadable.mkdir(parents=True)
    (unreadable / "x").write_bytes(b"x")

    info = probe(unreadable)
    assert info.error is not None and info.error.startswith("unreadable by PyAV")


def test_a_video_in_another_container_is_found_by_content(tmp_path: Path) -> None:
    part = tmp_path / ".incoming" / "5678-ef01.part"
    part.parent.mkdir()
    with av.open(str(part), mode="w", format="mpegts") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for n in range(25):
            frame = av.VideoFrame(160, 120, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([n * 8]) * plane.buffer_size)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    info = probe(part)
    assert info.error is None, info.error
    assert (info.container, info.video_codec, info.width) == ("mpegts", "mpeg2video", 160)


def test_a_damaged_mp4_has_the_error_ffmpeg_gives_when_it_finds_the_format(
    tmp_path: Path,
) -> None:
    """The mov demuxer refuses it, and the file is read again as by content: its error
    is the one found that way, not one of the demuxer it was first offered to."""
    write_mp4(tmp_path / "clip.mp4", start=datetime(2026, 3, 15, 6, 30, tzinfo=UTC), seconds=1.0)
    data = (tmp_path / "clip.mp4").read_bytes()
    part = tmp_path / ".incoming" / "9abc-def0.part"
    part.parent.mkdir()
    part.write_bytes(data[:32])  # the ftyp box and nothing after it

    info = probe(part)
    assert info.error is not None and info.error.startswith("unreadable by PyAV")
    assert info == probe_module._read(part, None, decode=True)


# ------------------------------------------------ a photo's picture, checked whole


def _jpeg(tmp_path: Path, name: str = "IMG_0003.JPG") -> bytes:
    write_jpeg(tmp_path / name, width=640, height=480)
    return (tmp_path / name).read_bytes()


def _damage(tmp_path: Path, data: bytes) -> str | None:
    part = tmp_path / ".incoming" / "cut.part"
    part.parent.mkdir(exist_ok=True)
    part.write_bytes(data)
    return still_damage(part)


def test_a_whole_photo_has_no_damage_even_padded_after_its_end(tmp_path: Path) -> None:
    data = _jpeg(tmp_path)
    assert _damage(tmp_path, data) is None
    # some recorders write a photo into a block of zeros (or 0xFF)
    assert _damage(tmp_path, data + bytes(4096)) is None
    assert _damage(tmp_path, data + b"\xff" * 100) is None


def test_what_a_camera_appends_after_the_picture_is_not_damage(tmp_path: Path) -> None:
    """Vendor trailers, a motion photo's clip: bytes after the end-of-image marker,
    any number of them, whatever they hold."""
    data = _jpeg(tmp_path)
    assert _damage(tmp_path, data + b"SEFT trailer\n") is None
    write_mp4(tmp_path / "motion.mp4", start=datetime(2026, 3, 15, tzinfo=UTC), seconds=1.0)
    assert _damage(tmp_path, data + (tmp_path / "motion.mp4").read_bytes() * 8) is None


def test_a_photo_whose_end_never_reached_the_disk_is_damaged(tmp_path: Path) -> None:
    """Power lost after the file's size was written but before all its data: the rest
    of the file reads as zeros."""
    data = _jpeg(tmp_path)
    found = _damage(tmp_path, data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    assert found is not None and "end-of-image" in found


@pytest.mark.parametrize("kept", [0.3, 0.5, 0.9, -1])
def test_a_photo_cut_off_anywhere_in_its_picture_is_damaged(tmp_path: Path, kept: float) -> None:
    """The damage a recorder losing power leaves: FFmpeg's decoder conceals it (it
    decodes such a file), so the check is the file's structure."""
    data = _jpeg(tmp_path)
    cut = data[:-1] if kept == -1 else data[: int(len(data) * kept)]
    assert data.index(b"\xff\xda") < len(cut)  # the cut is in the picture, past the headers
    found = _damage(tmp_path, cut)
    assert found is not None and "cut off" in found and "end-of-image" in found


@pytest.mark.parametrize("chunk", [2, 3, 7, 4096])
def test_the_file_is_read_in_chunks_without_losing_a_marker_between_two(
    tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large photo is read a chunk at a time: a marker (or a stuffed 0xFF 0x00) split
    between two reads is still read as one."""
    monkeypatch.setattr(probe_module, "_CHUNK", chunk)
    data = _jpeg(tmp_path)
    assert _damage(tmp_path, data + bytes(5)) is None
    found = _damage(tmp_path, data[: len(data) * 2 // 3])
    assert found is not None and "end-of-image" in found
    # an MPF index, and the image it lists, read across chunks as well
    write_jpeg(tmp_path / "preview.jpg", width=160, height=120)
    photo = _mpf(data, (tmp_path / "preview.jpg").read_bytes())
    assert _damage(tmp_path, photo) is None
    found = _damage(tmp_path, photo[:-3])
    assert found is not None and "image 2 of 2" in found


def test_a_photo_cut_off_in_its_headers_is_damaged(tmp_path: Path) -> None:
    data = _jpeg(tmp_path)
    found = _damage(tmp_path, data[: data.index(b"\xff\xda") - 10])
    assert found is not None and "ends in its headers" in found


def _with_thumbnail(photo: bytes, thumb: bytes) -> bytes:
    """``photo`` with ``thumb`` embedded in an APP1 segment after its start, as cameras
    put an EXIF thumbnail (a whole JPEG, with its own end-of-image marker)."""
    body = b"Exif\x00\x00" + thumb
    return photo[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + photo[2:]


def test_a_photo_cut_off_just_after_its_thumbnail_is_damaged(tmp_path: Path) -> None:
    """The thumbnail ends with the marker a whole photo ends with: only a walk of the
    segments tells that the picture itself never began."""
    write_jpeg(tmp_path / "thumb.jpg", width=160, height=120)
    thumb = (tmp_path / "thumb.jpg").read_bytes()
    photo = _with_thumbnail(_jpeg(tmp_path), thumb)
    assert _damage(tmp_path, photo) is None
    cut = photo[: photo.index(thumb) + len(thumb)]
    assert cut.endswith(b"\xff\xd9")
    found = _damage(tmp_path, cut)
    assert found is not None and "cut off" in found


def _png(tmp_path: Path) -> bytes:
    """A PNG of a test pattern, encoded by FFmpeg's PNG encoder."""
    frame = av.VideoFrame(64, 48, "rgb24")
    for plane in frame.planes:
        size = plane.buffer_size
        plane.update(bytes(range(256)) * (size // 256) + bytes(size % 256))
    ctx = av.CodecContext.create("png", "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = 64, 48, "rgb24"
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


def test_a_png_is_damaged_only_when_cut_off(tmp_path: Path) -> None:
    data = _png(tmp_path)
    assert data.startswith(b"\x89PNG") and _damage(tmp_path, data) is None
    found = _damage(tmp_path, data[: len(data) // 2])
    assert found is not None and "PNG without IEND" in found
    assert _damage(tmp_path, data + b"trailer after IEND") is None


def _mpf(first: bytes, *more: bytes) -> bytes:
    """``first`` with an MPF index (APP2, CIPA DC-007) listing it and ``more`` after it,
    followed by them: how cameras store a large preview or a second view. Little-endian,
    offsets counted from the index's TIFF header, the first image's being 0."""
    n = 1 + len(more)
    entries_at = 8 + 2 + 3 * 12 + 4  # TIFF header, the IFD's count, 3 tags, next IFD

    def u16(v: int) -> bytes:
        return v.to_bytes(2, "little")

    def u32(v: int) -> bytes:
        return v.to_bytes(4, "little")

    def index(sizes: list[int], offsets: list[int]) -> bytes:
        tiff = b"II*\x00" + u32(8) + u16(3)
        tiff += u16(0xB000) + u16(7) + u32(4) + b"0100"  # MPFVersion
        tiff += u16(0xB001) + u16(4) + u32(1) + u32(n)  # NumberOfImages
        tiff += u16(0xB002) + u16(7) + u32(16 * n) + u32(entries_at)  # MPEntry
        tiff += u32(0)
        for size, offset in zip(sizes, offsets, strict=True):
            tiff += u32(0x20030000 if offset == 0 else 0x00010002) + u32(size) + u32(offset)
            tiff += u16(0) + u16(0)
        body = b"MPF\x00" + tiff
        return b"\xff\xe2" + u16(len(body) + 2)[::-1] + body  # a segment's length: big-endian

    probe_len = len(index([0] * n, [0] * n))  # its size does not depend on the values
    head = len(first) + probe_len
    base = 2 + 4 + 4  # SOI, the APP2 marker and length, "MPF\0"
    offsets, at = [0], head
    for image in more:
        offsets.append(at - base)
        at += len(image)
    sizes = [head, *(len(m) for m in more)]
    return first[:2] + index(sizes, offsets) + first[2:] + b"".join(more)


def test_a_photo_with_more_images_is_whole_only_with_all_its_mpf_index_lists(
    tmp_path: Path,
) -> None:
    """A JPEG whose MPF index lists a preview after its end-of-image: cut after the
    first picture, or in the preview, it is damaged; whole (or padded) it is not."""
    write_jpeg(tmp_path / "preview.jpg", width=320, height=240)
    preview = (tmp_path / "preview.jpg").read_bytes()
    photo = _mpf(_jpeg(tmp_path), preview)
    assert photo.count(b"\xff\xd8") >= 2
    assert _damage(tmp_path, photo) is None
    assert _damage(tmp_path, photo + bytes(4096)) is None
    first_end = len(photo) - len(preview)
    assert photo[first_end - 2 : first_end] == b"\xff\xd9"
    for cut in (first_end, first_end + 1, first_end + len(preview) // 2, len(photo) - 1):
        found = _damage(tmp_path, photo[:cut])
        assert found is not None and "cut off" in found and "image 2 of 2" in found, cut
    # power lost after the size was written: the preview reads as zeros
    zeroed = photo[:first_end] + bytes(len(preview))
    found = _damage(tmp_path, zeroed)
    assert found is not None and "image 2 of 2" in found
    # the first picture's own damage is still what is told first
    found = _damage(tmp_path, photo[: first_end // 2])
    assert found is not None and "end-of-image" in found and "MPF" not in found


def test_an_mpf_index_that_cannot_be_read_leaves_the_picture_to_its_own_check(
    tmp_path: Path,
) -> None:
    """A broken or foreign APP2 segment is not damage to the picture (nor a crash)."""
    data = _jpeg(tmp_path)
    for body in (b"MPF\x00XX*\x00", b"MPF\x00II*\x00\xff\xff\xff\xff", b"ICC_PROFILE\x00"):
        segment = b"\xff\xe2" + (len(body) + 2).to_bytes(2, "big") + body
        assert _damage(tmp_path, data[:2] + segment + data[2:]) is None, body
