"""``systemctl reload dockd`` is SIGHUP to a real ``dockd run`` (real udevd, as in
tests/system/test_daemon_hostile.py): a broken config is refused with an alert and the
daemon goes on with the old one; a good one is applied, and the log says what changed."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from dockd.ledger.models import Alert
from tests.helpers.blockdev import DockEnv

pytestmark = pytest.mark.root
GUARD_S = 30  # only so a hung daemon fails the test instead of hanging it


def test_a_broken_config_on_reload_keeps_the_daemon_on_the_old_one(env: DockEnv) -> None:
    env.configure()
    assert env.config_path is not None and env.ledger is not None
    good = env.config_path.read_text()
    daemon = env.daemon()
    assert daemon.proc is not None

    broken = good + '\n[schedule]\nretention = "61 4 * * *"\n'
    env.config_path.write_text(broken)
    lineno = broken.splitlines().index('retention = "61 4 * * *"') + 1
    sent = len(daemon.notifications)
    daemon.proc.send_signal(signal.SIGHUP)
    failed = daemon.wait_event("config reload failed; keeping the running config", GUARD_S)
    assert any(f"line {lineno}: schedule.retention" in p for p in failed["problems"])
    daemon.wait_notify("READY=1", GUARD_S, after=sent)
    assert daemon.proc.poll() is None
    with env.ledger.read() as s:
        (alert,) = s.scalars(select(Alert).where(Alert.kind == "config.reload_failed"))
    assert f"line {lineno}: schedule.retention" in alert.message
    assert not daemon.events("config reloaded")

    env.config_path.write_text(good + '\n[schedule]\nretention = "15 4 * * *"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    done = daemon.wait_event("config reloaded", GUARD_S)
    assert any(c.startswith("schedule.retention:") for c in done["changed"])
    assert daemon.proc.poll() is None

    code, _ = daemon.terminate(timeout=env.config.dock.stop_timeout_s + GUARD_S)
    assert code == 0, daemon.tail()
