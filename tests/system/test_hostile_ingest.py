"""Hostile recorders: names no text codec likes, evidence naming two devices, ID files
full of control bytes, a card of damaged videos. No crash, no twin, no loss.

Every test runs the real `dockd` command on real files (real H.264 clips made with
PyAV, real FAT32 images on loop devices as root) and checks what an operator or an
auditor would: the exit status and summary, the files in the store, the ledger rows,
the alerts, and that the audit trail still verifies.
"""

from __future__ import annotations

import json
import os
import random
from datetime import timedelta
from pathlib import Path

import blake3
import pytest
from sqlalchemy import select

from dockd import store
from dockd.clock import FixedClock
from dockd.ledger.models import SessionFailure
from fixtures.make_recorder import DEFAULT_START, Recorder, make_recorder, write_mp4
from tests.helpers import fatimage
from tests.helpers.cli_station import make_station
from tests.helpers.ledgers import register
from tests.helpers.skips import need
from tests.helpers.station import NOW

SERIAL_A, SERIAL_B = "ZFY2024000123", "ZFY2024000999"


# ---------------------------------------------------------------------------- the station


def files_under(root: Path) -> set[bytes]:
    """Every regular file below ``root`` as exact relative bytes (outside ``.incoming``)."""
    out: set[bytes] = set()
    broot = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        dirnames[:] = [d for d in dirnames if d != store.INCOMING.encode()]
        for name in filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), broot))
    return out


def summary(stdout: str) -> str:
    line = next((ln for ln in stdout.splitlines() if "outcome " in ln), "")
    assert line, stdout
    return line.strip()


def clip(path: bytes, minute: int) -> bytes:
    """A real 1-second H.264 clip at ``path`` (any bytes); its content is unique by minute."""
    tmp = Path(os.fsdecode(path)).with_name(f"tmp-{minute}.mp4")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(tmp, start=DEFAULT_START + timedelta(minutes=minute), seconds=1.0)
    os.rename(os.fsencode(tmp), path)
    with open(path, "rb") as fh:
        return fh.read()


# ---------------------------------------------------------------------------- names


# name bytes on the recorder -> the display name the ledger must show
HOSTILE_NAMES = {
    "现场录像_0002.MP4".encode("gbk"): "现场录像_0002.MP4",  # GBK, as a Chinese-locale card
    b"\xff\xfeCLIP_0003.MP4": "\\xff\\xfeCLIP_0003.MP4",  # neither UTF-8 nor GB18030
    b"..mp4": "..mp4",  # a name that is only dots and an extension
    b"LF\nNAME_0004.MP4": "LF\nNAME_0004.MP4",  # a newline inside a name
    "执法记录_0005.MP4".encode(): "执法记录_0005.MP4",  # UTF-8 stays UTF-8
}


