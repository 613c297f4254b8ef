"""Several stations on one PostgreSQL ledger, all at once (issue 6).

Four ``dockd ingest`` processes of four stations and two sweep processes run at
the same time against one real PostgreSQL database. Afterwards no row is lost or
doubled, each station's store holds exactly its own recorder, the expired
footage was trashed exactly once, and ``dockd audit verify`` accepts the chain.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config import load_config
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import registry
from dockd.ledger.db import open_ledger
from dockd.ledger.models import AuditEvent, Recording
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.pgserver import PgServer

STATIONS = ("st-a", "st-b", "st-c", "st-d")


def write_config(tmp: Path, station: str, url: str) -> Path:
    conf = tmp / f"{station}.toml"
    conf.write_text(
        f'[station]\nid = "{station}"\nunit = "Unit {station}"\n'
        f'[store]\nroot = "{tmp / station / "store"}"\n'
        f'[ledger]\nurl = "{url}"\n'
        '[ingest]\nverify = "none"\n'
        "[retention]\ntrash_grace_days = 7\n"
    )
    return conf


def dockd(conf: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dockd", "--config", str(conf), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


@pytest.mark.postgres
def test_four_stations_ingesting_and_two_sweeping_on_one_postgresql(
    pg_server: PgServer, tmp_path: Path
) -> None:
    url = pg_server.new_database()
    confs = {st: write_config(tmp_path, st, url) for st in STATIONS}
    now = datetime.now(UTC)
    recorders: dict[str, Recorder] = {}
    for i, st in enumerate(STATIONS):
        recorders[st] = make_recorder(
            tmp_path / f"rec-{st}",
            serial=f"SN{i:010d}",
            device_number=f"DV-{i:04d}",
            badge=f"{100 + i:06d}",
            start=now - timedelta(hours=6),
            clips=4,
        )
    # old footage at station b, long past the 180-day routine retention: the
    # retention sweep trashes it while the others are docking
    old = make_recorder(
        tmp_path / "rec-old",
        serial="SNOLD00001",
        device_number="DV-0099",
        badge="000199",
        start=now - timedelta(days=400),
        clips=3,
        extras=False,
    )
    # The registry, in-process (what `dockd devices add` / `officers add` do, without a
    # process start each: the concurrency under test is the one below).
    setup = open_ledger(url)  # a new ledger: created at the current schema
    try:
        with setup.session() as s:
            for i, st in enumerate(STATIONS):
                registry.add_device(
                    s, number=f"DV-{i:04d}", serial=f"SN{i:010d}", at=now, station=st, actor="admin"
                )
                registry.add_officer(
                    s,
                    badge=f"{100 + i:06d}",
                    name=f"Officer {i}",
                    at=now,
                    station=st,
                    actor="admin",
                )
            registry.add_device(
                s, number="DV-0099", serial="SNOLD00001", at=now, station="st-b", actor="admin"
            )
    finally:
        setup.close()
    # It was docked 200 days ago (no file leaves within the floor of its ingest), so it
    # is taken in-process with that day's clock; the processes below run on today's.
    cfg_b = load_config(confs["st-b"])
    docked = open_ledger(url)
    try:
        then = FixedClock(now - timedelta(days=200))
        alerts = AlertSink(docked, cfg_b.station.id, then, cfg_b.alerts)
        assert run_ingest(Context(cfg_b, docked, then, alerts), old.root).ok
    finally:
        docked.close()

    procs = [dockd(confs[st], "ingest", str(recorders[st].root)) for st in STATIONS]
    procs.append(dockd(confs["st-b"], "sweep", "retention"))
    procs.append(dockd(confs["st-a"], "sweep", "fixity"))
    results = [finish(p) for p in procs]

    for (code, out, err), what in zip(results[:4], STATIONS, strict=True):
        assert code == 0, f"ingest at {what}: {out}\n{err}"
    assert results[4][0] == 0, results[4]
    assert results[5][0] == 0, results[5]

    led = open_ledger(url)
    try:
        with led.read() as s:
            for st in STATIONS:
                rows = list(
                    s.scalars(
                        select(Recording).where(
                            Recording.station == st, Recording.state == "stored"
                        )
                    )
                )
                rec = recorders[st]
                assert sorted(r.source_path for r in rows) == sorted(
                    r.relpath for r in rec.recordings
                ), st
                store = tmp_path / st / "store"
                on_disk = sorted(
                    p.relative_to(store).as_posix()
                    for p in store.rglob("*")
                    if p.is_file() and ".incoming" not in p.parts
                )
                assert on_disk == sorted(r.store_path for r in rows), st
            # nothing doubled anywhere
            dupes = s.execute(
                select(Recording.device_ref, Recording.source_path, Recording.blake3, func.count())
                .group_by(Recording.device_ref, Recording.source_path, Recording.blake3)
                .having(func.count() > 1)
            ).all()
            assert dupes == []
            total = s.scalar(select(func.count()).select_from(Recording))
            assert total == sum(len(r.recordings) for r in recorders.values()) + len(old.recordings)
            trashed = list(s.scalars(select(Recording).where(Recording.device_ref == "DV-0099")))
            assert {r.state for r in trashed} == {"trashed"}
            trash_events = s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "file.trash")
            )
            assert trash_events == len(old.recordings)
    finally:
        led.close()

    code, out, err = finish(dockd(confs["st-c"], "audit", "verify"))
    assert code == 0, out + err
    code, out, _ = finish(dockd(confs["st-c"], "ledger", "query", "--format", "json"))
    stations = {f["station"] for f in json.loads(out)}
    assert stations == set(STATIONS)  # queries span stations
    code, out, _ = finish(
        dockd(confs["st-c"], "ledger", "query", "--station", "st-d", "--format", "json")
    )
    assert {f["station"] for f in json.loads(out)} == {"st-d"}
