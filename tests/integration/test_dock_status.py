"""What the officer at the dock sees, without block devices: each bay's state from the
session manager's calls, the state file ``dockd status`` reads, the ``on_event``
command (a real script, run as the daemon runs it) and the bays' LEDs in a
/sys/class/leds tree of plain files. A real ingest of a recorder directory feeds
the board through the session manager's own progress and device check.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config.dock import Bay as BayConfig
from dockd.context import Context
from dockd.dock.folderwatch import AutomountWatch
from dockd.dock.hooks import EventHooks, led_pattern
from dockd.dock.match import BlockEvent
from dockd.dock.mounts import Mount, Mounter
from dockd.dock.sessions import Dock, SessionManager
from dockd.dock.status import StatusBoard, failure_reason
from dockd.errors import ConfigError
from dockd.ingest.outcome import FileOutcome, FileStatus
from dockd.runtime import LOCK_NAME, RUNTIME_ENV, FileLock
from fixtures.make_recorder import Recorder
from tests.helpers.ledgers import register
from tests.helpers.logs import log_events, named
from tests.helpers.station import make_config, write_config

ID_PATH = "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0"
BAYS = (BayConfig(name="Bay 1", id_path=ID_PATH, led="bay1"),)
TZ_SHANGHAI = ZoneInfo("Asia/Shanghai")

HOOK = """#!/bin/sh
# one line per event: the JSON it got, then the LED as the kernel's files show it
led={leds}/bay1
cat >> {out}
printf 'LED trigger=%s brightness=%s delay_on=%s\\n' "$(cat $led/trigger)" \\
  "$(cat $led/brightness 2>/dev/null)" "$(cat $led/delay_on 2>/dev/null)" >> {out}
"""


def _event(devnode: str = "/dev/sdx1", id_path: str | None = ID_PATH) -> BlockEvent:
    props = {"ID_FS_TYPE": "vfat", "ID_FS_UUID": "AAAA-0001", "DISKSEQ": "5"}
    if id_path:
        props["ID_PATH"] = id_path
    return BlockEvent(
        "add", f"/devices/x/{devnode}", devnode, devnode[5:], "block", "partition", props
    )


class Clocks:
    """The board's wall and monotonic clocks, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def wall(self) -> float:
        return self.t

    def mono(self) -> float:
        return self.t


@pytest.fixture
def leds(tmp_path: Path) -> Path:
    """A /sys/class/leds with one LED, as the kernel lays it out (before any trigger)."""
    led = tmp_path / "leds" / "bay1"
    led.mkdir(parents=True)
    (led / "trigger").write_text("[none] timer heartbeat")
    (led / "brightness").write_text("0")
    (led / "max_brightness").write_text("255")
    return tmp_path / "leds"


@pytest.fixture
def hooked(tmp_path: Path, leds: Path) -> Iterator[tuple[EventHooks, Path]]:
    """The event hooks with a script appending what it receives (and the LED) to a file."""
    out = tmp_path / "events.txt"
    script = tmp_path / "dock-led"
    script.write_text(HOOK.format(leds=leds, out=out))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    hooks = EventHooks((str(script), "{event}", "{bay}"), 10.0, {"Bay 1": "bay1"}, led_root=leds)
    yield hooks, out
    hooks.stop(10)


def received(out: Path) -> list[tuple[dict[str, Any], str]]:
    """(event JSON, the LED when the command ran) for each run of the hook script."""
    lines = out.read_text().splitlines() if out.exists() else []
    return [(json.loads(lines[i]), lines[i + 1]) for i in range(0, len(lines), 2)]


def _board(path: Path, hooks: EventHooks | None, clocks: Clocks) -> StatusBoard:
    return StatusBoard(
        BAYS,
        path=path,
        tz=TZ_SHANGHAI,
        station="st-test",
        publish=hooks.publish if hooks else None,
        wall=clocks.wall,
        mono=clocks.mono,
    )


def _bay(path: Path, name: str = "Bay 1") -> dict[str, Any]:
    bays: list[dict[str, Any]] = json.loads(path.read_text())["bays"]
    (bay,) = [b for b in bays if b["bay"] == name]
    return bay


# ------------------------------------------------------------------ the state machine