def test_any_name_bytes_are_taken_once_and_found_again_on_redock(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path / "rec", clips=1, extras=False)
    media = os.fsencode(rec.root / "DCIM" / "100MEDIA")
    content = {
        b"DCIM/100MEDIA/" + raw: clip(media + b"/" + raw, minute=10 + i)
        for i, raw in enumerate(HOSTILE_NAMES)
    }
    for r in rec.recordings:
        content[r.relpath.encode()] = rec.path(r).read_bytes()
    station = make_station(tmp_path / "station")
    with station.ledger() as led:
        register(led, FixedClock(NOW), rec)

    first = station.run("ingest", str(rec.root))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"outcome complete: {len(content)} stored, 0 already present" in summary(first.stdout)

    rows = {r.source_path_raw: r for r in station.rows()}
    assert set(rows) == set(content)
    for raw, display in HOSTILE_NAMES.items():
        row = rows[b"DCIM/100MEDIA/" + raw]
        assert row.source_path == "DCIM/100MEDIA/" + display
    for raw, data in content.items():
        row = rows[raw]
        assert row.blake3 == blake3.blake3(data).hexdigest()
        assert (station.store / row.store_path).read_bytes() == data
        name = row.store_path.rsplit("/", 1)[-1]
        assert not name.startswith(".") and not any(ord(c) < 0x20 for c in name), name
        assert "~" not in name, name
    gbk = b"DCIM/100MEDIA/" + "现场录像_0002.MP4".encode("gbk")
    assert rows[gbk].store_path.endswith("/现场录像_0002.MP4")
    assert rows[b"DCIM/100MEDIA/..mp4"].store_path.endswith(".mp4")
    assert rows["DCIM/100MEDIA/执法记录_0005.MP4".encode()].store_path.endswith(
        "/执法记录_0005.MP4"
    )

    # every name in the store is valid UTF-8, and each file there has its row
    stored = files_under(station.store)
    for stored_name in stored:
        stored_name.decode("utf-8")  # raises if not
    assert {r.store_path.encode() for r in rows.values()} == stored

    again = station.run("ingest", str(rec.root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"0 stored, {len(content)} already present" in summary(again.stdout)
    assert files_under(station.store) == stored
    assert len(station.rows()) == len(content)
    assert station.run("audit", "verify").returncode == 0

    # what an auditor reads: the display names, as JSON
    query = station.run("ledger", "query", "--format", "json")
    shown = {f["source_path"] for f in json.loads(query.stdout)}
    assert {"DCIM/100MEDIA/" + d for d in HOSTILE_NAMES.values()} <= shown


GBK_CARD_NAMES = {
    b"DCIM/100MEDIA/" + "执法记录.MP4".encode("gbk"): "DCIM/100MEDIA/执法记录.MP4",
    b"DCIM/" + "现场.MP4".encode("gbk"): "DCIM/现场.MP4",
}


def test_gbk_short_names_on_a_fat32_card(tmp_path: Path) -> None:
    """A FAT32 card whose 8.3 names are GBK bytes, docked through fusefat as dockd mounts it.

    fusefat 0.1a lists a GBK short name but cannot open it (see tests/helpers/fatimage.py);
    dockd reads those files from the loop device behind the mount (ingest/fatreader).
    Every file is taken, once, under its Chinese name, with its raw GBK bytes kept.
    """
    need(
        root=True,
        tools=fatimage.TOOLS,
        why="a real FAT32 image on a loop device, mounted read-only with fusefat",
    )
    ascii_name = f"DCIM/100MEDIA/{SERIAL_A}_012345_20260315063000_0001.MP4".encode()
    src = tmp_path / "src"
    files = {raw: clip(os.fsencode(src / f"c{i}.mp4"), i) for i, raw in enumerate(GBK_CARD_NAMES)}
    files[ascii_name] = clip(os.fsencode(src / "a.mp4"), 30)
    image = fatimage.gbk_card(tmp_path / "card.img", files, label="GBKCARD")

    station = make_station(tmp_path / "station")
    station.add_device("DV-0001", SERIAL_A)
    with fatimage.mounted(image, tmp_path / "mnt") as mnt:
        assert set(files) <= files_under(mnt)  # the card holds the GBK bytes, as the dock sees them
        first = station.run("ingest", str(mnt), "--device", "DV-0001")
        again = station.run("ingest", str(mnt), "--device", "DV-0001")

    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{len(files)} stored" in summary(first.stdout)
    rows = {r.source_path_raw: r for r in station.rows()}
    assert set(rows) == set(files)
    for raw, content in files.items():
        assert rows[raw].blake3 == blake3.blake3(content).hexdigest()
        assert (station.store / rows[raw].store_path).read_bytes() == content
    for raw, display in GBK_CARD_NAMES.items():
        assert rows[raw].source_path == display
        assert rows[raw].store_path.endswith("/" + display.rsplit("/", 1)[-1])
    assert files_under(station.store) == {r.store_path.encode() for r in rows.values()}
    with station.ledger() as led, led.read() as s:
        assert list(s.scalars(select(SessionFailure))) == []

    assert again.returncode == 0, again.stdout + again.stderr
    assert [s.outcome for s in station.sessions()] == ["complete", "complete"]  # may be wiped
    assert f"0 stored, {len(files)} already present" in summary(again.stdout)
    assert len(station.rows()) == len(files)
    assert station.run("audit", "verify").returncode == 0


# ---------------------------------------------------------------------------- identity


def conflicting_recorder(root: Path, evidence: str) -> Recorder:
    """A recorder whose evidence names DV-0001 (serial A) and DV-0002 (serial B) at once."""
    if evidence == "id-file":  # serial=A and device=DV-0002 in one ID file
        return make_recorder(root, serial=SERIAL_A, device_number="DV-0002", extras=False)
    # the ID file says DV-0001; every file name carries serial B
    rec = make_recorder(root, serial=SERIAL_B, device_number="DV-0001", extras=False)
    (root / "DEVICE.ID").write_text("device=DV-0001\n", encoding="utf-8")
    return rec


@pytest.mark.parametrize("evidence", ["id-file", "file-names"])
def test_recorder_naming_two_devices_is_quarantined_flagged_and_alerted_once(
    tmp_path: Path, evidence: str
) -> None:
    rec = conflicting_recorder(tmp_path / "rec", evidence)
    station = make_station(tmp_path / "station")
    station.add_device("DV-0001", SERIAL_A)
    station.add_device("DV-0002", SERIAL_B)

    first = station.run("ingest", str(rec.root))
    assert first.returncode in (0, 1), first.stdout + first.stderr

    assert files_under(station.store) == set()  # nothing under either device's folders
    rows = station.rows()
    assert sorted(r.source_path for r in rows) == sorted(r.relpath for r in rec.recordings)
    for row in rows:
        assert row.device_conflict and "device-conflict" in row.flags
        assert row.device_id is None
        assert (station.quarantine / row.store_path).read_bytes() == rec.path(
            next(r for r in rec.recordings if r.relpath == row.source_path)
        ).read_bytes()
    assert files_under(station.quarantine) == {r.store_path.encode() for r in rows}
    [session] = station.sessions()
    assert session.quarantined and session.device_id is None

    [alert] = station.alerts("device.conflict")
    assert alert.severity == "critical"
    assert "DV-0001" in alert.message and "DV-0002" in alert.message, alert.message

    # docked again: found in quarantine, no second copy, still one alert per dock at most
    again = station.run("ingest", str(rec.root))
    assert f"0 stored, {len(rec.recordings)} already present" in summary(again.stdout)
    assert files_under(station.quarantine) == {r.store_path.encode() for r in rows}
    assert station.run("audit", "verify").returncode == 0


def test_recorder_naming_two_devices_is_refused_when_the_policy_says_so(tmp_path: Path) -> None:
    rec = conflicting_recorder(tmp_path / "rec", "id-file")
    station = make_station(tmp_path / "station", '[ingest]\ndevice_conflict = "refuse"\n')
    station.add_device("DV-0001", SERIAL_A)
    station.add_device("DV-0002", SERIAL_B)

    refused = station.run("ingest", str(rec.root))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert files_under(station.store) == set() and files_under(station.quarantine) == set()
    assert station.rows() == []
    assert [s.outcome for s in station.sessions()] == ["refused"]
    [alert] = station.alerts("device.conflict")
    assert alert.severity == "critical"
    assert "DV-0001" in alert.message and "DV-0002" in alert.message, alert.message


@pytest.mark.parametrize(
    "id_file",
    [
        b"serial=ZFY20\x0024000777\ndevice=\x00\x01\x02\n",
        b"device=DV-\x1b[2J\x1b]0;owned\x07EVIL\r\nserial=\x7f\x00\n",
        b"serial=\x00\x00\x00\x00\ndevice=\x1b\x1b\n",
    ],
    ids=["nul-in-serial", "escape-sequences", "only-control-bytes"],
)
def test_control_bytes_in_an_id_file_never_reach_the_ledger(tmp_path: Path, id_file: bytes) -> None:
    rec = make_recorder(tmp_path / "rec", serial="ZFY2024000777", extras=False)
    (rec.root / "DEVICE.ID").write_bytes(id_file)
    station = make_station(tmp_path / "station")

    result = station.run("ingest", str(rec.root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b" not in result.stdout and "\x00" not in result.stdout

    refs = [s.device_ref or "" for s in station.sessions()]
    refs += [r.device_ref for r in station.rows()]
    assert refs
    for ref in refs:
        assert ref and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in ref), repr(ref)
    assert len(station.rows()) == len(rec.recordings)  # quarantined, all of them


# ---------------------------------------------------------------------------- alerts


def test_thirty_damaged_videos_are_stored_flagged_and_make_one_alert(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path / "rec", clips=0, extras=False)
    media = rec.root / "DCIM" / "100MEDIA"
    names = [
        f"{SERIAL_A}_012345_20260315{7 + i // 60:02d}{i % 60:02d}00_{i:04d}.MP4" for i in range(30)
    ]
    for i, name in enumerate(names):
        (media / name).write_bytes(random.Random(i).randbytes(20_000 + 997 * i))
    station = make_station(tmp_path / "station")
    with station.ledger() as led:
        register(led, FixedClock(NOW), rec)

    result = station.run("ingest", str(rec.root))
    assert result.returncode == 0, result.stdout + result.stderr

    damaged = [r for r in station.rows() if r.source_path.endswith(".MP4")]
    assert sorted(r.source_path for r in damaged) == [f"DCIM/100MEDIA/{n}" for n in names]
    assert all("probe-failed" in r.flags for r in damaged)
    for r in damaged:
        assert (station.store / r.store_path).read_bytes() == (
            media / Path(r.source_path).name
        ).read_bytes()

    [alert] = station.alerts("ingest.probe_failed")
    assert alert.occurrences == 30
    assert "30" in alert.message and names[0] in alert.message, alert.message

    shown = json.loads(station.run("alerts", "list", "--format", "json").stdout)
    probe = [a for a in shown if a["kind"] == "ingest.probe_failed"]
    assert len(probe) == 1 and probe[0]["occurrences"] == 30
