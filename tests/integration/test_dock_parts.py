"""The daemon's parts without block devices: sd_notify, udevd detection, the automount
watch, crash recovery, the device check and the wipe gate; with real sockets,
a real watchdog observer, a real ledger and real ingests of plain directories.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.daemon.notify import notify, watchdog_interval
from dockd.dock import checks, wipe
from dockd.dock.folderwatch import AutomountWatch
from dockd.dock.match import BlockEvent
from dockd.dock.mounts import Mounter
from dockd.dock.sessions import Dock, SessionManager, _Progress
from dockd.dock.watcher import _unescape, choose_source, udevd_running
from dockd.ingest.pipeline import run_ingest
from dockd.ingest.recovery import recover_sessions
from dockd.ledger import registry
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, AuditEvent, DockSession, Recording
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import register
from tests.helpers.skips import need
from tests.helpers.station import NOW, make_config

# ------------------------------------------------------------------ sd_notify


def test_notify_sends_datagrams_to_a_path_or_abstract_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        assert notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": str(path)})
        assert srv.recv(100) == b"READY=1\nSTATUS=ok"
    name = f"dockd-notify-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert srv.recv(100) == b"WATCHDOG=1"
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")})


def test_notify_never_blocks_on_a_receiver_that_stopped_reading() -> None:
    # A unix datagram waits for room in a full receive queue; the daemon's main thread
    # must not (it would never get to a SIGTERM). Messages that find no room are dropped.
    name = f"dockd-notify-full-{os.getpid()}"
    env = {"NOTIFY_SOCKET": "@" + name}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        sent = [notify("WATCHDOG=1", env, timeout=0.05) for _ in range(64)]
        assert sent[0] and not sent[-1]  # the queue filled up; later pings were not sent
        queued = sent.count(True)
        srv.settimeout(1)
        for _ in range(queued):
            assert srv.recv(100) == b"WATCHDOG=1"
        assert notify("STOPPING=1", env)  # room again: delivered
        assert srv.recv(100) == b"STOPPING=1"


def test_watchdog_interval_is_half_the_timeout_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


# ------------------------------------------------------------------ udev source


def test_udevd_is_running_only_when_its_control_socket_answers(tmp_path: Path) -> None:
    control = tmp_path / "control"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as srv:
        srv.bind(str(control))
        srv.listen(1)
        assert udevd_running(control)
        assert choose_source("auto", control)[0] == "udev"
    # the socket file outlives a killed udevd: its existence proves nothing
    assert control.exists() and not udevd_running(control)
    source, why = choose_source("auto", control)
    assert source == "kernel" and "no udev daemon" in why
    assert choose_source("udev", control)[0] == "udev"


def test_blkid_export_values_are_unescaped() -> None:
    assert _unescape(r"REC\x20ONE") == "REC ONE"
    assert _unescape(r"a\"b") == 'a"b'


# ------------------------------------------------------------------ automount watch


def test_automount_watch_wakes_waiters_when_something_appears(tmp_path: Path) -> None:
    root = tmp_path / "media"
    root.mkdir()
    watch = AutomountWatch([root, tmp_path / "missing"])
    watch.start()
    try:
        assert watch.active and watch.watched == (root,)
        gen = watch.generation
        assert watch.wait(gen, 0.05) == gen  # nothing happened
        (root / "user").mkdir()
        assert watch.wait(gen, 5) != gen
    finally:
        watch.stop()
    idle = AutomountWatch([tmp_path / "missing"])
    idle.start()
    assert not idle.active
    idle.stop()


# ------------------------------------------------------------------ crash recovery


def test_sessions_left_running_by_a_crash_are_marked_interrupted(
    ctx: Context, tmp_path: Path
) -> None:
    mnt = tmp_path / "run" / "mnt"

    def session(
        source: Path,
        outcome: str,
        pid: int | None = None,
        host: str | None = None,
        boot_id: str | None = None,
    ) -> int:
        with ctx.ledger.session() as s:
            row = DockSession(
                station="st-test",
                device_ref="DV-0001",
                source=str(source),
                started_at=NOW - timedelta(minutes=5),
                outcome=outcome,
                files_stored=2,
                pid=pid,
                host=host,
                boot_id=boot_id,
            )
            s.add(row)
            s.flush()
            return row.id

    dead = subprocess.Popen(["true"])
    dead.wait()  # a PID that no longer runs
    here = socket.gethostname()
    crashed = session(mnt / "sdb1-42", "running")  # an older dockd's row: no PID
    by_hand = session(Path("/mnt/card"), "running")  # a `dockd ingest` still going
    finished = session(mnt / "sdc1-7", "complete")
    killed = session(Path("/mnt/card"), "running", dead.pid, here)  # kill -9'd ingest
    other = subprocess.Popen(["sleep", "600"])  # another dockd, still at work
    try:
        alive = session(Path("/mnt/card2"), "running", other.pid, here)
        elsewhere = session(Path("/mnt/card3"), "running", dead.pid, "another-station")
        # this very process, which survived a failure that cut its session short
        survived = session(Path("/mnt/card4"), "running", os.getpid(), here)
        # before a reboot: its PID now names another process, alive or not
        rebooted = session(Path("/mnt/card5"), "running", other.pid, here, "an-earlier-boot")
        assert recover_sessions(ctx, daemon_roots=(mnt,)) == [
            crashed,
            killed,
            survived,
            rebooted,
        ]
        # the live one is left alone however often recovery runs
        assert recover_sessions(ctx, daemon_roots=(mnt,)) == []
        assert recover_sessions(ctx) == []  # a `dockd ingest` closes only rows with a dead PID
    finally:
        other.kill()
        other.wait()
    with ctx.ledger.read() as s:
        outcomes = {r.id: r.outcome for r in s.scalars(select(DockSession))}
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "session.recovered"))
        recovered = [e.subject_id for e in events]
        alerts = list(s.scalars(select(Alert).where(Alert.kind == "ingest.interrupted")))
        notes = s.get_one(DockSession, crashed).notes
    assert outcomes == {
        crashed: "interrupted",
        by_hand: "running",
        finished: "complete",
        killed: "interrupted",
        alive: "running",
        elsewhere: "running",
        survived: "interrupted",
        rebooted: "interrupted",
    }
    assert recovered == [str(i) for i in (crashed, killed, survived, rebooted)]
    assert len(alerts) == 4
    assert notes and "dock the recorder again" in notes


# ------------------------------------------------------------------ device check


def test_device_check_sums_up_clock_and_officer_on_the_session(
    ctx: Context, tmp_path: Path, clock: FixedClock
) -> None:
    ahead = make_recorder(tmp_path / "ahead", extras=False, start=NOW + timedelta(days=2))
    register(ctx.ledger, clock, ahead)
    result = run_ingest(ctx, ahead.root)
    found = checks.check_session(ctx, result, low_free_percent=0)
    assert len(found.clock_suspect) == len(ahead.recordings) and found.no_officer == ()

    lonely = make_recorder(
        tmp_path / "lonely", extras=False, serial="SN2", device_number="DV-0002", badge="777777"
    )
    with ctx.ledger.session() as s:
        registry.add_device(
            s,
            number="DV-0002",
            serial="SN2",
            at=datetime(2025, 12, 1, tzinfo=UTC),
            station="st-test",
            actor="admin",
        )
    result2 = run_ingest(ctx, lonely.root)
    found2 = checks.check_session(ctx, result2, low_free_percent=100)
    assert len(found2.no_officer) == len(lonely.recordings) and found2.clock_suspect == ()
    with ctx.ledger.read() as s:
        notes = {r.device_ref: r.notes or "" for r in s.scalars(select(DockSession))}
        kinds = sorted(a.kind for a in s.scalars(select(Alert)) if a.kind.startswith("device."))
    assert "clock-suspect" in notes["DV-0001"]
    assert "no officer" in notes["DV-0002"]
    assert kinds == ["device.clock_suspect", "device.no_officer"]


def test_fat32_capacity_and_free_space_come_from_the_boot_sector(tmp_path: Path) -> None:
    need(tools=("mkfs.vfat",), why="builds a FAT32 image")
    image = tmp_path / "fat.img"
    with image.open("wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "32", "-S", "512", str(image)], check=True)
    capacity, free = checks.fat_space(str(image))
    assert capacity is not None and 60 * 2**20 < capacity < 64 * 2**20
    assert free is not None and capacity - 64 * 1024 <= free <= capacity
    assert checks.fat_space(str(tmp_path)) == (None, None)


# ------------------------------------------------------------------ wipe gate


def _ingested(ctx: Context, recorder: Recorder, clock: FixedClock) -> wipe.WipePlan:
    register(ctx.ledger, clock, recorder)
    result = run_ingest(ctx, recorder.root)
    assert result.outcome == "complete"
    return wipe.plan_wipe(ctx, recorder.root, result)


def test_wipe_deletes_every_verified_recording_and_audits_each(
    ctx: Context, recorder: Recorder, clock: FixedClock
) -> None:
    register(ctx.ledger, clock, recorder)
    result = run_ingest(ctx, recorder.root)
    plan = wipe.plan_wipe(ctx, recorder.root, result)
    assert plan.allowed and len(plan.files) == len(recorder.recordings)
    assert wipe.execute(ctx, recorder.root, result, plan) == len(recorder.recordings)
    left = sorted(p.name for p in recorder.root.rglob("*") if p.is_file())
    assert left == ["DEVICE.ID"]  # not a recording: never touched
    with ctx.ledger.read() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "recorder.wipe")))
    assert sorted(e.subject_id for e in events) == sorted(str(f.file_id) for f in plan.files)


def test_one_unverified_file_blocks_the_whole_wipe(
    ctx: Context, recorder: Recorder, clock: FixedClock
) -> None:
    register(ctx.ledger, clock, recorder)
    result = run_ingest(ctx, recorder.root)
    # the store copy of one file rots after the ingest
    with ctx.ledger.read() as s:
        victim = s.scalars(select(DockSession)).one().id
        row = s.scalars(select(Recording).where(Recording.session_id == victim)).first()
    assert row is not None
    stored = ctx.config.store.root / row.store_path
    stored.chmod(0o640)
    with stored.open("r+b") as fh:
        fh.seek(0)
        fh.write(b"\xff")
    plan = wipe.plan_wipe(ctx, recorder.root, result)
    assert not plan.allowed
    assert [p for p, _ in plan.blockers] == [row.source_path]
    assert "expected" in plan.blockers[0][1]
    wipe.block(ctx, result, plan)
    with ctx.ledger.read() as s:
        (alert,) = s.scalars(select(Alert).where(Alert.kind == "wipe.blocked"))
    assert row.source_path in alert.message and "Nothing was deleted" in alert.message
    assert all(recorder.path(r).exists() for r in recorder.recordings)


def test_wipe_is_refused_for_incomplete_or_unregistered_sessions(
    ctx: Context, tmp_path: Path
) -> None:
    rec = make_recorder(tmp_path / "unknown", extras=False, serial="NOPE1", device_number="DV-9")
    result = run_ingest(ctx, rec.root)  # not registered: quarantined
    plan = wipe.plan_wipe(ctx, rec.root, result)
    assert not plan.allowed and "not registered" in plan.blockers[0][1]
    result.outcome = "interrupted"
    plan = wipe.plan_wipe(ctx, rec.root, result)
    assert not plan.allowed and "interrupted" in plan.blockers[0][1]


@pytest.mark.parametrize("verify", ["none"])
def test_wipe_rehashes_even_when_ingest_did_not_verify(
    tmp_path: Path, clock: FixedClock, verify: str
) -> None:
    cfg = make_config(tmp_path, f'[ingest]\nverify = "{verify}"\n')
    ledger = open_ledger(cfg.ledger.url)
    try:
        ictx = Context(cfg, ledger, clock, AlertSink(ledger, "st-test", clock, cfg.alerts))
        rec = make_recorder(tmp_path / "rec", extras=False)
        plan = _ingested(ictx, rec, clock)
        assert plan.allowed and len(plan.files) == len(rec.recordings)
    finally:
        ledger.close()


# ------------------------------------------------------------------ dispatcher


def test_dispatcher_docks_a_medium_once_even_when_it_arrives_after_the_add_event(
    tmp_path: Path, clock: FixedClock
) -> None:
    """A card reader: ``add`` without medium, then ``change`` with a filesystem."""
    extra = (
        f'[dock]\nruntime_dir = "{tmp_path / "run"}"\nautomount_roots = []\n'
        'filesystems = ["vfat"]\n'
        '[[dock.match]]\nname = "reader"\ndevname = "/dev/dockd-test-*"\n'
        '[[dock.mount_helpers]]\nfstype = "vfat"\n'
        'command = ["false", "{device}", "{mountpoint}"]\n'
    )
    cfg = make_config(tmp_path, extra)
    ledger = open_ledger(cfg.ledger.url)
    ictx = Context(cfg, ledger, clock, AlertSink(ledger, "st-test", clock, cfg.alerts))
    manager = SessionManager(ictx, Mounter(cfg.dock), AutomountWatch(()))
    manager.start()
    reader = BlockEvent(
        action="add",
        devpath="/devices/test/block/dockd-test-a",
        devnode="/dev/dockd-test-a",
        sys_name="dockd-test-a",
        subsystem="block",
        devtype="disk",
        properties={"DISKSEQ": "7"},
    )
    fs = {"ID_FS_TYPE": "vfat", "ID_FS_USAGE": "filesystem", "ID_FS_UUID": "AAAA-0001"}
    try:
        assert manager.handle(reader) is None  # no medium yet
        medium = replace(reader, action="change", properties={"DISKSEQ": "8", **fs})
        dock = manager.handle(medium)
        assert dock is not None
        assert manager.handle(medium) is None  # the same medium is not docked twice
        assert dock.finished.wait(10)  # the helper (`false`) fails: an alert, no session
        assert manager.handle(replace(medium, action="add")) is None  # still in the dock
        manager.handle(replace(reader, action="remove", properties={}))
        assert dock.gone.is_set()
        again = manager.handle(replace(medium, properties={"DISKSEQ": "9", **fs}))
        assert again is not None and again.finished.wait(10)
        with ledger.read() as s:
            failed = list(s.scalars(select(Alert).where(Alert.kind == "dock.failed")))
            sessions = list(s.scalars(select(DockSession)))
        assert len(failed) == 2 and "mounting /dev/dockd-test-a" in failed[0].message
        assert sessions == []
    finally:
        assert manager.stop(10)
        ledger.close()


def test_copy_rate_limit_holds_a_session_back_but_never_a_stop() -> None:
    ev = BlockEvent("add", "/devices/x", "/dev/x", "x", "block", "disk", {}, received=0.0)
    dock = Dock(ev, 1)
    progress = _Progress(dock, limit_mb_s=50)
    t0 = time.monotonic()
    progress.advance(1)  # the clock starts at the first byte
    progress.advance(10_000_000)  # 10 MB at 50 MB/s: 0.2 s
    assert 0.15 < time.monotonic() - t0 < 2
    dock.stop.set()
    t1 = time.monotonic()
    progress.advance(1_000_000_000)  # 20 s ahead, but stopping: no wait
    assert time.monotonic() - t1 < 0.5
