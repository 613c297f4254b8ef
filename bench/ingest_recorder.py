"""The ingest benches' recorder and station: its tree of MP4 clips or JPEG photos, and
a fresh dockd station that knows it (device registered and assigned, so its files go
to the store).

The tree is vendor-A's layout, ``DCIM/100MEDIA/<serial>_<badge>_<YYYYMMDDhhmmss>_<seq>.MP4``
(or ``.JPG``) plus ``DEVICE.ID``. Clips are valid MP4s made with ``write_mp4`` +
``pad_mp4`` from fixtures/make_recorder.py. With ``fill = "random"`` the padding
``free`` box is overwritten with pseudo-random bytes: real footage is incompressible,
and some virtual disks read and write zeros faster than data. Photos are baseline
JPEGs from FFmpeg's ``mjpeg`` encoder (through PyAV, as the fixtures make theirs), of
frames with enough fine detail (noise) that each is about 300 KB, a body camera's
still.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import blake3
from common import REGISTERED, bench_config, context, register_device
from sqlalchemy import select

from dockd.clock import SystemClock
from dockd.context import Context
from dockd.ingest.outcome import SessionResult
from dockd.ledger import registry
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Recording
from fixtures.make_recorder import LOCAL_TZ, pad_mp4, write_mp4

Verify = Literal["none", "reread"]
Fill = Literal["random", "zeros"]

SERIAL = "ZFY2024BENCH01"
DEVICE = "DV-BENCH"
BADGE = "098765"
STATION = "st-bench"
_FILL_CHUNK = 1 << 22
# A 1280 x 720 frame of mid-grey with 4 bits of noise in every sample encodes at a fixed
# quantiser of 2 (mjpeg's finest) to 300 KB +- 0.2 %. (At the encoder's default, rate
# control by bit rate, the size drifts from photo to photo: 186 KB, 300 KB, ... 18 KB.)
PHOTO_WIDTH, PHOTO_HEIGHT = 1280, 720
_PHOTO_QSCALE = 2
_PHOTO_NOISE = bytes(112 + (b & 15) for b in range(256))
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG (full range), as fixtures/make_recorder.py writes
PHOTO_EVERY = timedelta(seconds=30)


def media_name(start: datetime, seq: int, ext: str) -> str:
    local = start.astimezone(LOCAL_TZ)
    return f"DCIM/100MEDIA/{SERIAL}_{BADGE}_{local:%Y%m%d%H%M%S}_{seq:04d}.{ext}"


def clip_name(start: datetime, seq: int) -> str:
    return media_name(start, seq, "MP4")


def photo_name(start: datetime, seq: int) -> str:
    return media_name(start, seq, "JPG")


def fill_random(path: Path, start: int, key: bytes) -> None:
    """Overwrite ``path`` from ``start`` to its end with BLAKE3-XOF bytes (incompressible)."""
    end = path.stat().st_size
    xof = blake3.blake3(key=key.ljust(32, b"\0")[:32])
    fd = os.open(path, os.O_WRONLY)
    try:
        pos = start
        while pos < end:
            n = min(_FILL_CHUNK, end - pos)
            data = xof.digest(length=n, seek=pos)
            done = 0
            while done < n:
                done += os.pwrite(fd, data[done:], pos + done)
            pos += n
    finally:
        os.close(fd)


def make_clip(path: Path, start: datetime, size: int, fill: Fill) -> None:
    """A valid MP4 of exactly ``size`` bytes: a 2 s clip grown by a ``free`` box."""
    write_mp4(path, start=start, seconds=2.0)
    base = path.stat().st_size
    if size < base + 16:
        raise SystemExit(f"size {size} too small: the MP4 clip alone is {base} bytes")
    pad_mp4(path, size)
    if fill == "random":
        header = 8 if size - base <= 0xFFFFFFFF else 16
        fill_random(path, base + header, path.name.encode())


def start_recorder(root: Path) -> None:
    (root / "DCIM" / "100MEDIA").mkdir(parents=True, exist_ok=True)
    (root / "DEVICE.ID").write_text(f"serial={SERIAL}\ndevice={DEVICE}\n", encoding="utf-8")


def make_tree(root: Path, sizes: Sequence[int], fill: Fill, first: datetime) -> list[Path]:
    start_recorder(root)
    paths: list[Path] = []
    for i, size in enumerate(sizes):
        t = first + i * timedelta(minutes=15)
        path = root / clip_name(t, i + 1)
        make_clip(path, t, size, fill)
        paths.append(path)
    return paths


def make_photos(root: Path, count: int, first: datetime) -> list[Path]:
    """``count`` JPEG photos, one every 30 s from ``first``, in a recorder tree at ``root``.

    One ``mjpeg`` encoder context encodes every photo: each packet it returns is a
    complete JPEG file (what FFmpeg's image2 muxer writes as a ``.jpg``). The noise is
    seeded, so a tree is the same from run to run.
    """
    start_recorder(root)
    ctx = av.CodecContext.create("mjpeg", "w")
    if not isinstance(ctx, av.VideoCodecContext):  # pragma: no cover
        raise TypeError(f"expected a video codec context, got {ctx!r}")
    ctx.width, ctx.height = PHOTO_WIDTH, PHOTO_HEIGHT
    ctx.pix_fmt = "yuv420p"
    ctx.color_range = _JPEG_RANGE
    ctx.time_base = Fraction(1, 1)
    ctx.qscale = True  # a fixed quantiser, not rate control: every photo the same size
    ctx.qmin = ctx.qmax = _PHOTO_QSCALE
    rng = random.Random(first.isoformat())
    paths: list[Path] = []

    def write(packets: Sequence[av.Packet[Any]]) -> None:
        for packet in packets:
            seq = len(paths) + 1
            path = root / photo_name(first + (seq - 1) * PHOTO_EVERY, seq)
            path.write_bytes(bytes(packet))
            paths.append(path)

    for i in range(count):
        frame = av.VideoFrame(PHOTO_WIDTH, PHOTO_HEIGHT, "yuv420p")
        for plane in frame.planes:
            plane.update(rng.randbytes(plane.buffer_size).translate(_PHOTO_NOISE))
        frame.pts = i
        frame.color_range = _JPEG_RANGE
        write(ctx.encode(frame))
    write(ctx.encode(None))
    if len(paths) != count:
        raise RuntimeError(f"the mjpeg encoder returned {len(paths)} photos for {count} frames")
    return paths


@contextlib.contextmanager
def station(run_dir: Path, verify: Verify, buffer_kib: int | None) -> Iterator[Context]:
    """A fresh config, SQLite ledger and store, with the bench recorder registered."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ingest = f"[ingest]\nverify = {verify!r}\n"
    if buffer_kib is not None:
        ingest += f"copy_buffer_kib = {buffer_kib}\n"
    config = bench_config(run_dir, STATION, ingest)
    ledger = open_ledger(config.ledger.url)
    clock = SystemClock()
    try:
        register_device(ledger, DEVICE, SERIAL, STATION, brand="Bench", model="BWC-1")
        with ledger.session() as s:
            registry.add_officer(
                s, badge=BADGE, name="Bench Officer", at=clock.now(), station=STATION, actor="b"
            )
            registry.assign(
                s,
                device_number=DEVICE,
                badge=BADGE,
                valid_from=REGISTERED,
                valid_until=None,
                at=clock.now(),
                station=STATION,
                actor="bench",
            )
        yield context(config, ledger, clock)
    finally:
        ledger.close()


def stored_hashes(ledger: Ledger) -> dict[str, str]:
    with ledger.session() as s:
        rows = s.execute(select(Recording.source_path, Recording.blake3)).all()
    return {str(path): str(digest) for path, digest in rows}


def check_result(result: SessionResult, expected: int) -> None:
    stored = result.count("stored")
    if result.outcome != "complete" or stored != expected or result.quarantined:
        problems = [f"{f.relpath}: {f.status} {f.reason or ''}" for f in result.files]
        raise RuntimeError(
            f"dockd ingest did not store every file: outcome={result.outcome} "
            f"stored={stored}/{expected} quarantined={result.quarantined}; {problems}"
        )
