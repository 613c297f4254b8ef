"""Holds and the sweep commands through the real CLI (``dockd.cli.main``), on real footage.

The CLI asks the system clock, so the recorder here is made with recordings 200 days
before the real now: old enough for the 180-day routine retention whatever the date.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock, SystemClock
from dockd.config import load_config
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.db import open_ledger
from dockd.ledger.models import AuditEvent, Hold, Recording
from fixtures.make_recorder import LOCAL_TZ, Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register


@dataclass
class Station:
    config: Path
    store: Path
    ids: list[int]
    uids: dict[str, int]
    monkeypatch: pytest.MonkeyPatch

    def as_(self, login: str) -> None:
        """The next commands are run by ``login`` (through sudo)."""
        act_as(self.monkeypatch, self.uids[login])


# The station's people: who places, releases and restores.
PEOPLE = {
    "inspector": (Role.LEGAL,),
    "chief": (Role.LEADER,),
    "clerk": (Role.CUSTODIAN,),
    "night-clerk": (Role.ADMIN,),
    "x": (Role.CUSTODIAN,),
}


@pytest.fixture(scope="module")
def old_card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    start = (SystemClock().now() - timedelta(days=200)).astimezone(LOCAL_TZ).replace(microsecond=0)
    return make_recorder(
        tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False, start=start
    )


@pytest.fixture
def station(
    tmp_path: Path, old_card: Recorder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Station]:
    cfg_path = tmp_path / "dockd.toml"
    cfg_path.write_text(
        '[station]\nid = "st-test"\ntimezone = "Asia/Shanghai"\n'
        f'[store]\nroot = "{tmp_path}/store"\n'
        f'[ledger]\nurl = "sqlite:///{tmp_path}/ledger.sqlite3"\n'
        "[logging]\nlevel = 'error'\n"
    )
    cfg = load_config(cfg_path)
    led = open_ledger(cfg.ledger.url)
    clock = FixedClock(SystemClock().now() - timedelta(days=199))  # docked a day late
    alerts = AlertSink(led, cfg.station.id, clock, cfg.alerts)
    register(led, clock, old_card)
    assert run_ingest(Context(cfg, led, clock, alerts), old_card.root).ok
    with led.session() as s:
        ids = list(s.scalars(select(Recording.id).order_by(Recording.id)))
    uids = {login: add_account(led, login, *roles) for login, roles in PEOPLE.items()}
    led.close()
    yield Station(cfg_path, cfg.store.root, ids, uids, monkeypatch)


def dockd(st: Station, *args: str) -> int:
    return main(["--config", str(st.config), *args])


def out_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list)
    return data


def test_hold_add_list_release(station: Station, capsys: pytest.CaptureFixture[str]) -> None:
    first = str(station.ids[0])
    station.as_("inspector")
    assert (
        dockd(
            station,
            "hold",
            "add",
            "--file",
            first,
            "--reason",
            "complaint",
            "--text",
            "citizen complaint 2026-17",
        )
        == 0
    )
    assert f"hold #1 placed on file {first} (complaint) by inspector" in capsys.readouterr().out
    station.as_("chief")
    assert (
        dockd(
            station,
            "hold",
            "add",
            "--device",
            "DV-0001",
            "--from",
            "2020-01-01",
            "--until",
            "2030-12-31",
            "--reason",
            "mass-incident",
        )
        == 0
    )
    capsys.readouterr()
    station.as_("inspector")
    assert dockd(station, "hold", "list", "--format", "json") == 0
    holds = out_json(capsys)
    assert [(h["id"], h["reason"], h["target"], h["files"]) for h in holds] == [
        (1, "complaint", f"file {first}", 1),
        (2, "emergency", "device DV-0001", 4),
    ]
    assert holds[1]["until"] == "2031-01-01T00:00:00+08:00"  # a date as --until: through it

    assert (
        dockd(
            station,
            "hold",
            "list",
            "--file",
            first,
            "--reason",
            "complaint",
            "--by",
            "inspector",
            "--format",
            "json",
        )
        == 0
    )
    assert [h["id"] for h in out_json(capsys)] == [1]

    assert dockd(station, "hold", "release", "1", "--reason", "resolved") == 0
    assert "released by inspector" in capsys.readouterr().out
    assert dockd(station, "hold", "release", "1", "--reason", "again") == 64
    assert "already released by inspector" in capsys.readouterr().err
    assert dockd(station, "hold", "list", "--format", "json") == 0
    assert [h["id"] for h in out_json(capsys)] == [2]
    assert dockd(station, "hold", "list", "--all", "--format", "json") == 0
    assert [(h["id"], h["active"]) for h in out_json(capsys)] == [(1, False), (2, True)]

    led = open_ledger(load_config(station.config).ledger.url)
    with led.session() as s:
        story = audit.history(s, "hold", 1)
        assert [e.action for e in story] == ["hold.add", "hold.release"]
        assert [e.actor for e in story] == ["inspector", "inspector"]
        added, released = (json.loads(e.details) for e in story)
        assert added["text"] == "citizen complaint 2026-17" and added["file_id"] == int(first)
        assert released["release_reason"] == "resolved"
        assert s.get_one(Hold, 1).released_by == "inspector"
    led.close()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--reason", "complaint"], 64, "exactly one of: --file ID, --case NUMBER"),
        (["--file", "1", "--case", "A", "--reason", "complaint"], 64, "got file, case"),
        (["--file", "1", "--reason", "other"], 64, "reason 'other' needs a text"),
        (["--file", "1", "--reason", "boredom"], 64, "not a hold reason; use one of"),
        (["--file", "999", "--reason", "evidence"], 66, "no file with id 999"),
        (["--officer", "012345", "--reason", "evidence"], 64, "give --from"),
        (["--case", "A", "--from", "2026-01-01", "--reason", "evidence"], 64, "no time window"),
        (
            [
                "--device",
                "DV-0001",
                "--from",
                "2026-02-01",
                "--until",
                "2026-01-01",
                "--reason",
                "evidence",
            ],
            64,
            "is not after --from",
        ),
    ],
)
def test_hold_add_refuses_with_a_message(
    station: Station,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    station.as_("x")
    assert dockd(station, "hold", "add", *args) == code
    assert message in capsys.readouterr().err


def test_sweep_trash_and_restore_commands(
    station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dockd(station, "sweep", "retention", "--dry-run", "--format", "json") == 0
    [dry] = out_json(capsys)
    assert dry["status"] == "dry-run" and dry["trashed"] == 4
    assert dockd(station, "trash", "list", "--format", "json") == 0
    assert out_json(capsys) == []

    assert dockd(station, "sweep", "upcoming", "--days", "1", "--format", "json") == 0
    assert {d["action"] for d in out_json(capsys)} == {"trash"}

    station.as_("night-clerk")
    assert dockd(station, "sweep", "retention", "--format", "json") == 0
    [real] = out_json(capsys)
    assert real["trashed"] == 4 and {f["action"] for f in real["files"]} == {"trash"}
    assert dockd(station, "trash", "list", "--format", "json") == 0
    listing = out_json(capsys)
    assert sorted(d["file_id"] for d in listing) == station.ids

    a, b = (str(i) for i in station.ids[:2])
    station.as_("clerk")
    assert dockd(station, "trash", "restore", a, "--reason", "needed") == 64
    assert "still expired under the policy" in capsys.readouterr().err
    assert (
        dockd(
            station,
            "trash",
            "restore",
            a,
            "--reason",
            "needed",
            "--hold",
            "reconsideration",
        )
        == 0
    )
    assert f"restored file {a}" in capsys.readouterr().out
    # A hold placed on a file in the trash brings it back at once.
    station.as_("x")
    assert dockd(station, "hold", "add", "--file", b, "--reason", "litigation") == 0
    assert f"restored from the trash: file {b}" in capsys.readouterr().out

    cfg = load_config(station.config)
    led = open_ledger(cfg.ledger.url)
    with led.session() as s:
        rows = {r.id: r for r in s.scalars(select(Recording))}
        trash_events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "file.trash")))
    led.close()
    assert {rows[int(a)].state, rows[int(b)].state} == {"stored"}
    assert (station.store / rows[int(a)].store_path).is_file()
    assert {e.actor for e in trash_events} == {"night-clerk"}

    station.as_("night-clerk")
    assert dockd(station, "sweep", "fixity", "--all") == 0
    capsys.readouterr()
    today = SystemClock().now().astimezone(LOCAL_TZ).date().isoformat()
    assert dockd(station, "sweep", "report", "--week-ending", today, "--format", "json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["station"] == "st-test"
    assert (summary["trashed"], summary["restored"], summary["purged"]) == (4, 2, 0)
    assert (summary["holds_placed"], summary["holds_active"]) == (2, 2)
    assert summary["ingested_files"] == 0  # docked 199 days ago
    assert dockd(station, "sweep", "runs", "--format", "json") == 0
    kinds = [r["kind"] for r in out_json(capsys)]
    assert kinds == ["fixity", "retention", "retention"]
    assert dockd(station, "sweep", "archive") == 0  # no targets: says so, does nothing
