"""A PostgreSQL connection lost while its COMMIT is still running on the server: the
ingest asks the ledger afresh whether the rows landed, and what it hears must be
final, or a file it takes back would be named by a row that lands after (issue 16's
guarantee: a file is in the ledger only when it is in the store)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, make_url, select, text
from sqlalchemy.exc import DBAPIError

from dockd import store
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.errors import LedgerError
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import Ledger, application_name, make_engine
from dockd.ledger.failures import OutcomeUnknown
from dockd.ledger.models import Recording
from fixtures.make_recorder import Recorder
from tests.helpers.ledgers import register

pytestmark = pytest.mark.parametrize("config", ["postgresql"], indirect=True)

GATE = 4242  # the advisory lock every commit of a file row waits for at its end

# A commit that takes its time on the server (a WAL flush, a synchronous standby),
# made to wait for the test: a deferred trigger runs at COMMIT, after it is sent.
_SLOW_COMMIT = f"""
CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared({GATE}); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER test_gate AFTER INSERT ON files
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_gate();
"""


@pytest.fixture
def admin(ctx: Context) -> Iterator[Connection]:
    """A connection of the test's own to the ledger's database, in autocommit."""
    engine = create_engine(ctx.config.ledger.url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


_TERMINATE = text("SELECT pg_terminate_backend(:pid)")


def _store_files(ctx: Context) -> set[str]:
    root = ctx.config.store.root
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and store.INCOMING not in p.parts
    }


def _waiting_at_commit(conn: Connection) -> list[int]:
    q = text(
        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'advisory' "
        "AND datname = current_database() AND pid <> pg_backend_pid()"
    )
    return list(conn.scalars(q))


class _Cut:
    """A dock of ``recorder`` whose first commit of file rows waits at the gate on the
    server while dockd's end of its connection is cut."""

    def __init__(self, ctx: Context, admin: Connection) -> None:
        self.ctx, self.admin = ctx, admin
        self.cut: list[int] = []  # the server process cut off at its COMMIT
        self.left: list[int] = []  # of those, alive when the dock had answered

    def dock(self, recorder: Recorder) -> None:
        ctx, admin = self.ctx, self.admin
        admin.execute(text(_SLOW_COMMIT))
        admin.execute(text("SELECT pg_advisory_lock(:k)"), {"k": GATE})  # commits wait
        clients: dict[int, Any] = {}  # server process -> dockd's psycopg connection to it

        def seen(dbapi_conn: Any, _record: Any) -> None:
            clients[dbapi_conn.info.backend_pid] = dbapi_conn

        done = threading.Event()

        def cut_the_line() -> None:
            """When a commit waits at the gate, cut dockd's end of its connection: the
            server's process goes on waiting, as one whose client vanished does."""
            engine = create_engine(ctx.config.ledger.url, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    while not done.is_set() and not self.cut:
                        for pid in _waiting_at_commit(conn):
                            if pid not in clients:  # not dockd's: end it, never hang
                                conn.execute(_TERMINATE, {"pid": pid})
                                continue
                            fd = os.dup(clients[pid].pgconn.socket)
                            with socket.socket(fileno=fd) as sock:
                                sock.shutdown(socket.SHUT_RDWR)
                            self.cut.append(pid)
                        done.wait(0.01)
            finally:
                engine.dispose()

        event.listen(ctx.ledger.engine, "connect", seen)
        ctx.ledger.engine.dispose()  # every connection of the dock is made anew, and seen
        alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        watcher = threading.Thread(target=cut_the_line)
        watcher.start()
        try:
            with pytest.raises(LedgerError):
                run_ingest(ctx, recorder.root)
            # Still at the gate, that process commits once the gate opens: after dockd
            # has been told whether its rows are there.
            self.left = [pid for pid in self.cut if admin.scalar(alive, {"pid": pid})]
        finally:
            done.set()
            watcher.join()
            event.remove(ctx.ledger.engine, "connect", seen)
            admin.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GATE})
            admin.execute(text("DROP TRIGGER test_gate ON files"))
        assert len(self.cut) == 1  # one commit was cut off while the server still ran it

    def rows_name_the_store(self) -> set[str]:
        """The store paths the ledger names, checked to be the store's files."""
        with self.ctx.ledger.read() as s:
            rows = set(s.scalars(select(Recording.store_path)))
        assert _store_files(self.ctx) == rows  # no row names a file gone, none unnamed
        assert not any("~2" in r for r in rows)
        return rows


