"""Reading FAT files the mount cannot open (placeholder until the reader lands)."""

from __future__ import annotations

from dockd.ingest.discover import Fallback
from dockd.ingest.identify import VolumeInfo


def for_volume(volume: VolumeInfo) -> Fallback | None:
    """A reader for files the mount lists but cannot open, or None."""
    del volume
    return None