def test_a_dock_from_plugged_in_to_safe_to_unplug_in_the_file_the_hook_and_the_led(
    tmp_path: Path, hooked: tuple[EventHooks, Path]
) -> None:
    hooks, out = hooked
    hooks.start()
    clocks = Clocks()
    status = tmp_path / "run" / "status.json"
    board = _board(status, hooks, clocks)
    board.start()
    assert _bay(status)["state"] == "idle"
    assert _bay(status)["next"] == "free: dock a recorder"

    assert board.seen(1, _event()) == "Bay 1"
    assert _bay(status)["state"] == "docked" and _bay(status)["devnode"] == "/dev/sdx1"
    board.identified(1, "DV-0101", "100001", 12)
    board.copying(1, 3, 3_000_000)
    clocks.t += 1
    board.advance(1, 1_000_000)
    board.file_done(1)
    clocks.t += 1
    board.advance(1, 2_000_000)
    board.file_done(1)
    board.file_done(1)
    clocks.t += 1
    board.advance(1, 0)
    copying = _bay(status)
    assert copying["state"] == "copying"
    assert (copying["files_done"], copying["files_total"]) == (3, 3)
    assert (copying["bytes_done"], copying["bytes_total"]) == (3_000_000, 3_000_000)
    assert copying["rate_bytes_s"] == 1_500_000  # 3 MB in the 2 s since the first byte
    assert (copying["device"], copying["officer"], copying["session_id"]) == (
        "DV-0101",
        "100001",
        12,
    )
    board.checked(1, clock_suspect=2, free_percent=4.0)
    # every file is verified, but the recorder is not unmounted yet: not safe
    assert _bay(status)["safe_to_unplug"] is False
    assert _bay(status)["state"] == "copying"

    board.ended(1, outcome="complete", reason=None, unmounted=True)
    done = _bay(status)
    assert done["state"] == "done" and done["safe_to_unplug"] is True
    assert done["outcome"] == "complete"
    assert done["next"] == (
        "safe to unplug; set the recorder's clock; its storage is nearly full: tell the "
        "device manager"
    )
    assert len(done["warnings"]) == 2
    board.unplugged(1)
    assert _bay(status)["state"] == "idle" and _bay(status)["device"] is None
    assert hooks.stop(10)

    got = received(out)
    assert [e["event"] for e, _ in got] == [
        "docked",
        "copying",
        "clock-wrong",
        "low-storage",
        "done-safe-to-unplug",
        "unplugged",
    ]
    assert {e["bay"] for e, _ in got} == {"Bay 1"}
    first, _ = got[0]
    assert (first["device"], first["officer"], first["station"]) == ("DV-0101", "100001", "st-test")
    assert first["at"].endswith("+08:00")  # station time
    assert got[2][0]["detail"].startswith("clock: 2 file(s)")
    # the LED, as each command saw it: blinking while at work, on when safe; off once empty
    assert got[1][1] == "LED trigger=timer brightness=0 delay_on=500"
    assert got[4][1] == "LED trigger=none brightness=255 delay_on=500"
    led = tmp_path / "leds" / "bay1"
    assert ((led / "trigger").read_text(), (led / "brightness").read_text()) == ("none", "0")


def test_done_is_not_safe_to_unplug_while_the_filesystem_is_still_mounted(
    tmp_path: Path, hooked: tuple[EventHooks, Path]
) -> None:
    hooks, out = hooked
    status = tmp_path / "status.json"
    board = _board(status, hooks, Clocks())
    board.seen(1, _event())
    board.identified(1, "DV-0101", None, 3)
    board.copying(1, 1, 10)
    board.ended(1, outcome="complete", reason=None, unmounted=False)

    bay = _bay(status)
    assert bay["state"] == "done" and bay["safe_to_unplug"] is False
    assert bay["next"].startswith("do not unplug yet")
    assert hooks.stop(10)
    assert [e["event"] for e, _ in received(out)] == ["docked", "copying", "done"]
    assert received(out)[-1][1].startswith("LED trigger=timer")  # still blinking


def test_a_failed_dock_shows_failed_with_the_reason_until_the_next_recorder(
    tmp_path: Path, hooked: tuple[EventHooks, Path]
) -> None:
    hooks, out = hooked
    status = tmp_path / "status.json"
    board = _board(status, hooks, Clocks())
    board.seen(1, _event())
    board.identified(1, "ZFY0001", None, 7)
    notes = "unknown device refused by policy (ingest.unknown_device = 'refuse')"
    reason = failure_reason("refused", [], notes, gone=False)
    board.ended(1, outcome="refused", reason=reason, unmounted=True)

    bay = _bay(status)
    assert bay["state"] == "failed" and bay["safe_to_unplug"] is False
    assert bay["reason"] == f"the recorder was refused: {notes}"
    assert bay["next"] == f"call the device manager: the recorder was refused: {notes}"
    board.unplugged(1)
    assert _bay(status)["state"] == "failed" and _bay(status)["present"] is False
    board.seen(2, _event())  # the next recorder in the bay
    assert _bay(status)["state"] == "docked" and _bay(status)["reason"] is None
    assert hooks.stop(10)
    got = received(out)
    assert [e["event"] for e, _ in got] == ["docked", "failed", "unplugged"]
    assert got[1][0]["reason"] == reason
    assert got[1][1] == "LED trigger=timer brightness=0 delay_on=100"  # fast blink


