"""TOML configuration, loaded once into one frozen, validated :class:`Config`.

The package is the ground floor of dockd: one module per section (``station``,
``store``, ``ledger``, ``ingest``, ``naming``, ``alerts``, ``logs``, ``dock``,
``policy`` for retention, archive, fixity and schedule, ``reports``), all built on
``base.Section``; ``model`` puts them together into :class:`Config`, and ``loader``
reads the file and turns every problem into a :class:`~dockd.errors.ConfigError`
line with its key path and line number.
"""

from __future__ import annotations

from dockd.config.loader import load_config, parse_config
from dockd.config.model import Config

__all__ = ["Config", "load_config", "parse_config"]
