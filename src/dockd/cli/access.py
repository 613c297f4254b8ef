"""``dockd view``, ``dockd export`` and ``dockd access ...``: footage only under a grant.

A person asks (``access request``), the people the ``[access]`` rule names approve
(``access approve``), and the requester then views or exports under the grant; every
step is an audit event and every use is registered with its grant. Who acts is the
signed-in account (:meth:`App.account`), never typed.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from dockd.auth import access as grants
from dockd.auth.accounts import Stamp
from dockd.auth.roles import Actor
from dockd.cli.common import App, Format, app_of, render
from dockd.cli.progress import progress_for
from dockd.config.access import AccessConfig, Kind
from dockd.errors import UsageError
from dockd.evidence import access as core
from dockd.evidence.bycase import original_path
from dockd.ledger.models import AccessRequest, Recording
from dockd.reports.base import iso
from dockd.sweeps import locations as loc

access_app = typer.Typer(
    help="Ask for access to footage, approve or deny it, list requests and grants.",
    no_args_is_help=True,
)
Reason = Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")]
Fmt = Annotated[Format, typer.Option("--format", help="table, json or csv.")]


def policy_of(state: App) -> AccessConfig:
    """The ``[access]`` rules: who approves which kind of request."""
    return state.config.access


def _stamp(state: App, actor: Actor) -> Stamp:
    return Stamp(state.clock.now(), state.config.station.id, actor.login)


def _grant(
    state: App, actor: Actor, kinds: tuple[Kind, ...], rows: list[Recording], case: str | None
) -> core.Access:
    """The Access of ``actor``'s active grant covering ``rows``; an expired one is
    audited before the refusal."""
    return core.under_grant(state.ledger, _stamp(state, actor), actor, kinds, rows, case=case)


def view(
    ctx: typer.Context,
    file_id: Annotated[int, typer.Argument(help="File id.")],
) -> None:
    """Register a view of one file under your view grant, then print where it is."""
    state = app_of(ctx)
    actor = state.require("view")
    cfg = state.config
    tz = cfg.station.tz
    with state.ledger.read() as s:
        rows = core.files_by_id(s, [file_id])
    access = _grant(state, actor, ("view",), rows, None)
    with state.ledger.session() as s:
        row, event = core.view(s, file_id, access, at=state.clock.now())
        path = original_path(cfg, row) if row.state == "stored" else loc.trashed_path(cfg, row)
        lines = {
            "path": str(path),
            "state": row.state,
            "device": row.device_ref,
            "case": row.case_number,
            "access_class": row.access_class,
            "recorded_at": iso(row.recorded_start, tz),
            "recorded_end": iso(row.recorded_end, tz),
            "duration_s": row.duration_s,
            "size_bytes": row.size_bytes,
            "blake3": row.blake3,
            "grant": access.grant_id,
            "access_event": event.id,
        }
    for key, value in lines.items():
        typer.echo(f"{key}: {'' if value is None else value}")


def export(
    ctx: typer.Context,
    file_ids: Annotated[list[int] | None, typer.Argument(help="File ids (or --case).")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Every stored file of a case.")] = None,
    to: Annotated[
        Path | None, typer.Option("--to", help="New directory to write the BagIt bag into.")
    ] = None,
    iso: Annotated[
        Path | None,
        typer.Option(
            "--iso",
            help="Also write the bag as a disc image (ISO 9660 + Joliet + UDF) to this new file, "
            "read back and verified, for burning.",
        ),
    ] = None,
) -> None:
    """Write an evidence package (BagIt bag) of a case's or the given files, under your
    export (or external) grant.

    The originals are checked against the ledger's BLAKE3 while copied; the bag has
    SHA-256/512 manifests and the recording form (摄录情况记录表) as CSV and HTML.
    With --iso, the bag is also written as a disc image, verified by reading it back.
    """
    # Imported here: BagIt and the disc image writer are for this command only.
    from dockd.evidence import export as exporter

    state = app_of(ctx)
    actor = state.require("export")
    if to is None:
        raise UsageError("give --to DIR: a new (or empty) directory to write the bag into")
    with state.ledger.read() as s:
        rows = exporter.select_files(
            s, file_ids=file_ids or (), case=case, station=state.config.station.id
        )
    access = _grant(state, actor, ("export", "external"), rows, case)
    with progress_for() as progress:
        result = exporter.export_bag(
            config=state.config,
            ledger=state.ledger,
            alerts=state.alerts,
            clock=state.clock,
            dest=to,
            access=access,
            file_ids=file_ids or (),
            case=case,
            iso=iso,
            progress=progress,
        )
    typer.echo(
        f"exported {result.files} file(s), {result.bytes} bytes, to {result.bag} "
        f"(export {result.export_id}, grant {access.grant_id})"
    )
    if result.image is not None:
        img = result.image
        typer.echo(
            f"disc image {img.path}: volume {img.volume_id}, {img.size} bytes, verified; "
            f"BLAKE3 {img.blake3}, SHA-256 {img.sha256}"
        )


# ----------------------------------------------------------------------------- access


@access_app.command("request")
def request(
    ctx: typer.Context,
    reason: Reason,
    kind: Annotated[str, typer.Option("--kind", help="view, export or external.")],
    file: Annotated[
        list[int] | None, typer.Option("--file", help="A file id (repeat for more).")
    ] = None,
    case: Annotated[str | None, typer.Option("--case", help="Every file of a case.")] = None,
    for_party: Annotated[
        str | None,
        typer.Option("--for-party", help="Asked for the party concerned (当事人): their name."),
    ] = None,
    for_office: Annotated[
        str | None,
        typer.Option("--for-office", help="Asked for a higher office (上级机关): its name."),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="With --for-*: identity document or letter number."),
    ] = None,
) -> None:
    """Ask for access to files or a case; prints the request's number (alone on stdout).

    With --for-party or --for-office the request is made for someone outside the
    station, who holds no account: you ask, view or export for them; the approvers see
    whom it is for, and the [access] on_behalf step (the leader) is added."""
    state = app_of(ctx)
    actor = state.require("access request")
    if for_party and for_office:
        raise UsageError(
            "a request is for one party or one office: give --for-party or --for-office"
        )
    if reference and not (for_party or for_office):
        raise UsageError("--reference goes with --for-party or --for-office")
    behalf = None
    if for_party or for_office:
        behalf = grants.OnBehalf(
            "party" if for_party else "office", (for_party or for_office or ""), reference or ""
        )
    with state.ledger.session() as s:
        req = grants.request_access(
            s,
            _stamp(state, actor),
            policy_of(state),
            kind=grants.parse_kind(kind),
            reason=reason,
            file_ids=file or (),
            case=case,
            on_behalf=behalf,
        )
        number, needs = req.id, grants.steps_of(req)
    typer.echo(number)
    steps = "; then ".join(" or ".join(step) for step in needs)
    typer.echo(f"access request {number} waits for approval by: {steps}", err=True)


@access_app.command("approve")
def approve(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="The request's number.")],
    reason: Annotated[str | None, typer.Option("--reason", help="A note (optional).")] = None,
) -> None:
    """Approve one step of someone else's request; the last step makes it a grant."""
    state = app_of(ctx)
    actor = state.require("access approve")
    tz = state.config.station.tz
    with state.ledger.session() as s:
        req = grants.approve(
            s, _stamp(state, actor), actor, policy_of(state), number, reason=reason
        )
        if req.status == grants.GRANTED:
            message = (
                f"access request {req.id} is granted to {req.requested_by} until "
                f"{iso(req.expires_at, tz)}"
            )
        else:
            missing = grants.missing_steps(req, grants.decisions_of(s, req))
            message = f"approved; access request {req.id} still needs " + "; ".join(
                " or ".join(step) for step in missing
            )
    typer.echo(message)


