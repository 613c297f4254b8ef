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
