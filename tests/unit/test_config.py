"""Config: one validated, frozen object; every error names its key and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dockd.cli import main
from dockd.config import Config, load_config, parse_config
from dockd.errors import ConfigError

BROKEN = """\
[station]
timezone = "Mars/Olympus"

[ingest]
verfy = "reread"
unknown_device = "trust"

[[naming]]
name = "vendor-x"
pattern = '(?P<timestamp>\\d{14})'

[[naming]]
name = "vendor-y"
pattern = '^(?P<colour>red)$'
"""


def test_defaults_are_usable() -> None:
    cfg = Config()
    assert cfg.station.timezone == "Asia/Shanghai"
    assert cfg.ledger.url.startswith("sqlite:")
    assert cfg.ingest.kind_of(".MP4") == "video"
    assert cfg.ingest.kind_of(".wav") == "audio"
    assert cfg.ingest.kind_of(".txt") is None


def test_every_error_is_reported_with_key_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BROKEN, source="dockd.toml")
    problems = info.value.problems
    text = "\n".join(problems)
    assert "line 2: station.timezone: unknown time zone 'Mars/Olympus'" in text
    assert "line 5: ingest.verfy: unknown key" in text
    assert "line 6: ingest.unknown_device:" in text
    assert (
        "line 8: naming[0]: pattern has a 'timestamp' group, so timestamp_format is required"
        in (text)
    )
    assert "line 14: naming[1].pattern: unknown named group(s) ['colour']" in text
    assert len(problems) == 5


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"line 2"):
        parse_config('[station]\nunit = "unterminated\n')


def test_unknown_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"line 1: retenton: unknown key"):
        parse_config("[retenton]\nroutine = 10\n")


def test_template_must_start_with_the_day(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"store.path_template: must begin with"):
        parse_config('[store]\npath_template = "{device}/{name}"\n')
    with pytest.raises(ConfigError, match=r"unknown placeholder"):
        parse_config('[store]\npath_template = "{year}/{month}/{day}/{officer_name}/{name}"\n')


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(ValidationError):
        cfg.station.timezone = "UTC"  # type: ignore[misc]


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "dockd.toml"
    path.write_text('[store]\nroot = "data/store"\n[ledger]\nurl = "sqlite:///data/l.db"\n')
    cfg = load_config(path)
    assert cfg.store.root == tmp_path / "data" / "store"
    assert cfg.ledger.url == f"sqlite:///{tmp_path}/data/l.db"


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    cfg = load_config(example)
    assert cfg.station.id


def test_config_check_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN)
    monkeypatch.setenv("DOCKD_CONFIG", str(bad))
    assert main(["config", "check"]) == 78
    err = capsys.readouterr().err
    assert "ingest.verfy" in err and "line 5" in err
    good = tmp_path / "good.toml"
    good.write_text('[station]\nid = "st-9"\n')
    monkeypatch.setenv("DOCKD_CONFIG", str(good))
    assert main(["config", "check"]) == 0
    assert "OK" in capsys.readouterr().out