@access_app.command("deny")
def deny(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="The request's number.")],
    reason: Reason,
) -> None:
    """Deny a request: it is closed (a new request may be made)."""
    state = app_of(ctx)
    actor = state.require("access deny")
    with state.ledger.session() as s:
        req = grants.deny(s, _stamp(state, actor), actor, number, reason=reason)
        typer.echo(f"access request {req.id} is denied and closed")


def _row(req: AccessRequest, state: App, decided: str, needs: str) -> dict[str, object]:
    tz = state.config.station.tz
    return {
        "request": req.id,
        "kind": req.kind,
        "what": grants.describe_target(req),
        "restricted": req.restricted,
        "by": req.requested_by,
        "for": (b.describe() if (b := grants.on_behalf_of(req)) is not None else None),
        "at": iso(req.requested_at, tz),
        "reason": req.reason,
        "status": req.status,
        "steps": " + ".join(" or ".join(step) for step in grants.steps_of(req)),
        "decisions": decided,
        "needs": needs,
        "expires_at": iso(req.expires_at, tz),
    }


def _listing(
    state: App, s: Session, reqs: list[AccessRequest], now: datetime | None
) -> list[dict[str, object]]:
    out = []
    for req in reqs:
        decisions = grants.decisions_of(s, req)
        decided = ", ".join(
            f"{d.decision} {d.decided_by} ({', '.join(json.loads(d.roles)) or '-'})"
            for d in decisions
        )
        needs = (
            " + ".join(" or ".join(st) for st in grants.missing_steps(req, decisions))
            if req.status == grants.PENDING
            else ""
        )
        row = _row(req, state, decided, needs)
        if now is not None and req.status == grants.GRANTED:
            assert req.expires_at is not None
            row["status"] = "granted" if req.expires_at > now else "expired"
        out.append(row)
    return out


@access_app.command("pending")
def pending(ctx: typer.Context, fmt: Fmt = Format.table) -> None:
    """Requests waiting for an approval that one of your roles can give."""
    state = app_of(ctx)
    actor = state.require("access pending")
    with state.ledger.read() as s:
        rows = _listing(state, s, grants.pending_for(s, actor), None)
    cols = ["request", "kind", "what", "restricted", "by", "for", "at", "reason", "decisions",
            "needs"]  # fmt: skip
    render(rows, fmt, columns=cols, title="Waiting for you")


@access_app.command("grants")
def active(ctx: typer.Context, fmt: Fmt = Format.table) -> None:
    """Grants in force now: who may view or export what, until when."""
    state = app_of(ctx)
    state.require("access grants")
    with state.ledger.read() as s:
        rows = _listing(state, s, grants.active_grants(s, state.clock.now()), None)
    cols = ["request", "kind", "what", "restricted", "by", "for", "reason", "decisions",
            "expires_at"]  # fmt: skip
    render(rows, fmt, columns=cols, title="Active grants")


@access_app.command("history")
def history(ctx: typer.Context, fmt: Fmt = Format.table) -> None:
    """Every request, with its steps, its decisions and what became of it."""
    state = app_of(ctx)
    state.require("access history")
    with state.ledger.read() as s:
        rows = _listing(state, s, grants.all_requests(s), state.clock.now())
    cols = ["request", "kind", "what", "by", "for", "at", "reason", "steps", "decisions",
            "status", "expires_at"]  # fmt: skip
    render(rows, fmt, columns=cols, title="Access requests")


def register(app: typer.Typer) -> None:
    app.command("view")(view)
    app.command("export")(export)
    app.add_typer(access_app, name="access")
