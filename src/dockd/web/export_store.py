"""Where the web view keeps the export packages it made, until their grant ends.

Making a package registers an export (``file.export`` events under the grant); the
zip is then kept so that downloading it is only reading: a reload, a browser's
prefetch or a download manager's retries fetch the same registered copy and never
make another. Each package is a directory of its own, ``<store>/../web-exports/
request-<id>.<random>/`` (0700), holding ``export-<id>.zip`` and ``package.json``
(0600): who made it, when, its size, SHA-256 and BLAKE3, and the export's id. The
json is written last, by rename, so a directory without it (a crash while making)
is never served, and is removed with the rest once the grant has ended. A request
keeps its newest package only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import blake3
import structlog

from dockd.config import Config

log = structlog.get_logger("dockd.web")

KEPT_DIR = "web-exports"  # beside the store, as the quarantine is by default
META = "package.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Kept:
    """A made package as its ``package.json`` describes it."""

    request_id: int
    name: str  # the zip's file name, as the browser saves it
    made_by: str
    made_at: str  # ISO 8601, UTC
    export_id: str
    files: int
    size: int
    sha256: str
    blake3: str
    directory: str

    @property
    def made(self) -> datetime:
        return datetime.fromisoformat(self.made_at)

    @property
    def zip_path(self) -> Path:
        return Path(self.directory) / self.name


def root_of(config: Config) -> Path:
    return config.store.root.parent / KEPT_DIR


def new_directory(config: Config, request_id: int) -> Path:
    """A private directory for a package of ``request_id`` being made (0700)."""
    root = root_of(config)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    return Path(tempfile.mkdtemp(prefix=f"request-{request_id}.", dir=root))


def _directories(config: Config, request_id: int) -> list[Path]:
    root = root_of(config)
    if not root.is_dir():
        return []
    return [p for p in root.glob(f"request-{request_id}.*") if p.is_dir() and not p.is_symlink()]


def _read(directory: Path, request_id: int) -> Kept | None:
    try:
        data = json.loads((directory / META).read_text(encoding="utf-8"))
        kept = Kept(**{**data, "directory": str(directory)})
    except (OSError, ValueError, TypeError):
        return None  # not finished (or not ours): never served
    if kept.request_id != request_id or Path(kept.name).name != kept.name:
        return None
    return kept if kept.zip_path.is_file() else None


def find(config: Config, request_id: int) -> Kept | None:
    """The newest finished package of ``request_id``, or None."""
    found = [k for d in _directories(config, request_id) if (k := _read(d, request_id))]
    return max(found, key=lambda k: (k.made_at, k.directory), default=None)


def digests(path: Path) -> tuple[int, str, str]:
    """Size, SHA-256 and BLAKE3 of a file, read once."""
    sha, b3, size = hashlib.sha256(), blake3.blake3(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            b3.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), b3.hexdigest()


def finish(directory: Path, kept: Kept) -> None:
    """Write ``package.json`` (by rename, last): from now on the package is served."""
    os.chmod(kept.zip_path, 0o600)
    data = asdict(kept)
    del data["directory"]
    part = directory / f".{META}.part"
    part.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.chmod(part, 0o600)
    part.replace(directory / META)


def discard(config: Config, request_id: int, *, keep: Path | None = None) -> None:
    """Remove the packages of ``request_id``: with ``keep``, the other finished ones (a
    newer one was made; one still being made is left alone), else all of them, finished
    or not (the grant has ended)."""
    for directory in _directories(config, request_id):
        if keep is None or (directory != keep and (directory / META).exists()):
            remove_tree(directory)
            log.info("web.export_discarded", request=request_id, directory=str(directory))


def remove_tree(path: Path) -> None:
    """Remove a directory, whose bag copies and folders export made read-only."""

    def writable(func: object, name: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), stat.S_IRWXU)
            os.chmod(name, stat.S_IRWXU)
            if os.path.isdir(name):
                shutil.rmtree(name, ignore_errors=True)
            else:
                os.unlink(name)

    shutil.rmtree(path, onerror=writable)
