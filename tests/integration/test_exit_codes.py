"""Exit codes a script can rely on: a usage error is 64 (EX_USAGE), never click's 2 (which
is dockd's "the recorder was refused"); a command that only reads the ledger never
creates one, it names the missing file and the command that creates it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockd.cli import main
from tests.helpers.station import write_config

pytestmark = pytest.mark.usefixtures("_no_dockd_config")


@pytest.fixture
def _no_dockd_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKD_CONFIG", raising=False)


def dockd(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m dockd ARGS`` as its own process: the exit code the shell sees."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKD_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "dockd", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_an_unknown_option_exits_64_with_clicks_message(tmp_path: Path) -> None:
    conf = write_config(tmp_path)
    proc = dockd("-c", str(conf), "ledger", "query", "--no-such-option")
    assert proc.returncode == 64, proc.stderr
    assert "No such option: --no-such-option" in proc.stderr
    assert "Usage: dockd ledger query" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["hold", "add"], "Missing option"),
        (["sweep", "upcoming", "--days", "soon"], "Invalid value for '--days'"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_missing_arguments_bad_values_and_unknown_commands_exit_64(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    said: str,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # click's message on one line of its box
    conf = write_config(tmp_path)
    assert main(["-c", str(conf), *args]) == 64
    assert said in capsys.readouterr().err


def test_dockds_own_usage_error_exits_64(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write_config(tmp_path)
    assert main(["-c", str(conf), "ledger", "migrate"]) == 0
    assert main(["-c", str(conf), "ledger", "query", "--from", "yesterday"]) == 64
    assert "is not a date or time" in capsys.readouterr().err


READS = [
    ["ledger", "query"],
    ["ledger", "sessions"],
    ["report", "footage"],
    ["alerts", "list"],
    ["audit", "verify"],
    ["access", "pending"],
    ["hold", "list"],
    ["sweep", "upcoming"],
    ["trash", "list"],
    ["devices", "list"],
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_a_read_command_never_creates_a_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    conf = write_config(tmp_path)
    ledger = tmp_path / "ledger.sqlite3"
    code = main(["-c", str(conf), *args])
    err = capsys.readouterr().err
    assert code == 75, err
    assert f"no ledger at {ledger}" in err
    assert "`sudo dockd ledger migrate`" in err
    assert not ledger.exists()
    assert not any(p.name.startswith("ledger.sqlite3") for p in tmp_path.iterdir())


def test_a_missing_ledger_in_a_missing_directory_is_not_created_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "dockd.toml"
    where = tmp_path / "state" / "ledger.sqlite3"
    conf.write_text(
        f'[station]\nid = "st-x"\nunit = "X"\n[store]\nroot = "{tmp_path / "store"}"\n'
        f'[ledger]\nurl = "sqlite:///{where}"\n'
    )
    assert main(["-c", str(conf), "audit", "verify"]) == 75
    assert f"no ledger at {where}" in capsys.readouterr().err
    assert not where.parent.exists()


def test_ledger_migrate_still_creates_the_ledger_and_then_reads_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write_config(tmp_path)
    ledger = tmp_path / "ledger.sqlite3"
    assert main(["-c", str(conf), "ledger", "migrate"]) == 0
    assert ledger.is_file()
    capsys.readouterr()
    assert main(["-c", str(conf), "ledger", "query", "--format", "json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_status_reads_the_daemons_file_and_never_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write_config(tmp_path, f'[dock]\nstatus_file = "{tmp_path / "status.json"}"\n')
    assert main(["-c", str(conf), "status"]) == 66
    assert "no dock status at" in capsys.readouterr().err
    assert not (tmp_path / "ledger.sqlite3").exists()


def test_the_refusal_reaches_the_shell_as_one_line(tmp_path: Path) -> None:
    conf = write_config(tmp_path)
    proc = dockd("-c", str(conf), "alerts", "list")
    assert proc.returncode == 75
    assert proc.stderr.startswith("dockd: no ledger at ")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ledger.sqlite3").exists()
