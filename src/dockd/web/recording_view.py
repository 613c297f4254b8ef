"""What a recording's page shows, read from the ledger in one snapshot: the file's facts
(times and which clock was trusted, device, officer, case, holds, retention end,
archive copies, fixity), its audit trail and its access history, and whether the
signed-in person holds a grant to play it.

Also where its bytes are: found through the ledger row only (never a path from a URL),
and refused unless the path lies inside the store, the quarantine or the trash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.auth import access as grants
from dockd.auth.roles import Actor
from dockd.config import Config
from dockd.errors import NotFound, NotPermitted
from dockd.evidence.access import ACCESS_ACTIONS, RESTRICTED
from dockd.ledger import audit
from dockd.ledger.models import AccessRequest, ArchiveCopy, AuditEvent, Hold, Recording
from dockd.policy.adapter import file_facts, hold_target, holds_touching
from dockd.policy.retention import NEVER
from dockd.sweeps.locations import stored_path, trash_root, trashed_path

# Which clock a recording's time was taken from (``files.time_source``), in words.
CLOCKS = {
    "container": "the recorder's clock, written in the file",
    "filename": "the recorder's clock, in the file name",
    "mtime": "the file's modification time (no better clock)",
}


@dataclass
class RecordingView:
    row: Recording
    holds: list[Hold]
    copies: list[ArchiveCopy]
    trail: list[dict[str, Any]]
    accesses: list[dict[str, Any]]
    clock_findings: list[dict[str, Any]]
    grant: grants.Grant | None
    grant_problem: str | None
    pending: list[AccessRequest] = field(default_factory=list)

    @property
    def restricted(self) -> bool:
        return self.row.access_class == RESTRICTED

    @property
    def waits(self) -> bool:
        """Retention waits for something (an open case): no end date yet."""
        end = self.row.expires_at
        return end is not None and end >= NEVER.replace(tzinfo=end.tzinfo)

    @property
    def playable(self) -> bool:
        return self.grant is not None and self.row.state in ("stored", "trashed")


def get_row(session: Session, file_id: int) -> Recording:
    row = session.get(Recording, file_id)
    if row is None:
        raise NotFound(f"no recording with id {file_id}; search for it at /search")
    return row


def _details(event: AuditEvent) -> dict[str, Any]:
    try:
        loaded = json.loads(event.details)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _short(details: dict[str, Any]) -> str:
    changed = details.get("set")
    parts = []
    if isinstance(changed, dict):
        parts.append("set " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    parts.extend(
        f"{k}={v}" for k, v in details.items() if k != "set" and v not in (None, "", [], {})
    )
    text = "; ".join(parts)
    return text if len(text) <= 200 else text[:197] + "..."


def find_grant(
    session: Session, actor: Actor, row: Recording, now: datetime
) -> tuple[grants.Grant | None, str | None]:
    """The actor's active view grant for the file, or None and why not."""
    try:
        return grants.find_grant(session, actor, ("view",), [row], now), None
    except NotPermitted as refused:
        return None, str(refused)


def _pending_of(session: Session, actor: Actor, row: Recording) -> list[AccessRequest]:
    q = select(AccessRequest).where(
        AccessRequest.requested_by == actor.login,
        AccessRequest.status == grants.PENDING,
    )
    out = []
    for req in session.scalars(q.order_by(AccessRequest.id)):
        covers = (
            req.case_number == row.case_number
            if req.case_number is not None
            else row.id in grants.files_of(req)
        )
        if covers:
            out.append(req)
    return out


def load(session: Session, actor: Actor, file_id: int, now: datetime) -> RecordingView:
    row = get_row(session, file_id)
    row.device, row.officer  # noqa: B018 (loaded now, while the session is open)
    holds = holds_touching(session, file_facts(session, row))
    copies = list(
        session.scalars(
            select(ArchiveCopy).where(ArchiveCopy.file_id == row.id).order_by(ArchiveCopy.id)
        )
    )
    trail, accesses = [], []
    for event in audit.history(session, "file", row.id):
        details = _details(event)
        trail.append(
            {"id": event.id, "at": event.at, "action": event.action, "actor": event.actor,
             "details": _short(details)}
        )  # fmt: skip
        if event.action in ACCESS_ACTIONS:
            accesses.append(
                {"id": event.id, "at": event.at, "action": event.action,
                 "by": details.get("by") or event.actor, "reason": details.get("reason"),
                 "approved_by": details.get("approved_by"), "grant": details.get("grant")}
            )  # fmt: skip
    findings: list[dict[str, Any]] = []
    if row.clock_findings:
        try:
            loaded = json.loads(row.clock_findings)
        except ValueError:
            loaded = []
        findings = [f for f in loaded if isinstance(f, dict)] if isinstance(loaded, list) else []
    grant, problem = find_grant(session, actor, row, now)
    return RecordingView(
        row=row,
        holds=holds,
        copies=copies,
        trail=trail,
        accesses=accesses,
        clock_findings=findings,
        grant=grant,
        grant_problem=problem,
        pending=_pending_of(session, actor, row),
    )


def hold_text(hold: Hold) -> str:
    return f"{hold.reason} ({hold_target(hold)})"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root.resolve())
    except ValueError:
        return False
    return True


def media_path(config: Config, row: Recording) -> Path:
    """Where the recording's bytes are, from its ledger row only; refused when the row
    points outside the store, the quarantine and the trash, or at a link."""
    if row.state == "stored":
        path = stored_path(config, row)
    elif row.state == "trashed" and row.trash_path:
        path = trashed_path(config, row)
    else:
        raise NotFound(f"recording {row.id} is {row.state}: its bytes are no longer kept")
    roots = (config.store.root, config.store.quarantine_root, trash_root(config))
    if path.is_symlink():
        raise NotFound(f"recording {row.id}'s file is a link, which is never served")
    resolved = path.resolve()
    if not any(_inside(resolved, root) for root in roots) or not resolved.is_file():
        raise NotFound(f"recording {row.id}'s file is not in the store; run `dockd sweep fixity`")
    return resolved
