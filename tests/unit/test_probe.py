"""What the probe reads from a file in ``.incoming`` (a name without extension).

Photos are read through FFmpeg's image demuxer first (told, not guessed: the guess
costs a JPEG five times the read), and whatever that cannot read is found by content,
so a file the recorder misnamed is still described, and a damaged one still flagged.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockd.ingest.probe import probe
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
