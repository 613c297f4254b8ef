"""``dockd tag``: set case number, cause, party, place, category and access class on
footage."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.cases import refresh_by_case
from dockd.cli.common import App, app_of, parse_time
from dockd.errors import UsageError
from dockd.evidence import cases
from dockd.ledger import attribution, registry


def tag(
    ctx: typer.Context,
    file_ids: Annotated[
        list[int] | None, typer.Argument(help="File ids (or use --device/--officer).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device number: its recordings.")] = None,
    officer: Annotated[
        str | None,
        typer.Option(
            help="Badge number: their recordings; with one file id, attribute that file "
            "to this officer (--reason required)."
        ),
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Window start (with --device/--officer).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Window end (a date: through).")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case number.")] = None,
    cause: Annotated[str | None, typer.Option(help="Case cause (案由).")] = None,
    party: Annotated[str | None, typer.Option(help="Party (当事人).")] = None,
    place: Annotated[
        str | None, typer.Option("--place", help="Where it was recorded (地点), for the form.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="Retention category.")] = None,
    access: Annotated[
        str | None, typer.Option("--access", help="Access class: normal or restricted.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
) -> None:
    """Tag footage by file ids, or a device's or officer's recordings overlapping a window.

    Every changed file gets a file.tag audit event with the old and new values.
    `dockd tag FILE_ID --officer BADGE --reason TEXT` attributes one file to an
    officer instead (a file.officer audit event with the old and new badge).
    """
    state = app_of(ctx)
    cfg = state.config
    if file_ids and officer is not None:
        others = {
            "--device": device,
            "--from": from_,
            "--to": to,
            "--case": case,
            "--cause": cause,
            "--party": party,
            "--place": place,
            "--category": category,
            "--access": access,
        }
        given = [name for name, value in others.items() if value is not None]
        if given:
            raise UsageError(
                f"FILE_ID --officer attributes a file to an officer; {', '.join(given)} "
                "cannot go with it: tag the file in a second command"
            )
        _tag_officer(state, file_ids, officer, reason)
        return
    label = cases.Tag(
        case_number=case,
        cause=cause,
        party=party,
        place=place,
        category=category,
        access_class=access,
    )
    label.columns()  # validate before touching the ledger
    with state.ledger.session() as s:
        rows = cases.select_files(
            s,
            file_ids=file_ids or (),
            device=device,
            officer=officer,
            window_from=parse_time(from_, cfg),
            window_to=parse_time(to, cfg, end=True),
        )
        result = cases.tag_files(
            s, rows, label, at=state.clock.now(), actor=state.account().login, reason=reason
        )
    typer.echo(
        f"{len(result.tagged)} file(s) tagged, {len(result.unchanged)} already so"
        + (f": {', '.join(map(str, result.tagged))}" if result.tagged else "")
    )
    if result.tagged:
        refresh_by_case(state)


def _tag_officer(state: App, file_ids: list[int], badge: str, reason: str | None) -> None:
    if len(file_ids) != 1:
        raise UsageError("--officer with file ids attributes one file: give exactly one file id")
    if not reason:
        raise UsageError("say why the file is attributed to another officer: --reason TEXT")
    with state.ledger.session() as s:
        [row] = cases.select_files(s, file_ids=file_ids)
        officer = registry.officer_by_badge(s, badge)
        old = row.officer.badge if row.officer is not None else None
        mismatch = bool(row.badge_hint) and row.badge_hint != badge
        at, actor = state.clock.now(), state.account().login
        if not attribution.set_officer(
            s, row, officer, mismatch, at=at, actor=actor, reason=reason, by_hand=True
        ):
            typer.echo(f"file {row.id} is already attributed to badge {badge}, by hand")
            return
    if old == badge:
        typer.echo(f"file {row.id}: officer {badge} kept, now attributed by hand")
    else:
        typer.echo(f"file {row.id}: officer {old} -> {badge}")


def register(app: typer.Typer) -> None:
    app.command("tag")(tag)
