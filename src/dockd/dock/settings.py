"""``[dock]``: how the daemon recognises, mounts and takes recorders."""

from __future__ import annotations

from dockd.configbase import Section


class DockConfig(Section):
    """Dock watcher, mount helpers and session limits (see config.example.toml)."""
