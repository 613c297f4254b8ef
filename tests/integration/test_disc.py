"""Disc images (issue 15, 刻录光盘): ``dockd export ... --iso FILE`` and the archive's
optical targets write ISO 9660 images with Rock Ridge, Joliet and UDF that read back whole.

Each image is checked here as its receiver would, with the real tools: the bag extracted
from the Rock Ridge tree by ``xorriso`` and validated by bagit-python, the UDF tree seen
by ``udfinfo`` (udftools) and read through pycdlib with the bag's real names, the Joliet
tree (what older Windows reads) listing the bag's names. A byte flipped in an image
makes the read-back fail, naming the image and the file. (7-Zip's reading of the UDF
tree: test_disc_7zip.py; images written by xorriso before UDF: test_disc_udf.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import bagit
import blake3
import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.errors import ConfigError
from dockd.evidence import cases, disc
from dockd.evidence.access import Access
from dockd.evidence.export import export_bag
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, AuditEvent
from dockd.policy import placing
from dockd.sweeps.archive import run_archive
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register
from tests.helpers.skips import need
from tests.helpers.station import make_config, write_config
from tests.helpers.udftree import udf_tree


@pytest.fixture(autouse=True)
def _xorriso() -> None:
    need(tools=("xorriso",), why="disc images are written and read back by xorriso")


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    """Two clips, a photo and a clip with a Chinese name (Joliet must carry it)."""
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=True)


def _ingest(ctx: Context, clock: FixedClock, rec: Recorder) -> list[int]:
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    by_path = {f.relpath: f.file_id for f in result.files if f.file_id is not None}
    return [by_path[r.relpath] for r in rec.recordings if r.kind in ("video", "photo")]


def xorriso(*args: str) -> subprocess.CompletedProcess[str]:
    """xorriso as a user runs it (names as UTF-8 whatever the locale)."""
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        ["xorriso", *args], capture_output=True, text=True, env=env, check=False, timeout=300
    )


def extracted_bag(image: Path, into: Path) -> bagit.Bag:
    """The image's content copied out by xorriso, then validated (every hash) by bagit."""
    proc = xorriso("-md5", "on", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(into))
    assert proc.returncode == 0, proc.stderr
    extracted = bagit.Bag(str(into))
    extracted.validate()
    for here, dirs, _ in os.walk(into):  # read-only as written: let pytest clean up
        for d in dirs:
            os.chmod(os.path.join(here, d), 0o700)
    return extracted