def test_a_commit_still_running_when_its_connection_is_lost_is_ended_before_asking(
    ctx: Context, recorder: Recorder, clock: FixedClock, admin: Connection
) -> None:
    register(ctx.ledger, clock, recorder)
    line = _Cut(ctx, admin)
    line.dock(recorder)
    assert line.left == []  # over before the ledger was asked: nothing of it lands later
    line.rows_name_the_store()
    assert not list((ctx.config.store.root / store.INCOMING).glob("*.pub"))

    again = run_ingest(ctx, recorder.root)  # the next dock: every recording, once
    line.rows_name_the_store()
    assert again.count("stored") + again.count("present") == len(recorder.recordings)


def test_a_lost_commit_whose_process_cannot_be_ended_leaves_its_files_to_recovery(
    ctx: Context,
    recorder: Recorder,
    clock: FixedClock,
    admin: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the server's process cannot be ended (an account without the right, a
    process that does not end in time), what the ledger says is not final: the files
    stay published with their markers, and the next dock's recovery asks again."""
    register(ctx.ledger, clock, recorder)

    def cannot(_self: Ledger, _backend: object, lost: DBAPIError) -> None:
        raise OutcomeUnknown("not allowed to end it") from lost

    monkeypatch.setattr(Ledger, "_end_backend", cannot)
    line = _Cut(ctx, admin)
    line.dock(recorder)
    monkeypatch.undo()
    assert line.left == line.cut  # it ran on, and committed once the gate opened
    left = _store_files(ctx)
    assert left and list((ctx.config.store.root / store.INCOMING).glob("*.pub"))
    alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
    deadline = time.monotonic() + 120  # only so a broken build fails instead of hanging
    while admin.scalar(alive, {"pid": line.cut[0]}) and time.monotonic() < deadline:
        threading.Event().wait(0.01)  # the commit's process ends, its rows land
    assert not admin.scalar(alive, {"pid": line.cut[0]})
    with ctx.ledger.read() as s:
        landed = set(s.scalars(select(Recording.store_path)))
    assert landed and landed <= left  # the rows the cut commit wrote name kept files

    again = run_ingest(ctx, recorder.root)  # recovery keeps them: their rows are there
    assert line.rows_name_the_store() >= landed
    assert again.count("stored") + again.count("present") == len(recorder.recordings)
    assert again.count("present") >= len(landed)


def test_a_dead_process_the_ledgers_account_may_not_end_is_counted_not_raised(
    ctx: Context, admin: Connection
) -> None:
    """A dead dockd process's server process that the ledger's account may not end (it
    runs as another role) is counted, not raised: recovery goes on, leaving the store
    for a later run (test_store_recovery)."""
    weak = f"dockd_weak_{uuid.uuid4().hex[:8]}"
    admin.execute(text(f'CREATE ROLE "{weak}" LOGIN'))
    dead = subprocess.Popen(["true"])
    dead.wait()
    url = make_url(ctx.config.ledger.url)
    station = ctx.config.station.id
    name = application_name(dead.pid, 1, station=station)  # (none of this boot began at 1)
    theirs = create_engine(url, connect_args={"application_name": name})
    led = Ledger(make_engine(url.set(username=weak).render_as_string(hide_password=False)))
    try:
        with theirs.connect() as held:  # the dead process's, of the ledger's owner
            [left] = led.end_dead(station)  # the other role may not end it: said, not raised
            assert left.startswith(f"{held.scalar(text('SELECT pg_backend_pid()'))} (")
            # one that may see its start, and may still not end a superuser's process
            admin.execute(text(f'GRANT pg_read_all_stats TO "{weak}"'))
            assert len(led.end_dead(station)) == 1
            assert held.scalar(text("SELECT 1")) == 1  # and it was not ended
        assert ctx.ledger.end_dead(station) == []  # the owner's account ends it: none left
    finally:
        led.close()
        theirs.dispose()
        admin.execute(text(f'DROP ROLE "{weak}"'))
