"""``dockd run`` against a hostile machine: a second daemon, a process squatting in a
mount, a mount helper that never returns. Real udevd, loop devices, FUSE mounts and
``dockd run`` processes, as in tests/system/test_dock_e2e.py.

The stop bound is checked by its outcome, never by a stopwatch: ``dockd run`` ends
with exit 1 when ``dock.stop_timeout_s`` passes (a guard thread), so exit 0 with
``dockd stopped clean=True`` means it stopped on its own within the bound.
``proc.wait(timeout)`` only keeps a broken daemon from hanging the test run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dockd.errors import AlreadyRunning
from dockd.runtime import runtime_dir
from fixtures.make_recorder import pad_mp4
from tests.helpers.blockdev import (
    BIG,
    MID_COPY,
    Daemon,
    DockEnv,
    MiB,
    mounts_under,
    wait_for,
)

pytestmark = pytest.mark.root
GUARD_S = 30  # beyond the stop bound: only so a hung daemon fails the test instead of hanging it


def _other_config(tmp: Path, labels: str) -> Path:
    """Another station's config on the same machine: its own store, ledger and mount dir
    (its match rule is kept to this test's labels: no other image on the machine is touched)."""
    other = tmp / "other"
    other.mkdir()
    conf = other / "dockd.toml"
    conf.write_text(
        f"""
[station]
id = "st-other"
unit = "Other Station"
[store]
root = "{other / "store"}"
[ledger]
url = "sqlite:///{other / "ledger.sqlite3"}"
[dock]
runtime_dir = "{other / "run"}"
automount_roots = []
[[dock.match]]
name = "loop-devices"
devname = "/dev/loop*"
fs_labels = ["{labels}"]
"""
    )
    return conf


def test_a_second_daemon_is_refused_until_the_first_is_gone(env: DockEnv) -> None:
    env.configure()
    first = env.daemon()
    assert first.proc is not None
    other = _other_config(env.tmp, f"{env.prefix}*")
    lock = runtime_dir() / "dockd.lock"

    second = Daemon(other, env.tmp / "other" / "dockd.log")
    env.daemons.append(second)
    second.spawn()
    assert second.proc is not None
    code = second.proc.wait(GUARD_S)  # refused at once, without waiting for anything
    assert code == AlreadyRunning.exit_code == 69
    said = second.log_path.read_text()
    assert f"PID {first.proc.pid}" in said and str(lock) in said, said
    assert not second.events("dockd starting")  # it touched nothing: no store, no mounts
    assert not any("READY=1" in n for n in second.notifications)
    assert first.proc.poll() is None  # and the first one goes on

    first.kill()  # SIGKILL: no clean-up code runs, the kernel drops the lock
    third = Daemon(other, env.tmp / "other" / "dockd-2.log")
    env.daemons.append(third)
    third.start()
    assert third.proc is not None and third.events("dockd ready")
    assert lock.read_text().split()[0] == str(third.proc.pid)
    code, _ = third.terminate(timeout=env.config.dock.stop_timeout_s + GUARD_S)
    assert code == 0, third.tail()


def test_sigterm_mid_copy_while_another_process_holds_the_mount(env: DockEnv) -> None:
    env.configure(dock=f"{MID_COPY}\nstop_timeout_s = 10")
    rec = env.recorder("h", vendor="a", extras=False)
    pad_mp4(rec.path(rec.of_kind("video")[0]), BIG)
    env.register(rec)
    image = env.fat(rec, 1, BIG // MiB + 96)
    daemon = env.daemon()
    env.attach(image)
    wait_for("the big file to be half-way", env.copying, 60, every=0.05)
    (mountpoint,) = mounts_under(env.run_dir)
    # someone's shell or file manager sitting in the recorder: the mount is busy
    squatter = subprocess.Popen(["sleep", "600"], cwd=mountpoint)
    try:
        code, _ = daemon.terminate(timeout=env.config.dock.stop_timeout_s + GUARD_S)
        assert code == 0, daemon.tail()
        assert daemon.events("dockd stopped", clean=True)
        (session,) = env.sessions()
        assert session.outcome == "interrupted" and session.ended_at is not None
        assert env.parts() == []
        # the busy mount was detached (lazily), not left in the tree, and nobody was killed
        assert daemon.events("lazy unmount", mountpoint=mountpoint, detached=True)
        assert mounts_under(env.run_dir) == []
        assert squatter.poll() is None
    finally:
        squatter.kill()
        squatter.wait()


def test_sigterm_while_the_mount_helper_hangs(env: DockEnv) -> None:
    # A helper that never returns (a FUSE helper stuck on a bad medium); it says who it is.
    env.configure(
        dock="""stop_timeout_s = 10
helper_timeout_s = 600
filesystems = ["vfat"]

[[dock.mount_helpers]]
fstype = "vfat"
command = ["sh", "-c", 'echo $$ > "$1.helper-pid"; exec sleep 600', "{device}", "{mountpoint}"]
"""
    )
    rec = env.recorder("s", vendor="a", extras=False)
    env.register(rec)
    daemon = env.daemon()
    env.attach(env.fat(rec, 1))
    pid_file = wait_for(
        "the mount helper to be running",
        lambda: (
            next((env.run_dir / "mnt").glob("*.helper-pid"), None)
            if (env.run_dir / "mnt").is_dir()
            else None
        ),
        60,
    )
    helper = int(wait_for("the helper's pid", lambda: pid_file.read_text().strip(), 10))

    code, _ = daemon.terminate(timeout=env.config.dock.stop_timeout_s + GUARD_S)
    assert code == 0, daemon.tail()
    assert daemon.events("dockd stopped", clean=True)
    assert daemon.events("dock abandoned before it started")
    assert not daemon.events("dock failed")  # a stop is not a failure: no critical alert
    assert env.alerts("dock.failed") == []
    assert env.sessions() == []  # nothing was opened, so nothing is left 'running'
    assert not os.path.exists(f"/proc/{helper}")  # the helper was killed, not left behind
    assert mounts_under(env.run_dir) == []
