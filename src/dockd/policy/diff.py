"""What a new configuration would change, before it is applied (``dockd config diff``).

Four kinds of change, each said the way the admin checks it:

* **retention**: every stored file's expiry recomputed under the current and the new
  ``[retention]`` by the same pure rule the sweep uses
  (:func:`dockd.policy.retention.retention_of`); counted per category (the category
  that decides under the new policy) as moving earlier or later, and the files that
  would become due **at once** (expiry under the new policy <= now, under the current
  one later) listed one by one, with whether a hold keeps them anyway;
* **schedule**: the sweeps' crontab expressions (``[schedule]`` and
  ``backup.schedule``), old -> new;
* **naming**: rules added, removed or changed, by name;
* **other keys**: every other changed key by its dotted path, old -> new (the
  ``[retention]`` keys among them: the rule that changed, beside what it does).

:data:`NOT_LIVE` names what a running daemon cannot take on a reload
(``systemctl reload dockd``): the ledger it has open, the store it writes, the
endpoint it listens on, the devices it watches; :func:`not_live` finds them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.config.policy import RetentionConfig
from dockd.ledger.models import Case, FileState, Officer, Recording
from dockd.policy.adapter import holds_touching
from dockd.policy.retention import NEVER, CaseFacts, FileFacts, retention_of

#: Keys (and key prefixes) a running daemon cannot change: a reload naming one is refused.
NOT_LIVE = (
    "ledger.",
    "store.root",
    "store.quarantine",
    "metrics.",
    "dock.",
    "logging.",
    "station.id",
    "station.timezone",
)
SCHEDULE_KEYS = ("schedule.", "backup.schedule")
_BATCH = 500  # recordings read per round trip


@dataclass(frozen=True)
class Change:
    """One changed key: its dotted path, the value now and the value it would become."""

    key: str
    old: Any
    new: Any


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of a dumped config (``archive.targets[0].path``)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out |= flatten(v, f"{prefix}[{i}]")
        return out
    return {prefix: value}


def key_changes(old: Config, new: Config) -> list[Change]:
    """Every key whose value differs, in key order (missing on one side: None)."""
    a, b = flatten(old.model_dump(mode="json")), flatten(new.model_dump(mode="json"))
    return [
        Change(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)
    ]


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p) for p in prefixes)


def not_live(changes: list[Change]) -> list[Change]:
    """The changes a running daemon refuses on a reload (see :data:`NOT_LIVE`)."""
    return [c for c in changes if _under(c.key, NOT_LIVE)]


@dataclass
class NamingChanges:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def naming_changes(old: Config, new: Config) -> NamingChanges:
    """Naming rules by name: added, removed, or the same name with other settings."""
    a = {r.name: r.model_dump(mode="json") for r in old.naming}
    b = {r.name: r.model_dump(mode="json") for r in new.naming}
    order_a = [n for n in a if n in b]
    order_b = [n for n in b if n in a]
    changed = [n for n in b if n in a and a[n] != b[n]]
    if order_a != order_b:  # the first rule that matches wins: the order is a change too
        changed += [n for n in order_b if n not in changed and order_a.index(n) != order_b.index(n)]
    return NamingChanges(
        added=[n for n in b if n not in a], removed=[n for n in a if n not in b], changed=changed
    )


@dataclass(frozen=True)
class DueAtOnce:
    """A stored file the new policy makes due now while the current one keeps it."""

    id: int
    store_path: str
    category: str
    expires_now: datetime
    expires_new: datetime
    held: bool  # a hold keeps it whatever the policy says


@dataclass
class RetentionMoves:
    checked: int = 0
    earlier: dict[str, int] = field(default_factory=dict)
    later: dict[str, int] = field(default_factory=dict)
    due_at_once: list[DueAtOnce] = field(default_factory=list)


def _stamp(at: datetime) -> datetime | None:
    return None if at >= NEVER else at


def retention_moves(
    session: Session, old: RetentionConfig, new: RetentionConfig, now: datetime
) -> RetentionMoves:
    """Recompute every stored file's expiry under ``old`` and ``new``.

    Cost: one pass over the stored recordings, read ``_BATCH`` at a time
    (``yield_per``), plus one query for the officers' badges and one for the cases,
    both held in memory (small tables); the pure rule runs twice per file, in
    microseconds. The holds are read only for the files due at once. A million files
    is about a minute, no write, and a read transaction only.
    """
    moves = RetentionMoves()
    if old == new:
        return moves
    badges = {i: b for i, b in session.execute(select(Officer.id, Officer.badge))}
    cases: dict[str, list[CaseFacts]] = {}
    for number, cat, closed in session.execute(
        select(Case.case_number, Case.category, Case.closed_at)
    ):
        cases.setdefault(number, []).append(CaseFacts(number, cat, closed))
    rows = session.scalars(
        select(Recording)
        .where(Recording.state == FileState.STORED)
        .order_by(Recording.id)
        .execution_options(yield_per=_BATCH)
    )
    for row in rows:
        facts = _facts(row, badges)
        mine = cases.get(row.case_number or "", [])
        before, after = retention_of(facts, mine, old), retention_of(facts, mine, new)
        moves.checked += 1
        if after.expires_at < before.expires_at:
            moves.earlier[after.category] = moves.earlier.get(after.category, 0) + 1
            if after.expires_at <= now < before.expires_at:
                held = bool(holds_touching(session, facts))
                moves.due_at_once.append(
                    DueAtOnce(
                        row.id,
                        row.store_path,
                        after.category,
                        before.expires_at,
                        after.expires_at,
                        held,
                    )
                )
        elif after.expires_at > before.expires_at:
            moves.later[after.category] = moves.later.get(after.category, 0) + 1
    return moves


def _facts(row: Recording, badges: dict[int, str]) -> FileFacts:
    """The facts :func:`dockd.policy.adapter.file_facts` reads, with the badge from memory."""
    held = {row.badge_hint} if row.badge_hint else set()
    if row.officer_id is not None and badges.get(row.officer_id):
        held.add(badges[row.officer_id])
    return FileFacts(
        id=row.id,
        recorded_start=row.recorded_start,
        recorded_end=row.recorded_end,
        category=row.category,
        case_number=row.case_number,
        device_ref=row.device_ref,
        officer_badges=frozenset(held),
        ingested_at=row.ingested_at,
        clock_suspect=row.clock_suspect,
        time_source=row.time_source,
    )


@dataclass
class ConfigDiff:
    retention: RetentionMoves
    schedule: list[Change]
    naming: NamingChanges
    other: list[Change]

    @property
    def empty(self) -> bool:
        moved = self.retention.earlier or self.retention.later
        return not (moved or self.schedule or self.naming or self.other)

    def as_json(self, tz: Any) -> dict[str, Any]:
        def t(at: datetime) -> str | None:
            s = _stamp(at)
            return s.astimezone(tz).isoformat() if s else None

        r = self.retention
        return {
            "retention": {
                "files_checked": r.checked,
                "earlier": r.earlier,
                "later": r.later,
                "due_at_once": [
                    {
                        "id": d.id,
                        "store_path": d.store_path,
                        "category": d.category,
                        "expires_now": t(d.expires_now),
                        "expires_new": t(d.expires_new),
                        "held": d.held,
                    }
                    for d in r.due_at_once
                ],
            },
            "schedule": [asdict(c) for c in self.schedule],
            "naming": asdict(self.naming),
            "other": [asdict(c) for c in self.other],
        }


def config_diff(session: Session, old: Config, new: Config, now: datetime) -> ConfigDiff:
    """What applying ``new`` in place of ``old`` would change, as of ``now``."""
    changes = key_changes(old, new)
    schedule = [c for c in changes if _under(c.key, SCHEDULE_KEYS)]
    # The retention keys are listed too: the rule that changed beside what it does.
    other = [c for c in changes if not _under(c.key, (*SCHEDULE_KEYS, "naming"))]
    return ConfigDiff(
        retention=retention_moves(session, old.retention, new.retention, now),
        schedule=schedule,
        naming=naming_changes(old, new),
        other=other,
    )
