"""``dockd ingest`` runs on a command line built of its own module (so that an ingest does
not import every other command's code, issue 16): to the person typing it, it is the
same command as in ``dockd --help``'s full list."""

from __future__ import annotations

import pytest

from dockd import cli


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "--help"],
        ["--wide", "-c", "/nonexistent/dockd.toml", "ingest", "--help"],
        ["ingest"],  # SOURCE missing: the usage error and its exit code
        ["ingest", "--no-such-option", "/mnt"],
    ],
)
def test_ingest_alone_is_the_ingest_of_the_full_command_line(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = _run(args, capsys)
    monkeypatch.setattr(cli, "_ALONE", {})  # every command, as `dockd --help` lists them
    full = _run(args, capsys)
    assert alone == full


def test_help_before_the_command_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--help", "ingest"], capsys)
    assert code == 0
    assert "ingest" in out and "sweep" in out and "handover" in out


def test_the_root_options_that_take_a_value_are_all_known_to_the_command_finder() -> None:
    """``dockd -c ingest ingest`` must not read the config file's name as the command: the
    finder skips the value of every root option that takes one, so a new such option
    must be added to its list (or an ingest would build the wrong command line)."""
    import typer.main

    root = typer.main.get_command(cli.full_app())
    taking_values = {opt for p in root.params if not getattr(p, "is_flag", False) for opt in p.opts}
    assert taking_values == cli._ROOT_VALUES


def test_an_ingest_does_not_load_the_other_commands_code() -> None:
    """What the ingest-alone command line is for: the web view, the reports, the sweeps'
    exports, the daemon and its scheduler are not imported by ``dockd ingest`` (issue 16: its
    memory; the config still checks its cron expressions with APScheduler's trigger)."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from dockd import cli\n"
        "code = cli.main(['ingest', '--help'])\n"
        "loaded = [m for m in ('dockd.web', 'dockd.daemon.service', 'dockd.cli.report',"
        " 'dockd.evidence.bag', 'fastapi', 'apscheduler.schedulers') if m in sys.modules]\n"
        "print(code, loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "0 []"
