#!/usr/bin/env python3
"""Check a dockd audit chain in a SQLite ledger, following docs/audit-chain.md alone.

    python3 scripts/verify_audit_chain.py LEDGER.sqlite3

An auditor's second opinion on ``dockd audit verify``: it imports nothing from dockd,
only Python's standard library, and is short enough to read against the spec. It
opens the ledger read-only, walks the events in id order and prints
``OK: N events, last hash H`` (exit 0), or names the first broken event and what is
wrong with it (exit 1). Exit 2: the ledger cannot be read.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

GENESIS = "0" * 64
EVENTS = (
    "SELECT id, at, station, actor, action, subject_type, subject_id, details, prev_hash, hash"
    " FROM audit_events ORDER BY id"
)


def hash_time(stored: str) -> str:
    """The stored UTC time (``YYYY-MM-DD HH:MM:SS.ffffff``) as the hash input writes it:
    ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``. Any other ISO 8601 form is read as the spec
    says: without an offset it is UTC."""
    utc = timezone.utc  # noqa: UP017 (datetime.UTC needs Python 3.11; an auditor's may be older)
    t = datetime.fromisoformat(stored)
    t = t.replace(tzinfo=utc) if t.tzinfo is None else t.astimezone(utc)
    return t.isoformat(timespec="microseconds")


def jstr(value: str) -> str:
    """A JSON string as the spec writes it: UTF-8 kept, only quote, backslash and
    control characters escaped."""
    return json.dumps(value, ensure_ascii=False)


def event_hash(
    at: str, station: str, actor: str, action: str, s_type: str, s_id: str, details: str, prev: str
) -> str:
    """SHA-256 (lowercase hex) of the seven members, in the spec's fixed order."""
    body = (
        f'{{"action":{jstr(action)},"actor":{jstr(actor)},"at":{jstr(hash_time(at))},'
        f'"details":{jstr(details)},"prev":{jstr(prev)},"station":{jstr(station)},'
        f'"subject":[{jstr(s_type)},{jstr(s_id)}]}}'
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def check(db: sqlite3.Connection) -> tuple[int, str, str]:
    """Walk the chain: (events checked, last hash, "") or, at the first broken event,
    (events before it, their last hash, what is wrong)."""
    count, last_id, last_hash = 0, 0, GENESIS
    for row in db.execute(EVENTS):
        ev_id, at, station, actor, action, s_type, s_id, details, prev, stored = row
        name = f"event #{ev_id} ({action} on {s_type} {s_id})"
        if ev_id != last_id + 1:
            gone = ev_id - last_id - 1
            return count, last_hash, f"{name}: ids jump from #{last_id}: {gone} event(s) deleted"
        if prev != last_hash:
            before = f"event #{last_id}" if last_id else "the genesis value"
            why = "an event was deleted, inserted or moved here"
            return count, last_hash, f"{name}: its prev_hash is not the hash of {before}: {why}"
        try:
            recomputed = event_hash(at, station, actor, action, s_type, s_id, details, prev)
        except (TypeError, ValueError) as exc:
            return count, last_hash, f"{name}: cannot be hashed ({exc}): it was edited"
        if recomputed != stored:
            return count, last_hash, f"{name}: its hash does not match its contents: edited"
        count, last_id, last_hash = count + 1, ev_id, stored
    return count, last_hash, ""


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} LEDGER.sqlite3", file=sys.stderr)
        return 2
    path = Path(argv[1]).resolve()
    if not path.is_file():
        print(f"no ledger at {path}", file=sys.stderr)
        return 2
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            count, last_hash, problem = check(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        print(f"cannot read the audit events of {path}: {exc}", file=sys.stderr)
        return 2
    if problem:
        print(f"BROKEN: {problem}")
        print(f"the first {count} event(s) check out, up to hash {last_hash}")
        return 1
    print(f"OK: {count} events, last hash {last_hash}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
