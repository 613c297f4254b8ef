"""Read what a recording is, with PyAV. The only module that imports ``av``.

Never raises for a damaged file: a file PyAV cannot read comes back with
``error`` set, and is still stored and flagged (evidence is never dropped for
being damaged).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Literal

import av


@dataclass(frozen=True)
class ProbeResult:
    container: str | None = None
    duration_s: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    creation_time: datetime | None = None
    error: str | None = None


def _parse_creation_time(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    if ts.year < 2000:  # recorders with an unset clock write 1970 or 1904
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


# FFmpeg's demuxer for still images. A photo's copy in .incoming has no extension, so
# FFmpeg would find its format by content, which costs a 300 KB JPEG about 30 ms
# against 6 ms when told: at a shift's 1,000 stills that is most of the dock's time.
STILL_FORMAT = "image2"

# FFmpeg's demuxer for the ISO media files (MP4, MOV, 3GP) a recorder's videos are,
# known by their first box, ``ftyp``. Told it, FFmpeg does not try its hundreds of
# other demuxers on the file first: a quarter of the open's time, and about 1 MiB of
# their code that would otherwise be paged into every ingest.
# PyAV names a container by the format it was told; the ledger keeps the name FFmpeg
# gives the demuxer when it finds it by content, as for every file before.
ISO_FORMAT = "mov"
_ISO_NAME = "mov,mp4,m4a,3gp,3g2,mj2"
_ISO_BOXES = (b"ftyp",)


def probe(path: Path, *, still: bool = False) -> ProbeResult:
    """Container, duration, codecs, resolution and embedded creation time of a file.

    ``still``: the recorder named it a photo. FFmpeg's image demuxer is asked first,
    and when that cannot read it (a video named .JPG) the format is found by content.
    What the image demuxer reads is not decoded here: the ingest checks the picture
    (:func:`still_damage`) in its verify stage, beside the next file's copy. Anything
    else has its first frame decoded here (its recording time is judged against its
    mtime only when it decodes: ``clockcheck``).
    """
    if path.stat().st_size == 0:
        return ProbeResult(error="empty file (0 bytes)")
    if still:
        read = _read(path, STILL_FORMAT, decode=False)
        if read.error is None:  # a still has no duration (image2 gives it one frame's)
            return dataclasses.replace(read, duration_s=None)
    elif _is_iso_media(path):
        read = _read(path, ISO_FORMAT, decode=True)
        if read.error is None:
            return read
    # found by content, and a damaged file's error is the one FFmpeg gives then
    return _read(path, None, decode=True)


def _is_iso_media(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(8)[4:8] in _ISO_BOXES
    except OSError:  # read as by content, which says what is wrong with the file
        return False


def still_damage(path: Path) -> str | None:
    """Why the picture of a photo is damaged; None when it is whole.

    A JPEG or PNG is checked by its structure: the picture must be there in full, up
    to the marker that ends it (a JPEG's end-of-image after its scans, a PNG's IEND
    chunk); what a camera appends after that marker is not the picture's business. A
    recorder losing power while it writes a photo leaves it cut off, and FFmpeg's
    decoder, which conceals what is missing, decodes a JPEG cut anywhere past its
    first few kilobytes without complaint. Another format has its first frame decoded
    (:func:`first_frame`). An error reading the file is raised: that is the store's
    failure, not the photo's.
    """
    with path.open("rb") as f:
        data = _Reader(f)
        head = data.get(0, len(_PNG)) or b""
        if head.startswith(_JPEG):
            return _jpeg_damage(data)
        if head.startswith(_PNG):
            return _png_damage(data)
    return first_frame(path, still=True)


class _Reader:
    """A file read forward in chunks, for a walk of its markers (a photo may be large:
    it is never read whole into memory)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f, self._buf, self._base = f, b"", 0

    def _has(self, at: int, n: int) -> bool:
        if at < self._base or at + n > self._base + len(self._buf):
            self._f.seek(at)
            self._buf, self._base = self._f.read(max(n, _CHUNK)), at
        return self._base + len(self._buf) >= at + n

    def get(self, at: int, n: int) -> bytes | None:
        """``n`` bytes at ``at``; None when the file ends before them."""
        return self._buf[at - self._base : at - self._base + n] if self._has(at, n) else None

    def next_marker(self, at: int) -> int:
        """Where the next marker is from ``at`` in a scan's entropy-coded data (there
        0xFF is followed by 0x00, a stuffed byte, or by a restart marker; of fill bytes
        the last begins the marker); -1 when the file ends first."""
        while self._has(at, 2):
            found = _MARKER.search(self._buf, at - self._base)
            if found is not None and found.start() < len(self._buf) - 1:
                return self._base + found.start()
            at = self._base + len(self._buf) - 1  # its byte after is in the next read
        return -1