def udfinfo(image: Path) -> dict[str, str]:
    """What udftools' ``udfinfo`` says of the UDF file system in ``image``."""
    proc = subprocess.run(
        ["udfinfo", str(image)], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return dict(ln.split("=", 1) for ln in proc.stdout.splitlines() if "=" in ln)


def joliet_files(image: Path) -> tuple[str, set[str]]:
    """What a Windows reader sees: the image loaded by its Joliet tree (Rock Ridge off)."""
    proc = xorriso("-read_fs", "norock", "-indev", str(image), "-toc", "-find", "/", "-type", "f")
    assert proc.returncode == 0, proc.stderr
    names = {ln.strip("'") for ln in proc.stdout.splitlines() if ln.startswith("'/")}
    return proc.stdout, names


def flip_a_byte_of(image: Path, content: bytes) -> Path:
    """A copy of ``image`` with one byte of ``content`` (a file stored in it) flipped."""
    data = bytearray(image.read_bytes())
    at = data.find(content[:4096])
    assert at >= 0
    data[at + len(content) // 2] ^= 0xFF
    bad = image.with_name("flipped.iso")
    bad.write_bytes(bytes(data))
    return bad


# ----------------------------------------------------------------------------- export


def test_export_with_iso_writes_an_image_that_reads_back_whole(
    ctx: Context,
    clock: FixedClock,
    rec: Recorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    need(tools=("udfinfo",), why="the image's UDF tree is read by udftools")
    ids = _ingest(ctx, clock, rec)
    with ctx.ledger.session() as s:
        rows = cases.select_files(s, file_ids=ids)
        cases.tag_files(s, rows, cases.Tag(case_number="K-1/2026"), at=clock.now(), actor="clerk")
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    dest, iso = tmp_path / "bag", tmp_path / "disc" / "K-1.iso"
    lina = add_account(ctx.ledger, "lina", "officer")
    act_as(monkeypatch, lina)
    capsys.readouterr()
    ask = ["access", "request", "--case", "K-1/2026", "--kind", "export", "--reason", "court"]
    assert main(ask) == 0
    number = capsys.readouterr().out.strip()
    for login, role in (("wang", "legal"), ("zhao", "leader")):
        act_as(monkeypatch, add_account(ctx.ledger, login, role))
        assert main(["access", "approve", number]) == 0
    act_as(monkeypatch, lina)
    capsys.readouterr()

    assert main(["export", "--case", "K-1/2026", "--to", str(dest), "--iso", str(iso)]) == 0
    out = capsys.readouterr().out
    assert f"disc image {iso}: volume K_1_2026" in out and "verified" in out
    assert sorted(p.name for p in iso.parent.iterdir()) == ["K-1.iso"]  # no leftovers

    # A UDF file system (what Windows, macOS and Linux read first), as udftools sees it.
    info = udfinfo(iso)
    assert info["label"] == "K_1_2026" and info["impid"] == "*pycdlib"
    bag_files = {"/" + p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
    assert int(info["numfiles"]) == len(bag_files)

    # Its files are the bag's, under their real names (the Chinese-named clip too).
    in_udf = udf_tree(iso)
    assert set(in_udf) == set(bag_files)
    assert any("执法记录_现场" in name for name in in_udf)
    for name, content in in_udf.items():
        assert content == bag_files[name].read_bytes(), name

    # The bag copied out of the image is the exported bag, and validates.
    copy = extracted_bag(iso, tmp_path / "from-disc")
    assert copy.info["Case-Number"] == "K-1/2026" and copy.info["Extracted-By"] == "lina"
    payload = set(copy.payload_files())
    assert payload == set(bagit.Bag(str(dest)).payload_files()) and len(payload) == len(ids)
    for rel in payload:
        assert (tmp_path / "from-disc" / rel).read_bytes() == (dest / rel).read_bytes()
    assert (tmp_path / "from-disc" / "recording-form.html").read_text(encoding="utf-8") == (
        dest / "recording-form.html"
    ).read_text(encoding="utf-8")

    # Windows reads the Joliet tree: it is there, with every name of the bag, Chinese too.
    toc, names = joliet_files(iso)
    assert "ISO offers   : Rock_Ridge Joliet" in toc and "ISO loaded   : Joliet" in toc
    assert names == set(bag_files)
    assert any(not n.isascii() for n in names)  # the Chinese-named clip
    pvd = xorriso("-indev", str(iso), "-pvd_info").stdout
    assert "Volume Id    : K_1_2026" in pvd

    # The image is in the audit trail and the access register, with its hashes.
    data = iso.read_bytes()
    with ctx.ledger.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "file.export")))
    assert {int(e.subject_id) for e in events} == set(ids)
    for ev in events:
        d = json.loads(ev.details)
        assert d["iso"] == str(iso) and d["bag"] == str(dest)
        assert d["iso_blake3"] == blake3.blake3(data).hexdigest()
        assert d["iso_sha256"] == hashlib.sha256(data).hexdigest()
        assert d["iso_size_bytes"] == len(data) and d["iso_volume_id"] == "K_1_2026"

    # An existing image is never overwritten: refused before anything is copied.
    again = tmp_path / "bag2"
    code = main(["export", "--case", "K-1/2026", "--to", str(again), "--iso", str(iso)])
    assert code == 64
    assert f"{iso} already exists" in capsys.readouterr().err
    assert not again.exists() and iso.read_bytes() == data


def test_without_xorriso_the_export_stops_and_says_what_to_install(
    ctx: Context, clock: FixedClock, rec: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _ingest(ctx, clock, rec)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # a station without xorriso
    dest, iso = tmp_path / "out" / "bag", tmp_path / "out" / "K.iso"
    with pytest.raises(disc.DiscError, match=r"xorriso not found: apt install xorriso"):
        export_bag(
            config=ctx.config,
            ledger=ctx.ledger,
            alerts=ctx.alerts,
            clock=ctx.clock,
            dest=dest,
            access=Access(by="Li Na", reason="court", approved_by="Chief Wang"),
            file_ids=ids[:1],
            iso=iso,
        )
    assert list((tmp_path / "out").iterdir()) == []  # no bag, no image, no partial files
    with ctx.ledger.session() as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "file.export")) is None


