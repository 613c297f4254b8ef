"""The effective policy (:mod:`dockd.policy.effective`) with what other layers add (the
next run of each sweep, who may place and release a hold), and as text for a person."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dockd.auth.permissions import rule_of
from dockd.auth.roles import Role
from dockd.config import Config
from dockd.config.station import localize_times
from dockd.policy.effective import effective_policy

NEXT_RUNS = 3


def _roles(action: str) -> list[str]:
    held = rule_of(action).roles
    return [r.value for r in Role if r in held]


def next_runs(expr: str, cfg: Config, now: datetime, n: int = NEXT_RUNS) -> list[str]:
    """The next ``n`` times ``expr`` fires (station time, ISO), as the daemon reads it."""
    from dockd.daemon.scheduler import cron_trigger  # the scheduler: for this text only

    trigger = cron_trigger(expr, cfg)
    runs: list[str] = []
    prev = None
    at = now.astimezone(cfg.station.tz)
    for _ in range(n):
        fire = trigger.get_next_fire_time(prev, at)
        if fire is None:
            break
        runs.append(fire.isoformat(timespec="minutes"))
        prev, at = fire, fire + timedelta(microseconds=1)
    return runs


def shown_policy(cfg: Config, now: datetime) -> dict[str, Any]:
    """The effective policy with next runs and the hold roles filled in."""
    policy = effective_policy(cfg)
    for job in policy["schedule"]["jobs"].values():
        job["next"] = next_runs(job["cron"], cfg, now) if job["cron"] else []
    policy["holds"]["placed_by"] = _roles("hold add")
    policy["holds"]["released_by"] = _roles("hold release")
    return policy


def policy_text(p: dict[str, Any]) -> str:
    """The policy as a person reads it: one section per heading, one line per rule."""
    out: list[str] = [f"policy of station {p['station']['id']} ({p['station']['unit']})"]
    out.append(f"  from {p['config'] or 'built-in defaults (no config file)'}")
    r = p["retention"]
    out += ["", f"retention (never below {r['minimum']}):"]
    for name, c in r["categories"].items():
        extra = ""
        if c["until_case_closed"]:
            extra = f", and until the case is closed + {c['after_close_days']} days"
        marks = [
            m
            for m, k in (("default", "default_category"), ("cases", "case_category"))
            if r[k] == name
        ]
        tag = f" [{', '.join(marks)}]" if marks else ""
        desc = f"  ({c['description']})" if c["description"] else ""
        out.append(f"  {name}{tag}: keep {c['keep']}{extra}{desc}")
    out.append(f"  trash: {r['trash']}, purged after {r['trash_grace_days']} days")
    s = p["schedule"]
    out += ["", f"schedule (cron, in {s['timezone']}):"]
    for kind, job in s["jobs"].items():
        if not job["cron"]:
            out.append(f"  {kind}: off")
            continue
        runs = ", ".join(localize_times(t) for t in job["next"])  # wall clock, no offset
        out.append(f"  {kind}: {job['cron']}  next: {runs}")
    out.append(
        f"  fixity re-hashes every file once per {s['fixity_cycle_days']} days "
        f"at most {s['fixity_rate_mb_s']} MB/s"
    )
    h = p["holds"]
    out += ["", "holds:", f"  {h['rule']}"]
    out.append(f"  reasons: {', '.join(h['reasons'])}")
    out.append(
        f"  placed by: {', '.join(h['placed_by'])}; released by: {', '.join(h['released_by'])}"
    )
    out.append(f"  archive: {h['archived']}")
    for t in h["archive_targets"]:
        out.append(f"    {t['name']} ({t['kind']}): {t['path']}")
    out += ["", "naming rules (first match wins):"]
    for n in p["naming"] or [{"name": "(none)", "pattern": "", "timezone": ""}]:
        out.append(f"  {n['name']}: {n['pattern']}")
        if n.get("timestamp_format"):
            out.append(f"    time {n['timestamp_format']} in {n['timezone']}")
    rec = p["recorders"]
    out += ["", "accepted recorders:"]
    for m in rec["match"]:
        conds = ", ".join(f"{k}={v}" for k, v in m.items() if k != "name")
        out.append(f"  {m.get('name', 'rule')}: {conds or 'any device'}")
    out.append(f"  filesystems: {', '.join(rec['filesystems'])}")
    out.append(
        f"  an unregistered recorder: {rec['unknown_device']}; one naming two devices: "
        f"{rec['device_conflict']}"
    )
    out += ["", "access to footage (approvals, in order):"]
    for kind, a in p["access"].items():
        hours = f"; grant lasts {a['grant_hours']:g} h" if "grant_hours" in a else ""
        out.append(f"  {kind}: {' then '.join(a['approvals']) or 'no approval'}{hours}")
    return "\n".join(out) + "\n"