_MARKER = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")
_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
_CHUNK = 1 << 20
_CUT_OFF = "picture cut off (file damaged or truncated)"
_EOI, _SOS = 0xD9, 0xDA
# Markers without a length: TEM, RST0-7 (and the SOI already read).
_BARE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_damage(data: _Reader) -> str | None:
    """A JPEG's markers walked from its start to its end-of-image: each segment skipped
    by its length (an embedded thumbnail, with an end-of-image of its own, too), each
    scan's data to the marker after it. A picture whose MPF index (APP2, CIPA DC-007)
    lists more images after it (a camera's large preview, a second view) is whole only
    with each of them: they are checked the same way where the index puts them."""
    images: list[tuple[int, int]] = []
    damage = _jpeg_walk(data, 0, images)
    if damage is not None:
        return damage
    for k, (start, size) in enumerate(images, start=2):
        where = f"image {k} of {len(images) + 1} its MPF index lists"
        if data.get(start, 2) != b"\xff\xd8" or data.get(start + size - 1, 1) is None:
            return f"{_CUT_OFF} (JPEG without the {where})"
        found = _jpeg_walk(data, start, None)
        if found is not None:
            return f"{found[:-1]}, in the {where})"
    return None


def _jpeg_walk(data: _Reader, start: int, images: list[tuple[int, int]] | None) -> str | None:
    """:func:`_jpeg_damage` of the JPEG at ``start``; with ``images``, its MPF index's
    further images are added to it as (start, size) in the file."""
    at, scanned = start + 2, False
    while True:
        pair = data.get(at, 2)
        if pair is None:
            where = "without its end-of-image marker" if scanned else "ends in its headers"
            return f"{_CUT_OFF} (JPEG {where})"
        if pair[0] != 0xFF:
            return f"{_CUT_OFF} (JPEG headers broken at byte {at})"
        marker = pair[1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
        elif marker == _EOI:
            return None if scanned else f"{_CUT_OFF} (JPEG ends before its picture)"
        elif marker in _BARE:
            at += 2
        else:
            size = data.get(at + 2, 2)
            if size is None:
                return f"{_CUT_OFF} (JPEG ends in its headers)"
            length = int.from_bytes(size, "big")
            if marker == _APP2 and images is not None and not images:
                images.extend(_mpf_images(data, at + 4, length - 2))
            at += 2 + length
            if marker == _SOS:
                scanned, at = True, data.next_marker(at)
                if at < 0:
                    return f"{_CUT_OFF} (JPEG without its end-of-image marker)"


_APP2, _MPF = 0xE2, b"MPF\x00"
_MP_IMAGES, _MP_ENTRIES = 0xB001, 0xB002  # the MP Index IFD's NumberOfImages, MPEntry


def _mpf_images(data: _Reader, at: int, length: int) -> list[tuple[int, int]]:
    """The images after the first that an APP2 segment's MPF index lists, as (start,
    size) in the file; none when the segment is no MPF index or cannot be read (a
    picture is not called damaged for a header it may not need)."""
    seg = data.get(at, length)
    if seg is None or not seg.startswith(_MPF):
        return []
    base, tiff = at + len(_MPF), seg[len(_MPF) :]  # offsets count from the TIFF header
    order: Literal["little", "big"]
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return []

    def num(i: int, n: int) -> int | None:
        return int.from_bytes(tiff[i : i + n], order) if i + n <= len(tiff) else None

    ifd = num(4, 4)
    count = num(ifd, 2) if ifd is not None else None
    if ifd is None or count is None:
        return []
    n_images, entries = None, None
    for e in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag = num(e, 2)
        if tag == _MP_IMAGES:
            n_images = num(e + 8, 4)
        elif tag == _MP_ENTRIES:
            entries = num(e + 8, 4)
    if n_images is None or entries is None:
        return []
    out = []
    for m in range(entries + 16, entries + 16 * n_images, 16):  # the first is this one
        size, offset = num(m + 4, 4), num(m + 8, 4)
        if size is None or offset is None:
            return []
        if size and offset:  # an entry without its image (none written) is left alone
            out.append((base + offset, size))
    return out


def _png_damage(data: _Reader) -> str | None:
    """A PNG's chunks walked by their lengths to its IEND chunk."""
    at = len(_PNG)
    while (chunk := data.get(at, 8)) is not None:
        if chunk[4:] == b"IEND":
            return None
        at += 12 + int.from_bytes(chunk[:4], "big")  # length, type, data, CRC
    return f"{_CUT_OFF} (PNG without IEND)"


def first_frame(path: Path, *, still: bool = False) -> str | None:
    """Why the first video frame of ``path`` does not decode; None when it does, or when
    the file has no video. This catches files whose headers are fine but whose data is
    cut off (the common damage when a recorder loses power).

    ``still``: read through the image demuxer, as :func:`probe` found the file.
    """
    try:
        with _open(path, STILL_FORMAT if still else None) as container:
            if container.streams.video:
                next(container.decode(video=0))
    except StopIteration:
        return NO_FRAME
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        return _unreadable(exc)
    return None


NO_FRAME = "no decodable video frame (file damaged or truncated)"


def _open(path: Path, fmt: str | None) -> av.container.InputContainer:
    return av.open(str(path), mode="r", format=fmt, metadata_errors="ignore")


def _unreadable(exc: Exception) -> str:
    # The message names the temporary copy; keep only what is wrong with the data.
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return f"unreadable by PyAV: {reason}"


def _read(path: Path, fmt: str | None, *, decode: bool) -> ProbeResult:
    try:
        with _open(path, fmt) as container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is not None and video.codec_context is None:
                # FFmpeg found a stream but no decoder for it (the image demuxer
                # given a video): not read, so the caller finds the format by content
                return ProbeResult(error="unreadable by PyAV: no decoder for its video")
            duration = float(container.duration) / av.time_base if container.duration else None
            if duration is None and video is not None and video.duration and video.time_base:
                duration = float(video.duration * video.time_base)
            meta = dict(container.metadata)
            if decode and video is not None:
                # Decoding the first frame catches files whose header is fine but whose
                # data is cut off (the common damage when a recorder loses power).
                next(container.decode(video=0))
            return ProbeResult(
                container=_ISO_NAME if fmt == ISO_FORMAT else container.format.name,
                duration_s=round(duration, 3) if duration is not None else None,
                video_codec=video.codec_context.name if video is not None else None,
                audio_codec=audio.codec_context.name if audio is not None else None,
                # a damaged header can leave them 0: unknown, not a size
                width=(video.codec_context.width or None) if video is not None else None,
                height=(video.codec_context.height or None) if video is not None else None,
                creation_time=_parse_creation_time(meta.get("creation_time")),
            )
    except StopIteration:
        return ProbeResult(error=NO_FRAME)
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        return ProbeResult(error=_unreadable(exc))


def thumbnail(path: Path, *, width: int = 320, at_s: float = 1.0) -> bytes | None:
    """A JPEG of the first frame at or after ``at_s`` seconds (the first frame of a
    shorter clip), ``width`` pixels wide; None for a file without a decodable frame.

    Encoded with FFmpeg's MJPEG encoder through PyAV, so no imaging library is needed.
    Reads the file only (the store's originals are 0440).
    """
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is None or frame.time >= at_s:
                    break
            if chosen is None:
                return None
            height = max(2, round(chosen.height * width / max(chosen.width, 1) / 2) * 2)
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width = width
            encoder.height = height
            encoder.pix_fmt = "yuvj420p"
            encoder.time_base = Fraction(1, 25)
            scaled = chosen.reformat(width=width, height=height, format="yuvj420p")
            packets = [*encoder.encode(scaled), *encoder.encode(None)]
            data = b"".join(bytes(p) for p in packets)
            return data or None
    except (av.FFmpegError, OSError, ValueError, IndexError):
        return None
