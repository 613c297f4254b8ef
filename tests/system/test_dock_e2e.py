"""The dock daemon end to end: real udevd, real FAT32/exFAT images on loop devices,
a real ``dockd run`` subprocess; the test reads the store and the ledger.

Nothing on the path is mocked. The one stand-in is the USB unplug (see
tests/helpers/blockdev.py): the loop device is detached and the kernel is asked to send
the ``remove`` uevent a vanished USB disk sends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd import store
from dockd.clock import FixedClock
from dockd.dock.watcher import udevd_running
from dockd.ledger import registry
from dockd.ledger.models import AuditEvent
from fixtures.make_recorder import pad_mp4
from tests.helpers.blockdev import (
    BIG,
    MID_COPY,
    DockEnv,
    MiB,
    assert_stored_byte_for_byte,
    dock_env,
    image_files,
    mounts_under,
    run,
    wait_for,
)

pytestmark = pytest.mark.root


@pytest.fixture
def env_no_udevd(tmp_path: Path, clock: FixedClock) -> Iterator[DockEnv]:
    with dock_env(tmp_path, clock, udevd=False) as e:
        yield e


# ------------------------------------------------------------------------ tests


def test_fat32_and_exfat_recorders_docked_together_are_taken_in_parallel(env: DockEnv) -> None:
    env.configure(dock="copy_limit_mb_s = 40")  # >= 2.4 s per session, even from page cache
    a = env.recorder("a", vendor="a", serial="ZFYA0001", device_number="DV-0101", badge="100001")
    b = env.recorder(
        "b", vendor="b", serial="ZFYB0002", device_number="DV-0102", badge="100002", extras=False
    )
    for rec in (a, b):
        pad_mp4(rec.path(rec.of_kind("video")[1]), 96 * MiB)
        env.register(rec)
    fat, exfat = env.fat(a, 1, 192), env.exfat(b, 2, 192)
    daemon = env.daemon(watchdog_usec=400_000)

    env.attach(fat)
    env.attach(exfat)
    s1, s2 = env.wait_sessions(2)

    assert {s1.outcome, s2.outcome} == {"complete"}, (s1.notes, s2.notes)
    assert {s1.device_ref, s2.device_ref} == {"DV-0101", "DV-0102"}
    assert s1.ended_at is not None and s2.ended_at is not None
    assert s1.started_at < s2.ended_at and s2.started_at < s1.ended_at, "not in parallel"
    assert_stored_byte_for_byte(env, a)
    assert_stored_byte_for_byte(env, b)
    # every file has its officer, and the recorder's storage was recorded at dock
    assert {r.officer_id is not None for r in env.recordings()} == {True}
    assert all(s.fs_capacity_bytes and s.fs_free_bytes is not None for s in (s1, s2))
    # unmounted when done
    daemon.wait_event("dock ended", 20, session_id=s1.id)
    daemon.wait_event("dock ended", 20, session_id=s2.id)
    assert mounts_under(env.run_dir) == []
    assert daemon.events("mounted") and len(daemon.events("unmounted")) == 2

    # logs: JSON lines (not a terminal); dock, file and end events carry device/officer/session
    lines = [ln for ln in daemon.log_path.read_text().splitlines() if ln.strip()]
    assert len(daemon.events()) == len(lines)
    for s, rec in ((s1, a), (s2, b)) if s1.device_ref == "DV-0101" else ((s2, a), (s1, b)):
        keys = {"session_id": s.id, "device": rec.device_number, "officer": rec.badge}
        assert daemon.events("recorder docked", **keys)
        assert len(daemon.events("file stored", **keys)) == len(rec.recordings)
        assert daemon.events("dock session ended", **keys)
        assert daemon.events("dock ended", **keys)
    # the pings systemd's watchdog expects go on after the docks (a fresh one, not the first)
    daemon.wait_notify("WATCHDOG=1", 5, after=len(daemon.notifications))
    stop_s = env.config.dock.stop_timeout_s
    code, _ = daemon.terminate(timeout=stop_s + 30)  # a guard; the outcome is what counts:
    assert code == 0, daemon.tail()  # exit 0: stopped on its own, before the stop bound
    assert daemon.events("dockd stopped", clean=True)


def test_unplugged_mid_copy_ends_interrupted_and_redock_takes_only_the_rest(
    env: DockEnv,
) -> None:
    env.configure(dock=MID_COPY)
    rec = env.recorder("u", vendor="a", extras=False)
    big = rec.of_kind("video")[1]
    pad_mp4(rec.path(big), BIG)
    env.register(rec)
    image = env.fat(rec, 1, BIG // MiB + 96)
    daemon = env.daemon()

    loop = env.attach(image)
    wait_for("the big file to be half-way", env.copying, 60, every=0.05)
    loop.unplug()
    (first,) = env.wait_sessions(1, 30)

    assert first.outcome == "interrupted"
    assert env.parts() == []  # the file being copied was discarded, not left half-done
    taken = {r.source_path for r in env.recordings()}
    assert big.relpath not in taken
    assert first.files_stored == len(taken) == 2  # the two files sorted before it
    assert first.notes and "not taken" in first.notes
    assert daemon.events("recorder removed", session_id=first.id, device=rec.device_number)
    daemon.wait_event("recorder unplugged during ingest", 10, session_id=first.id)
    assert env.alerts("ingest.interrupted")
    loop.wait_released()
    assert mounts_under(env.run_dir) == []

    env.attach(image)
    _, second = env.wait_sessions(2)
    assert second.outcome == "complete"
    assert second.files_present == 2
    assert second.files_stored == len(rec.recordings) - 2
    assert_stored_byte_for_byte(env, rec)  # nothing doubled, the big file whole
    stored = [p for p in env.store_root.rglob("*") if p.is_file() and store.INCOMING not in p.parts]
    assert len(stored) == len(rec.recordings)


def test_unplugged_while_the_file_before_is_verified_that_file_is_kept_whole(
    env: DockEnv,
) -> None:
    """The overlap: file 2's re-read verify runs while file 3 is copied. The recorder goes
    away mid-copy of file 3; file 2 (already whole in the store) still finishes its verify
    and is recorded; file 3 leaves nothing behind."""
    env.configure(dock=MID_COPY)
    rec = env.recorder("v", vendor="a", extras=False)
    big = rec.of_kind("video")[1]  # the third file in the order they are taken
    pad_mp4(rec.path(big), BIG)
    env.register(rec)
    image = env.fat(rec, 1, BIG // MiB + 96)
    resume = env.tmp / "resume-verify"
    os.mkfifo(resume)
    daemon = env.daemon(env={"DOCKD_TEST_PAUSE": "in-verify:2", "DOCKD_TEST_RESUME": str(resume)})

    loop = env.attach(image)
    held = "dockd-test-pause in-verify"
    wait_for("file 2's verify to be held", lambda: held in daemon.tail(), 60)
    wait_for("file 3 to be half-way", env.copying, 60, every=0.05)
    loop.unplug()
    with resume.open("wb") as fifo:  # now let file 2's verify run
        fifo.write(b"go")
    (first,) = env.wait_sessions(1, 30)

    assert first.outcome == "interrupted"
    taken = env.recordings()
    assert len(taken) == first.files_stored == 2 and all(r.verified for r in taken)
    assert big.relpath not in {r.source_path for r in taken}
    assert env.parts() == []
    assert not list((env.store_root / store.INCOMING).glob("*.pub"))  # none left in flight
    loop.wait_released()
    code, _ = daemon.terminate(timeout=env.config.dock.stop_timeout_s + 30)  # only a guard
    assert code == 0, daemon.tail()

    env.daemon()  # without the held verify this time
    env.attach(image)
    _, second = env.wait_sessions(2)
    assert second.outcome == "complete"
    assert (second.files_present, second.files_stored) == (2, len(rec.recordings) - 2)
    assert_stored_byte_for_byte(env, rec)


def test_sigkill_mid_ingest_leaves_no_temporary_file_and_restart_completes(
    env: DockEnv,
) -> None:
    env.configure(dock=MID_COPY)
    rec = env.recorder("k", vendor="b", extras=False)
    pad_mp4(rec.path(rec.of_kind("video")[0]), BIG)
    env.register(rec)
    image = env.fat(rec, 1, BIG // MiB + 96)
    daemon = env.daemon()
    env.attach(image)
    wait_for("the big file to be half-way", env.copying, 60, every=0.05)
    daemon.kill()
    assert env.parts(), "the kill should have left the copy's temporary file"
    assert mounts_under(env.run_dir), "and its mount"
    (crashed,) = env.sessions()
    assert crashed.outcome == "running"

    again = env.daemon()  # the recorder is still in the dock
    again.wait_event("temporary file left by a crash removed", 30)
    again.wait_event("mount left by a crash taken down", 30)
    crashed, done = env.wait_sessions(2)
    assert crashed.outcome == "interrupted" and crashed.notes and "crash" in crashed.notes
    assert done.outcome == "complete"
    assert done.files_present == crashed.files_stored  # what the killed run had finished
    assert done.files_stored == len(rec.recordings) - crashed.files_stored
    assert env.parts() == []
    assert_stored_byte_for_byte(env, rec)
    assert env.ledger is not None
    with env.ledger.read() as s:
        recovered = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "session.recovered")
        ).all()
    assert [e.subject_id for e in recovered] == [str(crashed.id)]
    assert env.alerts("ingest.interrupted")


def test_sigterm_mid_copy_abandons_the_file_cleanly_and_exits_in_bounded_time(
    env: DockEnv,
) -> None:
    env.configure(dock=MID_COPY)
    rec = env.recorder("t", vendor="a", extras=False)
    pad_mp4(rec.path(rec.of_kind("video")[0]), BIG)
    env.register(rec)
    image = env.fat(rec, 1, BIG // MiB + 96)
    daemon = env.daemon()
    env.attach(image)
    wait_for("the big file to be half-way", env.copying, 60, every=0.05)

    code, _ = daemon.terminate(timeout=env.config.dock.stop_timeout_s + 30)  # only a guard
    assert code == 0, daemon.tail()  # on its own, before the stop bound (else: exit 1)
    assert any("STOPPING=1" in n for n in daemon.notifications)
    (session,) = env.sessions()
    assert session.outcome == "interrupted" and session.ended_at is not None
    assert env.parts() == []
    assert mounts_under(env.run_dir) == []
    assert daemon.events("dockd stopped", clean=True)


@pytest.mark.parametrize("policy", ["quarantine", "refuse"])
def test_unknown_device_under_each_policy(env: DockEnv, policy: str) -> None:
    env.configure(ingest=f'unknown_device = "{policy}"')
    rec = env.recorder("x", vendor="a", serial="UNREG0001", device_number="DV-9999", extras=False)
    daemon = env.daemon()
    env.attach(env.fat(rec, 1))
    (session,) = env.wait_sessions(1)

    assert session.device_id is None and session.quarantined
    (alert,) = env.alerts("device.unknown")
    stored = [p for p in env.store_root.rglob("*") if p.is_file()]
    if policy == "quarantine":
        assert session.outcome == "complete"
        assert stored == []
        assert_stored_byte_for_byte(env, rec, env.config.store.quarantine_root)
        assert {r.unregistered for r in env.recordings()} == {True}
        assert alert.severity == "warning"
    else:
        assert session.outcome == "refused"
        assert env.recordings() == [] and stored == []
        assert not list(env.config.store.quarantine_root.rglob("*.mp4"))
        assert alert.severity == "critical"
        assert daemon.events("recorder refused", session_id=session.id)
    daemon.wait_event("dock ended", 20, session_id=session.id)
    assert mounts_under(env.run_dir) == []


def test_device_without_officer_and_device_whose_clock_runs_two_days_ahead(
    env: DockEnv,
) -> None:
    env.configure()
    lonely = env.recorder("n", vendor="a", serial="SNNOOFF1", device_number="DV-0301", extras=False)
    assert env.ledger is not None
    with env.ledger.session() as s:  # registered, but nobody was ever assigned to it
        registry.add_device(
            s,
            number=lonely.device_number,
            serial=lonely.serial,
            at=datetime(2025, 12, 1, tzinfo=UTC),
            station="st-test",
            actor="admin",
        )
    ahead = env.recorder(
        "c",
        vendor="b",
        serial="SNAHEAD2",
        device_number="DV-0302",
        badge="300002",
        extras=False,
        start=datetime.now(UTC) + timedelta(days=2),
    )
    env.register(ahead)
    daemon = env.daemon()
    env.attach(env.fat(lonely, 1))
    env.attach(env.exfat(ahead, 2))
    for done in env.wait_sessions(2):
        daemon.wait_event("dock ended", 30, session_id=done.id)  # the device check comes last
    sessions = {row.device_ref: row for row in env.sessions()}

    no_officer = sessions["DV-0301"]
    assert no_officer.outcome == "complete"
    assert {r.officer_id for r in env.recordings(no_officer.id)} == {None}
    assert no_officer.notes and "no officer" in no_officer.notes
    assert [a.subject for a in env.alerts("device.no_officer")] == ["DV-0301"]
    assert daemon.events("files without officer", session_id=no_officer.id, device="DV-0301")

    fast = sessions["DV-0302"]
    assert fast.outcome == "complete"
    rows = env.recordings(fast.id)
    assert len(rows) == len(ahead.recordings) and all(r.clock_suspect for r in rows)
    assert all(r.officer_id is not None for r in rows)
    assert fast.notes and "clock-suspect" in fast.notes
    assert [a.subject for a in env.alerts("device.clock_suspect")] == ["DV-0302"]
    (event,) = daemon.events("clock suspect", session_id=fast.id, device="DV-0302")
    assert event["files"] == len(ahead.recordings) and event["officer"] == "300002"


def test_wipe_after_ingest_deletes_verified_recordings_only(env: DockEnv) -> None:
    env.configure(dock="wipe_after_ingest = true")
    a = env.recorder(
        "a", vendor="a", serial="WIPEA001", device_number="DV-0401", badge="400001", extras=False
    )
    b = env.recorder(
        "b", vendor="b", serial="WIPEB002", device_number="DV-0402", badge="400002", extras=False
    )
    env.register(a)
    env.register(b)
    fat, exfat = env.fat(a, 1), env.exfat(b, 2)
    daemon = env.daemon()
    env.attach(fat)
    env.attach(exfat)
    for s in env.wait_sessions(2):
        daemon.wait_event("dock ended", 30, session_id=s.id)  # the wipe comes after the session
    sessions = env.sessions()
    assert {s.outcome for s in sessions} == {"complete"}
    assert all(s.notes and "wiped" in s.notes for s in sessions), [s.notes for s in sessions]
    assert len(daemon.events("mounted", mode="read-write")) == 2
    code, _ = daemon.terminate()
    assert code == 0
    for loop in env.loops:
        loop.detach()
        loop.wait_released()

    # the recorders keep their ID files, nothing else; both filesystems are consistent
    assert image_files(fat) == ["DEVICE.ID"]
    run(["fsck.vfat", "-n", str(fat)])
    mnt = env.tmp / "check"
    mnt.mkdir()
    loop = env.attach(exfat)
    try:
        run(["mount.exfat-fuse", "-o", "ro", str(loop.dev), str(mnt)])
        left = sorted(str(p.relative_to(mnt)) for p in mnt.rglob("*") if p.is_file())
        subprocess.run(["umount", str(mnt)], check=True)
    finally:
        loop.detach()
    assert left == ["SYSTEM/devinfo.txt"]
    run(["fsck.exfat", "-n", str(exfat)])

    # every deletion is in the audit trail; the store still holds every file
    assert_stored_byte_for_byte(env, a)
    assert_stored_byte_for_byte(env, b)
    assert env.ledger is not None
    with env.ledger.read() as db:
        wiped = db.scalars(select(AuditEvent).where(AuditEvent.action == "recorder.wipe")).all()
    assert sorted(int(e.subject_id) for e in wiped) == sorted(r.id for r in env.recordings())


def test_filesystem_mounted_by_an_automounter_is_used_where_it_is(env: DockEnv) -> None:
    env.configure(automount_wait=30)
    media = env.tmp / "media"
    media.mkdir()
    rec = env.recorder("m", vendor="a", extras=False)
    env.register(rec)
    image = env.fat(rec, 1)
    daemon = env.daemon()
    loop = env.attach(image)
    daemon.wait_event("recorder seen", 30, fs_label=env.label(1))
    # the desktop automounter's part: a directory under /media, then its mount
    target = media / "user" / env.label(1)
    target.mkdir(parents=True)
    run(["fusefat", "-o", f"ro,nosuid,nodev,noexec,fsname={loop.dev}", str(loop.dev), str(target)])

    (session,) = env.wait_sessions(1)
    daemon.wait_event("dock ended", 20, session_id=session.id)
    assert session.outcome == "complete"
    assert session.source == str(target)
    assert_stored_byte_for_byte(env, rec)
    assert daemon.events("recorder docked", mounted_by="automounter", session_id=session.id)
    assert daemon.events("mounted") == []  # dockd mounted nothing itself...
    assert mounts_under(env.tmp) == [str(target)]  # ...and left the automounter's mount


def test_kernel_uevents_are_used_where_no_udevd_runs(env_no_udevd: DockEnv) -> None:
    env = env_no_udevd
    foreign = udevd_running()  # a host udevd we may not stop: force the kernel source
    env.configure(dock='udev_source = "kernel"' if foreign else "")
    rec = env.recorder("k", vendor="b", extras=False)
    env.register(rec)
    image = env.fat(rec, 1)
    daemon = env.daemon()
    fallback = daemon.wait_event("udev source fallback", 5, source="kernel")
    if not foreign:
        assert "no udev daemon" in fallback["why"]
    env.attach(image)
    (session,) = env.wait_sessions(1)
    assert session.outcome == "complete"
    assert_stored_byte_for_byte(env, rec)
    assert daemon.events("recorder seen", source="kernel", fs_label=env.label(1))
    daemon.wait_event("dock ended", 20, session_id=session.id)
    assert mounts_under(env.run_dir) == []
    assert os.path.isdir(env.run_dir)
