"""docs/audit-chain.md is enough to check the chain without dockd.

The independent verifier written from that page alone (scripts/verify_audit_chain.py,
run here with no site-packages, so it cannot import dockd) agrees with ``dockd audit
verify`` on a real ledger, and both catch an edited, deleted, reordered or re-timed
event, naming the same event. The page's worked example is what dockd computes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register
from tests.helpers.station import config_text, write_config

REPO = Path(__file__).resolve().parents[2]
VERIFIER = REPO / "scripts" / "verify_audit_chain.py"
SPEC = REPO / "docs" / "audit-chain.md"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    """One recorder card for the whole module (ingest only reads it)."""
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


@pytest.fixture
def ledger_file(
    ctx: Context,
    clock: FixedClock,
    rec: Recorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """A real ledger with real activity: registration, an ingest, a tag in Chinese, a hold."""
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    assert result.ok
    file_id = str(next(f.file_id for f in result.files if f.file_id is not None))
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    act_as(monkeypatch, add_account(ctx.ledger, "clerk", Role.CUSTODIAN))
    assert main(["tag", file_id, "--case", "A2026-001", "--cause", "盗窃", "--party", "李四"]) == 0
    assert main(["hold", "add", "--file", file_id, "--reason", "evidence"]) == 0
    capsys.readouterr()
    return Path(ctx.config.ledger.url.removeprefix("sqlite:///"))


@dataclass(frozen=True)
class Verdicts:
    """What the independent verifier and ``dockd audit verify`` say of one ledger file."""

    verifier_code: int
    verifier_out: str
    dockd_code: int
    dockd_out: str
    dockd_err: str

    def verifier_broken_id(self) -> int | None:
        m = re.match(r"BROKEN: event #(\d+) ", self.verifier_out)
        return int(m.group(1)) if m else None

    def dockd_first_problem(self) -> str:
        return self.dockd_err.partition("first: ")[2]


def copy_of(ledger: Path, where: Path) -> Path:
    """A consistent copy of the (WAL) ledger, through SQLite's backup API."""
    where.mkdir()
    dest = where / "ledger.sqlite3"
    src, dst = sqlite3.connect(ledger), sqlite3.connect(dest)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return dest


def verdicts(ledger: Path, capsys: pytest.CaptureFixture[str]) -> Verdicts:
    # -I -S: no site-packages and no PYTHONPATH, so dockd is not importable at all.
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(ledger)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stderr == "", proc.stderr
    config = ledger.parent / "dockd.toml"
    config.write_text(
        config_text(ledger.parent, ledger_url=f"sqlite:///{ledger}"), encoding="utf-8"
    )
    capsys.readouterr()
    code = main(["-c", str(config), "audit", "verify"])
    out, err = capsys.readouterr()
    return Verdicts(proc.returncode, proc.stdout, code, out, err)


