"""The test station: its time and its config (store, quarantine and SQLite ledger in a
temp dir), as TOML text, as a parsed :class:`~dockd.config.Config` or as a file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from dockd.config import Config, parse_config

NOW = datetime(2026, 3, 16, 2, 0, tzinfo=UTC)  # the day after the fixture recordings


def config_text(
    tmp_path: Path, extra: str = "", *, ledger_url: str | None = None, unit: str = "Test Station"
) -> str:
    """The test station's TOML: store, quarantine and SQLite ledger under ``tmp_path``."""
    url = ledger_url or f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    return f"""
[station]
unit = "{unit}"
id = "st-test"
timezone = "Asia/Shanghai"

[store]
root = "{tmp_path / "store"}"
quarantine = "{tmp_path / "quarantine"}"

[ledger]
url = "{url}"
{extra}
"""


def make_config(tmp_path: Path, extra: str = "", *, ledger_url: str | None = None) -> Config:
    text = config_text(tmp_path, extra, ledger_url=ledger_url)
    return parse_config(text, source=str(tmp_path / "dockd.toml"), base=tmp_path)


def write_config(tmp_path: Path, extra: str = "", *, unit: str = "Test Station") -> Path:
    """The same station as the ``config`` fixture, as a file for CLI tests."""
    path = tmp_path / "dockd.toml"
    path.write_text(config_text(tmp_path, extra, unit=unit), encoding="utf-8")
    return path
