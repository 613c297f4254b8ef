"""Export requests of the signed-in account, and the BagIt package of a granted one as a zip.

Asking is ``dockd access request --kind export`` (:func:`dockd.auth.access.request_access`);
the package is ``dockd export``: the requester's active grant found as the CLI finds it
(:func:`dockd.auth.access.find_grant`), then :func:`dockd.evidence.export.export_bag`,
which checks every original against the ledger and registers each file's export under
the grant. The bag is written in a private temporary directory, zipped there, streamed,
and the directory removed once the response is sent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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
    def downloadable(self) -> bool:
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


@dataclass(frozen=True)
class Package:
    """A zip of a bag in a temporary directory of its own (``remove`` when sent)."""

    zip_path: Path
    name: str
    workdir: Path

    def remove(self) -> None:
        remove_tree(self.workdir)


def remove_tree(path: Path) -> None:
    """Remove a bag's directory, whose copies and folders export made read-only."""

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


def build_package(
    *,
    config: Config,
    ledger: Ledger,
    clock: Clock,
    actor: Actor,
    request_id: int,
) -> Package:
    """The bag of request ``request_id`` (the actor's own, granted and in force), zipped."""
    now = clock.now()
    with ledger.read() as s:
        req = own_request(s, actor, request_id)
        if req.status != grants.GRANTED:
            raise NotPermitted(
                f"export request {req.id} is {req.status}: the package can be downloaded "
                "once every approval is given"
            )
        file_ids, case = grants.files_of(req), req.case_number
        rows = exporter.select_files(s, file_ids=file_ids, case=case, station=config.station.id)
    access = core.under_grant(
        ledger, Stamp(now, config.station.id, actor.login), actor, EXPORT_KINDS, rows, case=case
    )
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    work = Path(tempfile.mkdtemp(prefix="dockd-web-export-"))
    try:
        name = f"export-{request_id}"
        bag = exporter.export_bag(
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
        _zip(bag.bag, zip_path, name)
    except BaseException:
        remove_tree(work)
        raise
    return Package(zip_path, f"{name}.zip", work)


def _zip(bag: Path, zip_path: Path, top: str) -> None:
    """Every file of the bag under ``top/`` (stored: video does not compress)."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(bag.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(bag).as_posix()}")
