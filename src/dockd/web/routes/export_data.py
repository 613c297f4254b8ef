"""Export requests of the signed-in account, and the BagIt package of a granted one as a zip.

Asking is ``dockd access request --kind export`` (:func:`dockd.auth.access.request_access`);
making the package is ``dockd export``: the requester's active grant found as the CLI
finds it (:func:`dockd.auth.access.find_grant`), then
:func:`dockd.evidence.export.export_bag`, which checks every original against the
ledger and registers each file's export under the grant. The bag is written in a
private directory of the web's kept packages (:mod:`dockd.web.export_store`), zipped
there, and the zip kept for downloading: one export registered per package made,
however often it is downloaded.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from dockd.web import export_store as store

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
) -> store.Kept:
    """Export request ``request_id``'s files (the actor's own request, granted and in
    force) as ``dockd export`` does, registered under the grant, zip the bag and keep
    the zip (:mod:`dockd.web.export_store`) for downloading."""
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
    work = store.new_directory(config, request_id)
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
        store.remove_tree(made.bag)  # the zip holds it; the copies are not kept twice
        size, sha256, b3 = store.digests(zip_path)
        kept = store.Kept(
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
        store.finish(work, kept)
    except BaseException:
        store.remove_tree(work)
        raise
    store.discard(config, request_id, keep=work)
    return kept


def record_download(
    ledger: Ledger, stamp: Stamp, kept: store.Kept, *, byte_range: str | None
) -> None:
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