def test_the_verifier_and_dockd_agree_on_a_real_ledger(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the live ledger itself, as an auditor would run it (read-only)."""
    with sqlite3.connect(f"file:{ledger_file}?mode=ro", uri=True) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM audit_events").fetchone()
        (last,) = db.execute("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1").fetchone()
        actions = {a for (a,) in db.execute("SELECT action FROM audit_events")}
        documented = db.execute(_documented_sql("replace(at")).fetchall()
    assert {"device.add", "file.ingest", "file.tag", "hold.add"} <= actions

    db.close()
    assert _rechain(documented) == rows
    v = verdicts(ledger_file, capsys)
    assert v.verifier_code == 0, v.verifier_out
    assert v.verifier_out == f"OK: {rows} events, last hash {last}\n"
    assert v.dockd_code == 0, v.dockd_err
    assert "audit trail OK" in v.dockd_out
    assert f"chain head: {last}  events: {rows} " in v.dockd_out


def _event_ids(db: sqlite3.Connection) -> list[int]:
    return [i for (i,) in db.execute("SELECT id FROM audit_events ORDER BY id")]


def edit_details(db: sqlite3.Connection) -> int:
    (k,) = db.execute("SELECT id FROM audit_events WHERE action = 'file.tag'").fetchone()
    db.execute(
        "UPDATE audit_events SET details = replace(details, 'A2026-001', 'A2026-999') WHERE id = ?",
        (k,),
    )
    return int(k)


def delete_middle(db: sqlite3.Connection) -> int:
    ids = _event_ids(db)
    gone = ids[len(ids) // 2]
    db.execute("DELETE FROM audit_events WHERE id = ?", (gone,))
    return gone + 1


def swap_two(db: sqlite3.Connection) -> int:
    a, b = _event_ids(db)[3:5]
    db.execute("UPDATE audit_events SET id = -1 WHERE id = ?", (a,))
    db.execute("UPDATE audit_events SET id = ? WHERE id = ?", (a, b))
    db.execute("UPDATE audit_events SET id = ? WHERE id = -1", (b,))
    return a


def retime(db: sqlite3.Connection) -> int:
    k = _event_ids(db)[4]
    db.execute("UPDATE audit_events SET at = '2026-03-15 06:00:00.000000' WHERE id = ?", (k,))
    return k


@pytest.mark.parametrize(
    "tamper",
    [edit_details, delete_middle, swap_two, retime],
    ids=["edited-details", "deleted", "swapped", "retimed"],
)
def test_a_tampered_event_is_named_by_both(
    ledger_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: Callable[[sqlite3.Connection], int],
) -> None:
    copy = copy_of(ledger_file, tmp_path / "copy")
    db = sqlite3.connect(copy, isolation_level=None)
    expected = tamper(db)
    db.close()

    v = verdicts(copy, capsys)
    assert v.verifier_code == 1, v.verifier_out
    assert v.verifier_broken_id() == expected, v.verifier_out
    assert v.dockd_code == 65, v.dockd_out
    assert re.search(rf"#{expected}\b", v.dockd_first_problem()), v.dockd_err


# ------------------------------------------------------------- the worked example


def _blocks(label: str) -> str:
    """The ```text block under ``<!-- LABEL -->`` in the spec."""
    m = re.search(rf"<!-- {label} -->\n```text\n(.*?)\n```", SPEC.read_text(encoding="utf-8"), re.S)
    assert m, f"docs/audit-chain.md has no block marked <!-- {label} -->"
    return m.group(1)


def _row(n: int) -> dict[str, str]:
    """The example row as ``column = value`` lines (the value as stored, to the line's end)."""
    row = {}
    for line in _blocks(f"example {n} row").splitlines():
        column, _, value = line.partition(" = ")
        row[column.strip()] = value
    return row


@pytest.mark.parametrize("n", [1, 2])
def test_the_worked_example_is_what_dockd_computes(n: int) -> None:
    row, text, documented = _row(n), _blocks(f"example {n} input"), _blocks(f"example {n} hash")
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == documented
    at = datetime.fromisoformat(row["at"] + "+00:00")
    assert (
        audit.event_hash(
            prev_hash=row["prev_hash"],
            at=at,
            station=row["station"],
            actor=row["actor"],
            action=row["action"],
            subject_type=row["subject_type"],
            subject_id=row["subject_id"],
            details=row["details"],
        )
        == documented
    )
    if n == 2:
        dump = _blocks("example 2 bytes").splitlines()
        assert bytes.fromhex("".join(ln[6:] for ln in dump)) == text.encode("utf-8")
        assert row["prev_hash"] == _blocks("example 1 hash")
    else:
        assert row["prev_hash"] == audit.GENESIS


def test_the_verifier_accepts_the_worked_example(tmp_path: Path) -> None:
    """The two example rows, alone in a table, are a whole chain of two events."""
    path = tmp_path / "example.sqlite3"
    cols = ("id", "at", "station", "actor", "action", "subject_type", "subject_id", "details")
    with sqlite3.connect(path) as db:
        db.execute(
            f"CREATE TABLE audit_events (id INTEGER PRIMARY KEY, {', '.join(cols[1:])},"
            " prev_hash, hash)"
        )
        for n in (1, 2):
            row = _row(n)
            values = [int(row["id"]), *(row[c] for c in cols[1:]), row["prev_hash"]]
            values.append(_blocks(f"example {n} hash"))
            db.execute("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
    db.close()
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == f"OK: 2 events, last hash {_blocks('example 2 hash')}\n"


# ------------------------------------------------------------- the documented queries


def _documented_sql(marker: str) -> str:
    """The ```sql block of the spec that contains ``marker``."""
    (sql,) = [
        b
        for b in re.findall(r"```sql\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.S)
        if marker in b
    ]
    return str(sql).strip().rstrip(";")


def _verifier() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_audit_chain", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rechain(rows: list[Any]) -> int:
    """Rows of a documented query (id, at_utc, ..., prev_hash, hash): their time is
    already in the hash's form, and hashing them as the spec says rebuilds the chain."""
    verifier, prev = _verifier(), audit.GENESIS
    for ev_id, at_utc, station, actor, action, s_type, s_id, details, prev_hash, hash_ in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", at_utc), ev_id
        assert verifier.hash_time(at_utc) == at_utc
        assert prev_hash == prev, ev_id
        args = (at_utc, station, actor, action, s_type, s_id, details, prev_hash)
        assert verifier.event_hash(*args) == hash_, ev_id
        prev = hash_
    return len(rows)


@pytest.mark.postgres
@pytest.mark.parametrize("config", ["postgresql"], indirect=True)
def test_the_documented_postgresql_query_gives_what_is_hashed(
    ctx: Context, clock: FixedClock, rec: Recorder
) -> None:
    """timestamptz rendered by the spec's to_char, whole seconds and not, and Chinese text."""
    register(ctx.ledger, clock, rec)
    with ctx.ledger.session() as s:
        for at in (
            datetime(2026, 3, 16, 2, 0, 0, 250318, UTC),
            datetime(2026, 3, 16, 3, tzinfo=UTC),
        ):
            audit.record(
                s,
                at=at,
                station="st-test",
                actor="clerk",
                action="file.tag",
                subject_type="file",
                subject_id=1,
                details={"set": {"case_cause": "盗窃", "party": "李四"}, "n": 1.5},
            )
    with ctx.ledger.engine.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql(_documented_sql("to_char("))]
    assert _rechain(rows) == 5
