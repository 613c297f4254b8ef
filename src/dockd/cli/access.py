"""``dockd view`` and ``dockd export``: every access names who, why and who approved it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dockd.cli.common import app_of
from dockd.errors import UsageError
from dockd.evidence import access as core
from dockd.evidence import export as exporter
from dockd.evidence.bycase import original_path
from dockd.reports.base import iso

By = Annotated[str | None, typer.Option("--by", help="Who views / exports (required).")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why (required).")]
Approver = Annotated[
    str | None, typer.Option("--approved-by", help="Who approved it (required, not --by).")
]
RestrictedOk = Annotated[
    bool,
    typer.Option(
        "--restricted-ok",
        help="Confirm the approval covers restricted footage (secrets, privacy).",
    ),
]


def view(
    ctx: typer.Context,
    file_id: Annotated[int, typer.Argument(help="File id.")],
    by: By = None,
    reason: Reason = None,
    approved_by: Approver = None,
    restricted_ok: RestrictedOk = False,
) -> None:
    """Register a view of one file, then print where its original is and what it is."""
    state = app_of(ctx)
    cfg = state.config
    tz = cfg.station.tz
    who = core.Access(by, reason, approved_by, restricted_ok)
    with state.ledger.session() as s:
        row, event = core.view(s, file_id, who, at=state.clock.now())
        path = original_path(cfg, row) if row.state == "stored" else Path(row.trash_path or "")
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
            help="Also write the bag as a disc image (ISO 9660 + Joliet) to this new file, "
            "read back and verified, for burning.",
        ),
    ] = None,
    by: By = None,
    reason: Reason = None,
    approved_by: Approver = None,
    restricted_ok: RestrictedOk = False,
) -> None:
    """Write an evidence package (BagIt bag) of a case's or the given files.

    The originals are checked against the ledger's BLAKE3 while copied; the bag has
    SHA-256/512 manifests and the recording form (摄录情况记录表) as CSV and HTML.
    With --iso, the bag is also written as a disc image, verified by reading it back.
    """
    state = app_of(ctx)
    if to is None:
        raise UsageError("give --to DIR: a new (or empty) directory to write the bag into")
    result = exporter.export_bag(
        config=state.config,
        ledger=state.ledger,
        alerts=state.alerts,
        clock=state.clock,
        dest=to,
        access=core.Access(by, reason, approved_by, restricted_ok),
        file_ids=file_ids or (),
        case=case,
        iso=iso,
    )
    typer.echo(
        f"exported {result.files} file(s), {result.bytes} bytes, to {result.bag} "
        f"(export {result.export_id})"
    )
    if result.image is not None:
        img = result.image
        typer.echo(
            f"disc image {img.path}: volume {img.volume_id}, {img.size} bytes, verified; "
            f"BLAKE3 {img.blake3}, SHA-256 {img.sha256}"
        )


def register(app: typer.Typer) -> None:
    app.command("view")(view)
    app.command("export")(export)
