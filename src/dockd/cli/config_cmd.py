"""``dockd config check`` validates the configuration and says exactly what is wrong (the
file, then the places it names, their permissions and the ledger); ``--show`` prints the
policy in force; ``dockd config diff NEW`` says what applying NEW would change, before it
is applied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dockd.cli.common import Format, app_of, render
from dockd.cli.policy_text import policy_text, shown_policy
from dockd.config import load_config
from dockd.config.findings import Level
from dockd.errors import ConfigError, UsageError
from dockd.ledger.checkup import check_ledger
from dockd.policy.diff import ConfigDiff, config_diff
from dockd.store.places import check_places

app = typer.Typer(help="Check the configuration.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context,
    show: Annotated[
        bool, typer.Option("--show", help="Print the effective policy instead of checking.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """Check the config (every error with its key path and line: exit 78), then the places
    it names (store, quarantine, trash, per-case tree, archive targets, backup), their
    permissions and the ledger (opened read-only): errors exit 78, warnings do not.
    With --show, print the policy in force: retention, schedules, holds, naming rules,
    accepted recorders, access rules."""
    if fmt not in ("text", "json"):
        raise UsageError(f"--format {fmt!r}: use text or json")
    state = app_of(ctx)
    cfg = state.config  # raises ConfigError listing every problem
    if show:
        policy = shown_policy(cfg, state.clock.now())
        if fmt == "json":
            typer.echo(json.dumps(policy, ensure_ascii=False, indent=2))
        else:
            typer.echo(policy_text(policy), nl=False)
        return
    findings = check_places(cfg) + check_ledger(cfg.ledger.url, cfg.ledger.group)
    errors = [f for f in findings if f.level is Level.ERROR]
    warnings = [f for f in findings if f.level is Level.WARNING]
    if fmt == "json":
        typer.echo(json.dumps([f.as_dict() for f in findings], ensure_ascii=False, indent=2))
    else:
        where = str(cfg.source) if cfg.source else "built-in defaults (no config file)"
        head = "OK" if not errors else f"{len(errors)} error(s)"
        typer.echo(f"{head}: {where}")
        typer.echo(
            f"  station {cfg.station.id} ({cfg.station.unit}), time zone {cfg.station.timezone}"
        )
        typer.echo(f"  store   {cfg.store.root}  template {cfg.store.path_template}")
        typer.echo(f"  ledger  {cfg.ledger.url}")
        typer.echo(f"  naming  {', '.join(r.name for r in cfg.naming) or '(none)'}")
        for f in findings:
            if f.level is Level.OK:
                typer.echo(f"  ok      {f.key}: {f.message}")
        for title, group in (("warnings", warnings), ("errors", errors)):
            if group:
                typer.echo(f"{title}:", err=True)
                for f in group:
                    typer.echo(f"  {f.key}: {f.message}", err=True)
    if errors:
        raise typer.Exit(ConfigError.exit_code)


@app.command("diff")
def diff(
    ctx: typer.Context,
    new: Annotated[Path, typer.Argument(help="The configuration file to compare with.")],
    fmt: Annotated[Format, typer.Option("--format", help="table or json")] = Format.table,
) -> None:
    """What NEW would change: retention ends moved earlier or later (and the files due at
    once), schedules, naming rules, every other key. A NEW that fails `config check` is
    refused with its key and line (exit 78). Changes nothing."""
    if fmt is Format.csv:
        raise UsageError("config diff prints --format table or json")
    state = app_of(ctx)
    current = state.config
    proposed = load_config(new)  # raises ConfigError: every problem with its key and line
    with state.ledger.read() as s:
        found = config_diff(s, current, proposed, state.clock.now())
    tz = current.station.tz
    if fmt is Format.json:
        typer.echo(json.dumps(found.as_json(tz), ensure_ascii=False, indent=2))
        return
    _tables(found, tz, fmt)


def _show(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value, ensure_ascii=False)


def _tables(found: ConfigDiff, tz: Any, fmt: Format) -> None:
    if found.empty:
        typer.echo("no change")
        return
    r = found.retention
    cats = sorted(r.earlier.keys() | r.later.keys())
    moved = sum(r.earlier.values()) + sum(r.later.values())
    if not moved:
        typer.echo("retention: no stored file's end moves")
    else:
        typer.echo(f"retention: the end of {moved} of {r.checked} stored file(s) moves")
    if cats:
        rows = [
            {"category": c, "earlier": r.earlier.get(c, 0), "later": r.later.get(c, 0)}
            for c in cats
        ]
        render(rows, fmt, title="retention ends that move")
    if r.due_at_once:
        due = [
            {
                "id": d.id,
                "file": d.store_path,
                "category": d.category,
                "expires now": d.expires_now.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                "expires new": d.expires_new.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                "held": "held" if d.held else "",
            }
            for d in r.due_at_once
        ]
        render(due, fmt, title=f"{len(due)} file(s) due at once under the new policy")
    if found.schedule:
        rows = [
            {"schedule": c.key, "now": _show(c.old), "new": _show(c.new)} for c in found.schedule
        ]
        render(rows, fmt, title="schedule")
    n = found.naming
    if n:
        said = {"added": n.added, "removed": n.removed, "changed": n.changed}
        rows = [
            {"naming rule": name, "change": how} for how, names in said.items() for name in names
        ]
        render(rows, fmt, title="naming rules")
    if found.other:
        rows = [{"key": c.key, "now": _show(c.old), "new": _show(c.new)} for c in found.other]
        render(rows, fmt, title="other keys")