def test_a_byte_flipped_in_an_image_fails_the_read_back(rec: Recorder, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    clip = next(r for r in rec.recordings if r.kind == "video")
    content = (rec.root / clip.relpath).read_bytes()
    (bag / "clip.mp4").write_bytes(content)
    bagit.make_bag(str(bag), checksums=["sha256"])  # -> bag/data/clip.mp4
    image = disc.make_image(bag, tmp_path / "ok.iso", volid="FLIP")
    disc.check_image(image.path)

    bad = flip_a_byte_of(image.path, content)
    for check in (disc.verify_image, disc.check_image):
        with pytest.raises(disc.DiscError) as err:
            check(bad)
        message = str(err.value)
        assert str(bad) in message and "data/clip.mp4" in message
        assert "damaged: do not burn or hand it over" in message
    with pytest.raises(disc.DiscError, match=r"data/clip.mp4 does not match its SHA-256"):
        disc.extract_file(bad, "/data/clip.mp4", tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "flipped.iso", "ok.iso"]


# ----------------------------------------------------------------------------- archive

BURNER = """#!/bin/sh
# A stand-in burner: records how it was called, or fails like a drive without a disc.
printf '%s\\n' "$@" > "{log}"
{fail}
"""


def _optical(tmp_path: Path, clock: FixedClock, rec: Recorder, *, fail: bool = False) -> Context:
    burner = tmp_path / "burn.sh"
    burner.write_text(
        BURNER.format(
            log=tmp_path / "burn.log",
            fail="echo 'no writable disc in /dev/sr-test' >&2; exit 3" if fail else "",
        )
    )
    burner.chmod(burner.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "optical").mkdir()
    cfg: Config = make_config(
        tmp_path,
        f"""
[archive]
burn_command = ["{burner}", "-v", "dev=/dev/sr-test", "{{image}}"]
[[archive.targets]]
name = "bd"
path = "{tmp_path / "optical"}"
kind = "optical"
reserve_mb = 0
capacity_mb = 23000
""",
    )
    led = open_ledger(cfg.ledger.url)
    alerts = AlertSink(led, cfg.station.id, clock, cfg.alerts)
    c = Context(cfg, led, clock, alerts)
    ids = _ingest(c, clock, rec)
    with led.session() as s:
        for file_id in ids[:2]:
            placing.place_hold(
                s, station="st-test", at=clock.now(), by="inspector", reason="evidence",
                file_id=file_id,
            )  # fmt: skip
    return c


def test_optical_target_makes_a_verified_image_and_burns_it(
    tmp_path: Path, clock: FixedClock, rec: Recorder
) -> None:
    ctx = _optical(tmp_path, clock, rec)
    try:
        report = run_archive(ctx)
        [target] = report.targets
        assert report.status == "ok" and target.status == "ok" and len(target.copied) == 2
        root = tmp_path / "optical" / "st-test"
        image = root / f"{target.batch}.iso"
        assert target.image == str(image) and image.is_file()
        assert sorted(p.name for p in root.iterdir()) == [str(target.batch), image.name]
        assert report.counts()["bd"]["image"] == str(image)

        disc.check_image(image)
        copy = extracted_bag(image, tmp_path / "from-disc")
        assert {c.path.removeprefix(f"st-test/{target.batch}/") for c in target.copied} == set(
            copy.payload_files()
        )
        _, names = joliet_files(image)
        assert "/manifest-blake3.txt" in names
        assert set(udf_tree(image)) == names  # the UDF tree holds the same files

        # The burner ran once, without a shell, with the image's path as one argument.
        burnt = (tmp_path / "burn.log").read_text().splitlines()
        assert burnt == ["-v", "dev=/dev/sr-test", str(image)]

        with ctx.ledger.session() as s:
            events = {
                e.action: json.loads(e.details)
                for e in s.scalars(
                    select(AuditEvent).where(AuditEvent.subject_type == "archive_batch")
                )
            }
            assert s.scalar(select(Alert.id).where(Alert.kind == "archive.disc_failed")) is None
        assert events["archive.image"]["iso"] == str(image)
        assert (
            events["archive.image"]["iso_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
        )
        assert sorted(events["archive.image"]["files"]) == sorted(c.file_id for c in target.copied)
        assert events["archive.burn"]["iso"] == str(image)
    finally:
        ctx.ledger.close()


def test_a_failed_burn_is_an_alert_naming_the_image(
    tmp_path: Path, clock: FixedClock, rec: Recorder
) -> None:
    ctx = _optical(tmp_path, clock, rec, fail=True)
    try:
        report = run_archive(ctx)
        [target] = report.targets
        image = tmp_path / "optical" / "st-test" / f"{target.batch}.iso"
        assert target.image == str(image)
        disc.check_image(image)
        with ctx.ledger.session() as s:
            [alert] = s.scalars(select(Alert).where(Alert.kind == "archive.disc_failed"))
            actions = set(s.scalars(select(AuditEvent.action)))
        assert alert.subject == str(image) and alert.severity == "warning"
        assert str(image) in alert.message and "could not be burnt" in alert.message
        assert "no writable disc in /dev/sr-test" in alert.message
        assert "archive.image" in actions and "archive.burn" not in actions
    finally:
        ctx.ledger.close()


def test_burn_command_must_name_the_image(tmp_path: Path) -> None:
    for bad in ('["cdrecord", "dev=/dev/sr0"]', '["cdrecord", "{device}", "{image}"]'):
        with pytest.raises(ConfigError, match="burn_command"):
            make_config(tmp_path, f"[archive]\nburn_command = {bad}\n")