def test_the_reasons_a_dock_fails_and_what_the_officer_is_told() -> None:
    failed = FileOutcome("DCIM/A.MP4", FileStatus.FAILED, "read error")
    assert failure_reason("complete", [], None, gone=False) is None
    assert failure_reason("partial", [failed], None, gone=False) == (
        "1 file(s) not taken, e.g. DCIM/A.MP4: read error"
    )
    yanked = failure_reason("interrupted", [], None, gone=True)
    assert yanked == "the recorder was unplugged before every file was taken"
    board = StatusBoard(BAYS)
    board.seen(1, _event())
    board.copying(1, 2, 20)
    board.unplugged(1)
    board.ended(1, outcome="interrupted", reason=yanked, unmounted=True)
    (bay,) = board.bays()
    assert (bay["state"], bay["present"], bay["next"]) == (
        "failed",
        False,
        "dock it again to take the rest",
    )


def test_a_port_not_named_in_the_config_is_called_by_its_device_node_and_goes_when_empty() -> None:
    board = StatusBoard(BAYS)
    assert board.seen(1, _event("/dev/sdy1", id_path="pci-0000:00:14.0-usb-0:2:1.0")) == "/dev/sdy1"
    assert [b["bay"] for b in board.bays()] == ["Bay 1", "/dev/sdy1"]
    board.ended(1, outcome="complete", reason=None, unmounted=True)
    board.unplugged(1)
    assert [b["bay"] for b in board.bays()] == ["Bay 1"]


def test_the_state_file_is_replaced_whole_and_progress_is_written_at_most_twice_a_second(
    tmp_path: Path,
) -> None:
    clocks = Clocks()
    status = tmp_path / "status.json"
    board = _board(status, None, clocks)
    board.seen(1, _event())
    board.copying(1, 1, 1000)
    before = status.stat().st_ino
    with status.open() as old:  # a reader that opened the file before the next write
        board.ended(1, outcome="complete", reason=None, unmounted=True)
        assert json.load(old)["bays"][0]["state"] == "copying"  # still whole
    assert status.stat().st_ino != before  # renamed over, never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
    assert oct(status.stat().st_mode & 0o777) == "0o644"

    board.seen(2, _event())
    board.copying(2, 1, 1000)
    written = status.stat().st_ino
    clocks.t += 0.2
    board.advance(2, 10)
    assert status.stat().st_ino == written and _bay(status)["bytes_done"] == 0
    clocks.t += 0.4
    board.advance(2, 10)
    assert _bay(status)["bytes_done"] == 20
    board.close()
    assert json.loads(status.read_text())["daemon"] == "stopped"


