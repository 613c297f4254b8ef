"""The policy a config puts in force, as a person reads it (``dockd config check --show``).

One plain dict (JSON as it is, text through the CLI): retention per category, the
sweeps' schedules, holds, naming rules, accepted recorders and access rules. It is
made from the loaded :class:`~dockd.config.Config` alone, so it shows the defaults a
config leaves unset too. The next run times and who may place or release a hold are
added by the CLI (the scheduler and the permission table sit in other layers).
"""

from __future__ import annotations

from typing import Any

from dockd.config import Config
from dockd.config.policy import SWEEP_KINDS
from dockd.policy.holds import REASON_ALIASES, HoldReason


def _retention(cfg: Config) -> dict[str, Any]:
    r = cfg.retention
    return {
        "minimum": f"{r.minimum_months} months" if r.minimum_months else f"{r.minimum_days} days",
        "default_category": r.default_category,
        "case_category": r.case_category,
        "categories": {
            name: {
                "keep": c.length,
                "until_case_closed": c.until_case_closed,
                "after_close_days": c.after_close_days,
                "description": c.description,
            }
            for name, c in sorted(r.categories.items())
        },
        "trash": str(r.trash or cfg.store.root.parent / "trash"),
        "trash_grace_days": r.trash_grace_days,
    }


def _schedule(cfg: Config) -> dict[str, Any]:
    s = cfg.schedule
    jobs = {k: getattr(s, k) or None for k in SWEEP_KINDS}
    jobs["backup"] = cfg.backup.schedule or None
    return {
        "timezone": cfg.station.timezone,
        "jobs": {k: {"cron": v} for k, v in jobs.items()},
        "misfire_grace_minutes": s.misfire_grace_minutes,
        "fixity_cycle_days": cfg.fixity.cycle_days,
        "fixity_rate_mb_s": cfg.fixity.rate_mb_s,
    }


def _holds(cfg: Config) -> dict[str, Any]:
    return {
        "reasons": [str(r) for r in HoldReason],
        "aliases": {k: str(v) for k, v in sorted(REASON_ALIASES.items())},
        "rule": "an active hold keeps every file it covers, whatever its retention says",
        "archived": "held files, and files of the categories "
        + (", ".join(cfg.archive.include_categories) or "(none)")
        + f", are copied to {len(cfg.archive.targets)} archive target(s)",
        "archive_targets": [
            {"name": t.name, "path": str(t.path), "kind": t.kind} for t in cfg.archive.targets
        ],
    }


def _naming(cfg: Config) -> list[dict[str, Any]]:
    return [
        {
            "name": n.name,
            "pattern": n.pattern,
            "timestamp_format": n.timestamp_format,
            "timezone": n.timezone or cfg.station.timezone,
        }
        for n in cfg.naming
    ]


def _recorders(cfg: Config) -> dict[str, Any]:
    rules = [
        {k: v for k, v in m.model_dump(mode="json").items() if v not in (None, (), [], {})}
        for m in cfg.dock.match
    ]
    return {
        "match": rules,
        "filesystems": list(cfg.dock.filesystems),
        "unknown_device": cfg.ingest.unknown_device,
        "device_conflict": cfg.ingest.device_conflict,
        "id_files": list(cfg.ingest.id_files),
    }


def _access(cfg: Config) -> dict[str, Any]:
    a = cfg.access
    steps = {"view": a.view, "export": a.export, "external": a.external}
    steps["restricted"] = a.restricted
    return {
        kind: {
            "approvals": [" or ".join(step) for step in rule],
            **({"grant_hours": getattr(a.grant_hours, kind)} if kind != "restricted" else {}),
        }
        for kind, rule in steps.items()
    }


def effective_policy(cfg: Config) -> dict[str, Any]:
    """The policy ``cfg`` puts in force, defaults included."""
    return {
        "config": str(cfg.source) if cfg.source else None,
        "station": {"id": cfg.station.id, "unit": cfg.station.unit},
        "retention": _retention(cfg),
        "schedule": _schedule(cfg),
        "holds": _holds(cfg),
        "naming": _naming(cfg),
        "recorders": _recorders(cfg),
        "access": _access(cfg),
    }
