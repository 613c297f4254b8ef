"""What the officer sees, end to end: real udevd, a FAT32 image on a loop device, a real
``dockd run``, the ``dockd status`` command and an ``on_event`` script.

The copy is held back by ``copy_limit_mb_s`` so that it lasts seconds on any machine:
the test watches the state file until the bay says ``copying`` (it never sleeps to
wait for it), then asks ``dockd status`` what the officer would see.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fixtures.make_recorder import pad_mp4
from tests.helpers.blockdev import DockEnv, MiB, mounts_under, wait_for

pytestmark = pytest.mark.root

COPY_SIZE = 128 * MiB
SLOW = "copy_limit_mb_s = 20"  # >= 6.7 s of copying: time to look at the bay more than once


def _setup(env: DockEnv, *, ingest: str = "", dock: str = "") -> tuple[Path, Path]:
    """Config with a state file and an on_event script that appends each event to a file."""
    status = env.tmp / "state" / "status.json"
    events = env.tmp / "events.jsonl"
    hook = env.tmp / "dock-event"
    hook.write_text(f'#!/bin/sh\n# $1 is the event\n{{ cat; }} >> "{events}"\n')
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    env.configure(
        ingest=ingest,
        dock=f'{dock}\nstatus_file = "{status}"\non_event = ["{hook}", "{{event}}"]\n',
    )
    return status, events


def dockd_status(env: DockEnv) -> dict[str, Any]:
    """``dockd status --format json``, as another program on the station runs it."""
    assert env.config_path is not None
    env_vars = {k: v for k, v in os.environ.items() if k != "DOCKD_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-m", "dockd", "--config", str(env.config_path), "status", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=env_vars,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def bay_in(doc: dict[str, Any], devnode: str | None) -> dict[str, Any] | None:
    return next((b for b in doc.get("bays", []) if b.get("devnode") == devnode), None)


def file_bay(status: Path, devnode: str | None, state: str) -> dict[str, Any] | None:
    """The bay of ``devnode`` in the state file, once it is in ``state``."""
    try:
        doc = json.loads(status.read_text())
    except (OSError, ValueError):
        return None  # not written yet (never half-written: it is renamed into place)
    bay = bay_in(doc, devnode)
    return bay if bay is not None and bay["state"] == state else None


def received(events: Path) -> list[dict[str, Any]]:
    if not events.exists():
        return []
    return [json.loads(line) for line in events.read_text().splitlines() if line.strip()]


def test_the_bay_shows_copying_then_safe_to_unplug_after_the_unmount_and_the_hook_hears_it(
    env: DockEnv,
) -> None:
    status, events = _setup(env, dock=SLOW)
    rec = env.recorder("s", vendor="a", serial="ZFYS0001", device_number="DV-0501", badge="500001")
    pad_mp4(rec.path(rec.of_kind("video")[0]), COPY_SIZE)
    env.register(rec)
    image = env.fat(rec, 1, COPY_SIZE // MiB + 96)
    daemon = env.daemon()
    loop = env.attach(image)

    wait_for("the bay to say copying", lambda: file_bay(status, loop.dev, "copying"), 60, 0.05)
    doc = dockd_status(env)
    assert doc["stale"] is False and doc["daemon"] == "running"
    bay = bay_in(doc, loop.dev)
    assert bay is not None, doc
    assert bay["state"] == "copying", bay  # the copy lasts seconds: still at it
    assert bay["bay"] == loop.dev  # a port not named in [[dock.bay]]: its device node
    assert (bay["device"], bay["officer"]) == ("DV-0501", "500001")
    assert bay["files_total"] == len(rec.recordings)
    assert bay["bytes_total"] >= COPY_SIZE
    assert bay["safe_to_unplug"] is False and "do not unplug" in bay["next"]

    done = wait_for("the bay to say done", lambda: file_bay(status, loop.dev, "done"), 90, 0.05)
    # said only after the unmount: nothing of the recorder is mounted by then
    assert mounts_under(env.run_dir) == []
    assert daemon.events("unmounted", devnode=loop.dev)
    assert done["safe_to_unplug"] is True and done["next"].startswith("safe to unplug")
    assert done["outcome"] == "complete" and done["files_done"] == done["files_total"]
    shown = bay_in(dockd_status(env), loop.dev)
    assert shown is not None and shown["state"] == "done" and shown["safe_to_unplug"] is True

    loop.unplug()
    wait_for(
        "the bay to empty", lambda: bay_in(json.loads(status.read_text()), loop.dev) is None, 30
    )
    code, _ = daemon.terminate(timeout=env.config.dock.stop_timeout_s + 30)
    assert code == 0, daemon.tail()
    got = received(events)  # the daemon has run every queued command before it exits
    order = [e["event"] for e in got if e["event"] not in ("clock-wrong", "low-storage")]
    assert order == ["docked", "copying", "done-safe-to-unplug", "unplugged"], got
    assert {e["devnode"] for e in got} == {loop.dev}
    assert got[0]["device"] == "DV-0501" and got[0]["officer"] == "500001"
    after = dockd_status(env)
    assert after["stale"] is True and after["daemon"] == "stopped"


def test_a_refused_recorder_shows_failed_with_the_reason(env: DockEnv) -> None:
    status, events = _setup(env, ingest='unknown_device = "refuse"')
    rec = env.recorder("x", vendor="a", serial="UNREG0002", device_number="DV-9998", extras=False)
    daemon = env.daemon()
    loop = env.attach(env.fat(rec, 1))

    failed = wait_for("the bay to say failed", lambda: file_bay(status, loop.dev, "failed"), 60)
    assert failed["outcome"] == "refused"
    assert "unknown device refused by policy" in failed["reason"]
    assert failed["next"] == f"call the device manager: {failed['reason']}"
    assert failed["safe_to_unplug"] is False
    shown = bay_in(dockd_status(env), loop.dev)
    assert shown is not None and shown["state"] == "failed" and shown["reason"] == failed["reason"]

    loop.unplug()  # the officer walks away: the bay keeps saying what went wrong
    wait_for(
        "the bay to see the recorder gone",
        lambda: (b := file_bay(status, loop.dev, "failed")) is not None and not b["present"],
        30,
    )
    code, _ = daemon.terminate(timeout=env.config.dock.stop_timeout_s + 30)
    assert code == 0, daemon.tail()
    got = received(events)
    assert [e["event"] for e in got] == ["docked", "failed", "unplugged"], got
    assert got[1]["reason"] == failed["reason"]


def test_a_recorder_yanked_mid_copy_shows_failed_with_the_reason(env: DockEnv) -> None:
    status, events = _setup(env, dock=SLOW)
    rec = env.recorder("y", vendor="b", extras=False)
    pad_mp4(rec.path(rec.of_kind("video")[0]), COPY_SIZE)
    env.register(rec)
    daemon = env.daemon()
    loop = env.attach(env.fat(rec, 1, COPY_SIZE // MiB + 96))
    wait_for("the bay to say copying", lambda: file_bay(status, loop.dev, "copying"), 60, 0.05)

    loop.unplug()
    failed = wait_for("the bay to say failed", lambda: file_bay(status, loop.dev, "failed"), 60)
    assert failed["outcome"] == "interrupted" and failed["present"] is False
    assert failed["reason"] == "the recorder was unplugged before every file was taken"
    assert failed["next"] == "dock it again to take the rest"
    code, _ = daemon.terminate(timeout=env.config.dock.stop_timeout_s + 30)
    assert code == 0, daemon.tail()
    assert [e["event"] for e in received(events)] == ["docked", "copying", "unplugged", "failed"]