def test_a_state_file_that_cannot_be_written_is_logged_once_and_docks_go_on(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    board = StatusBoard(BAYS, path=blocked / "status.json")
    with log_events() as logs:
        board.seen(1, _event())
        board.copying(1, 1, 10)
        board.ended(1, outcome="complete", reason=None, unmounted=True)
    assert len(named(logs, "dock status file not written")) == 1
    assert board.bays()[0]["safe_to_unplug"] is True


# ------------------------------------------------------------------ hooks and LEDs


def test_a_failing_or_missing_event_command_is_logged_never_fatal(tmp_path: Path) -> None:
    with log_events() as logs:
        for argv in (("sh", "-c", "cat >/dev/null; exit 3"), (str(tmp_path / "nothing"),)):
            hooks = EventHooks(argv, 10.0, {})
            hooks.publish({"event": "docked", "bay": "Bay 1", "state": "docked"})
            hooks.publish({"event": "copying", "bay": "Bay 1", "state": "copying"})
            assert hooks.stop(10)
    failed = named(logs, "dock event command failed")
    assert [(e["dock_event"], e["exit_code"]) for e in failed] == [("docked", 3), ("copying", 3)]
    assert len(named(logs, "dock event command not run")) == 2


def test_led_patterns_per_state(tmp_path: Path, leds: Path) -> None:
    assert led_pattern("idle", False) == "off"
    assert led_pattern("docked", False) == led_pattern("copying", False) == "blink"
    assert led_pattern("done", True) == "on"
    assert led_pattern("done", False) == "blink"
    assert led_pattern("failed", False) == "fast-blink"
    hooks = EventHooks((), 1.0, {"Bay 1": "bay1", "Bay 2": "gone"}, led_root=leds)
    with log_events() as logs:
        hooks.publish({"event": "failed", "bay": "Bay 1", "state": "failed"})
        hooks.publish({"event": "failed", "bay": "Bay 2", "state": "failed"})
        assert hooks.stop(10)
    led = leds / "bay1"
    assert [(led / f).read_text() for f in ("trigger", "delay_on", "delay_off")] == [
        "timer",
        "100",
        "100",
    ]
    (missing,) = named(logs, "bay LED not set")
    assert missing["bay"] == "Bay 2" and missing["pattern"] == "fast-blink"


# ------------------------------------------------------------------ config


def test_bays_and_the_event_command_in_the_config(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        '[dock]\non_event = ["/usr/local/bin/dock-led", "{event}", "{bay}"]\n'
        f'[[dock.bay]]\nname = "Bay 1"\nid_path = "{ID_PATH}"\nled = "dock::bay1"\n',
    )
    assert cfg.dock.bay[0].name == "Bay 1" and cfg.dock.bay[0].led == "dock::bay1"
    assert cfg.dock.status_file == Path("/run/dockd/status.json")
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) \['officer'\]"):
        make_config(tmp_path, '[dock]\non_event = ["x", "{officer}"]\n')
    twice = f'[[dock.bay]]\nname = "A"\nid_path = "{ID_PATH}"\n'
    with pytest.raises(ConfigError, match="own id_path"):
        make_config(tmp_path, twice + twice.replace('"A"', '"B"'))
    with pytest.raises(ConfigError, match="absolute"):
        make_config(tmp_path, '[dock]\nstatus_file = "status.json"\n')


# ------------------------------------------------------------------ a real ingest


def test_a_real_ingest_through_the_session_manager_fills_the_bay(
    tmp_path: Path, ctx: Context, recorder: Recorder, clock: FixedClock
) -> None:
    register(ctx.ledger, clock, recorder)
    board = StatusBoard(ctx.config.dock.bay, path=tmp_path / "status.json")
    manager = SessionManager(ctx, Mounter(ctx.config.dock), AutomountWatch(()), board)
    ev = _event()
    dock = Dock(ev, 1)
    board.seen(dock.seq, ev)
    manager._take(dock, Mount(recorder.root, "/dev/sdx1", "vfat", owned=False))

    bay = _bay(tmp_path / "status.json", "/dev/sdx1")  # no [[dock.bay]]: its device node
    assert bay["state"] == "copying"  # taken and checked, not yet unmounted
    assert not bay["safe_to_unplug"]
    assert (bay["device"], bay["officer"]) == (recorder.device_number, recorder.badge)
    assert bay["files_done"] == bay["files_total"] == len(recorder.recordings)
    assert bay["bytes_done"] == bay["bytes_total"] > 0
    assert dock.outcome == "complete" and dock.reason is None
    # the empty clip's time comes from its mtime, today: after the station's (fixed) clock
    assert [w.split(":")[0] for w in bay["warnings"]] == ["clock"]


# ------------------------------------------------------------------ dockd status


def test_dockd_status_reads_the_file_and_says_when_the_daemon_is_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "run" / "status.json"
    config = write_config(tmp_path, f'[dock]\nstatus_file = "{status}"\n')
    assert main(["-c", str(config), "status", "--format", "json"]) == 66
    assert "no dock status at" in capsys.readouterr().err

    monkeypatch.setenv(RUNTIME_ENV, str(tmp_path / "run"))
    daemon = FileLock(tmp_path / "run" / LOCK_NAME)
    board = StatusBoard(BAYS, path=status, station="st-test")
    board.seen(1, _event())
    board.copying(1, 1, 10)
    board.ended(1, outcome="complete", reason=None, unmounted=True)
    assert daemon.try_acquire("dockd run")  # as `dockd run` holds it
    try:
        assert main(["-c", str(config), "status", "--format", "json"]) == 0
        live = json.loads(capsys.readouterr().out)
        assert live["stale"] is False
        assert live["bays"][0]["state"] == "done" and live["bays"][0]["safe_to_unplug"]
        assert main(["-c", str(config), "status"]) == 0
        table = capsys.readouterr().out
        assert "Bay 1" in table and "SAFE TO" in table and "NOT LIVE" not in table
    finally:
        daemon.release()
    assert main(["-c", str(config), "status", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["stale"] is True
    assert main(["-c", str(config), "status"]) == 0
    assert "NOT LIVE" in capsys.readouterr().out
    assert os.environ[RUNTIME_ENV] == str(tmp_path / "run")
