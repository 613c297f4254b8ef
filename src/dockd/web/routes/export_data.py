"""Export requests of the signed-in account, and the BagIt package of a granted one as a zip.

Asking is ``dockd access request --kind export`` (:func:`dockd.auth.access.request_access`);
making the package is ``dockd export``: the requester's active grant found as the CLI
finds it (:func:`dockd.auth.access.find_grant`), then
:func:`dockd.evidence.export.export_bag`, which checks every original against the
ledger and registers each file's export under the grant. The bag is written in a
private directory, zipped there, and the zip kept for downloading: one export
registered per package made, however often it is downloaded.

The kept packages: downloading is only reading, so a reload, a browser's prefetch or a
download manager's retries fetch the same registered copy and never make another. Each
package is a directory of its own, ``request-<id>.<random>/`` in ``[web] exports``
(by default ``<store>/../web-exports``; 0700), holding ``export-<id>.zip`` and
``package.json`` (0600): who made it, when, its size, SHA-256 and BLAKE3, and the
export's id. The json is written last, by rename, so
a directory without it (a crash while making) is never served, and is removed with the
rest once the grant has ended. A request keeps its newest package only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.alerts import AlertSink
from dockd.auth import access as grants
from dockd.auth.accounts import Stamp
from dockd.auth.roles import Actor
from dockd.clock import Clock
from dockd.config import Config
from dockd.config.access import Kind
from dockd.errors import NotFound, NotPermitted
from dockd.evidence import access as core
from dockd.evidence import export as exporter
from dockd.ledger import audit
from dockd.ledger.db import Ledger
from dockd.ledger.models import AccessRequest

EXPORT_KINDS: tuple[Kind, ...] = ("export", "external")


@dataclass(frozen=True)
class Mine:
    """One of the account's export requests as the list shows it."""

    req: AccessRequest
    state: str  # pending, granted, expired, denied
    what: str
    needs: str
    decided: str

    @property
    def makeable(self) -> bool:
        return self.state == grants.GRANTED


def my_requests(session: Session, actor: Actor, now: datetime) -> list[Mine]:
    q = (
        select(AccessRequest)
        .where(AccessRequest.requested_by == actor.login, AccessRequest.kind.in_(EXPORT_KINDS))
        .order_by(AccessRequest.id.desc())
    )
    out = []
    for req in session.scalars(q):
        decisions = grants.decisions_of(session, req)
        state = req.status
        if state == grants.GRANTED and (req.expires_at is None or req.expires_at <= now):
            state = "expired"
        needs = (
            "; ".join(" or ".join(s) for s in grants.missing_steps(req, decisions))
            if req.status == grants.PENDING
            else ""
        )
        decided = ", ".join(f"{d.decision} {d.decided_by}" for d in decisions)
        out.append(Mine(req, state, grants.describe_target(req), needs, decided))
    return out


# ----------------------------------------------------------------------------- kept

log = structlog.get_logger("dockd.web")

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
    return config.web.exports_root(config.store.root)


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


def find_package(config: Config, request_id: int) -> Kept | None:
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


def discard_packages(config: Config, request_id: int, *, keep: Path | None = None) -> None:
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


def own_request(session: Session, actor: Actor, request_id: int) -> AccessRequest:
    req = session.get(AccessRequest, request_id)
    if req is None or req.requested_by != actor.login or req.kind not in EXPORT_KINDS:
        # another person's request is as unknown as a missing one: nothing to learn here
        raise NotFound(f"{actor.login} has no export request {request_id}")
    return req


def in_force(req: AccessRequest, now: datetime) -> bool:
    return req.status == grants.GRANTED and req.expires_at is not None and req.expires_at > now


def make_package(
    *,
    config: Config,
    ledger: Ledger,
    clock: Clock,
    actor: Actor,
    request_id: int,
) -> Kept:
    """Export request ``request_id``'s files (the actor's own request, granted and in
    force) as ``dockd export`` does, registered under the grant, zip the bag and keep
    the zip (below) for downloading."""
    now = clock.now()
    with ledger.read() as s:
        req = own_request(s, actor, request_id)
        if req.status != grants.GRANTED:
            raise NotPermitted(
                f"export request {req.id} is {req.status}: the package can be made "
                "once every approval is given"
            )
        file_ids, case = grants.files_of(req), req.case_number
        rows = exporter.select_files(s, file_ids=file_ids, case=case, station=config.station.id)
    access = core.under_grant(
        ledger, Stamp(now, config.station.id, actor.login), actor, EXPORT_KINDS, rows, case=case
    )
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    work = new_directory(config, request_id)
    try:
        name = f"export-{request_id}"
        made = exporter.export_bag(
            config=config,
            ledger=ledger,
            alerts=alerts,
            clock=clock,
            dest=work / name,
            access=access,
            file_ids=file_ids,
            case=case,
        )
        zip_path = work / f"{name}.zip"
        _zip(made.bag, zip_path, name)
        remove_tree(made.bag)  # the zip holds it; the copies are not kept twice
        size, sha256, b3 = digests(zip_path)
        kept = Kept(
            request_id=request_id,
            name=zip_path.name,
            made_by=actor.login,
            made_at=now.astimezone(UTC).isoformat(),
            export_id=made.export_id,
            files=made.files,
            size=size,
            sha256=sha256,
            blake3=b3,
            directory=str(work),
        )
        finish(work, kept)
    except BaseException:
        remove_tree(work)
        raise
    discard_packages(config, request_id, keep=work)
    return kept


def record_download(ledger: Ledger, stamp: Stamp, kept: Kept, *, byte_range: str | None) -> None:
    """Audit one download of a kept package (reading is auditable); the export itself
    was registered once, when the package was made."""
    details: dict[str, Any] = {
        "export_id": kept.export_id,
        "package": kept.name,
        "size": kept.size,
        "sha256": kept.sha256,
    }
    if byte_range:
        details["range"] = byte_range[:100]
    with ledger.session() as s:
        audit.record(
            s,
            at=stamp.at,
            station=stamp.station,
            actor=stamp.actor,
            action="export.downloaded",
            subject_type="access_request",
            subject_id=kept.request_id,
            details=details,
        )


def _zip(bag: Path, zip_path: Path, top: str) -> None:
    """Every file of the bag under ``top/`` (stored: video does not compress)."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(bag.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(bag).as_posix()}")
