"""Hard stops: a `dockd ingest` killed at any point, two at once, a ledger that fills up.

Every test drives the real `dockd` command in subprocesses. Crash points are made
certain with ``DOCKD_TEST_PAUSE=<point>[:<n>]``: the process says
``dockd-test-pause <point> <relpath>`` on stderr at that point and sleeps until it is
killed, so no test depends on timing. After the crash the next `dockd ingest` must
leave every recording stored exactly once, with its ledger row, nothing half-way,
the killed run's dock session closed ``interrupted``, and an audit trail that
verifies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from sqlalchemy import Connection, create_engine, text

from dockd import store
from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config.loader import load_config
from dockd.context import Context
from dockd.ingest import recovery
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Recording
from dockd.store.markers import read_markers
from fixtures.make_recorder import Recorder, make_recorder, write_jpeg
from tests.helpers.blockdev import Daemon
from tests.helpers.cli_station import Station, make_station
from tests.helpers.ledgers import register
from tests.helpers.pgserver import PgServer
from tests.helpers.skips import need
from tests.helpers.station import NOW

POINTS = ("after-copy", "after-publish", "after-commit")
PAUSE_GUARD_S = 240  # only so a broken build fails instead of hanging; never reached when right


# ---------------------------------------------------------------------------- the station


def registered(station: Station, rec: Recorder) -> Station:
    with station.ledger() as led:
        register(led, FixedClock(NOW), rec)
    return station


def pause_line(proc: subprocess.Popen[bytes], point: str) -> str:
    """Read the process's stderr until it says it paused at ``point``; return the relpath."""
    return pause_lines(proc, point)[point]


def pause_lines(proc: subprocess.Popen[bytes], *points: str) -> dict[str, str]:
    """Read the process's stderr until it paused at every one of ``points`` (each in its
    own thread: the copy, and the verify of the file before); their relpaths."""
    assert proc.stderr is not None
    seen = b""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + PAUSE_GUARD_S
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=5):
                continue
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break  # EOF: the process ended without pausing
            seen += chunk
            found = {}
            whole = seen[: seen.rfind(b"\n") + 1]  # a line still arriving may be cut short
            for line in whole.decode("utf-8", "replace").splitlines():
                # anywhere in the line: the other thread's log record may be half
                # written when this one writes its pause (its newline comes after)
                at = line.find("dockd-test-pause ")
                head, _, rel = line[at:].partition(" ")[2].partition(" ")
                if at >= 0 and head in points:
                    found[head] = rel
            if len(found) == len(points):
                return found
    finally:
        sel.close()
    proc.kill()
    proc.wait()
    raise AssertionError(
        f"dockd ingest never paused at {' and '.join(points)} (exit {proc.returncode}); "
        "stderr:\n" + seen.decode("utf-8", "replace")[-4000:]
    )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def store_files(root: Path) -> set[str]:
    """Every regular file in the store, relative, outside ``.incoming``."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and store.INCOMING not in p.relative_to(root).parts
    }


def incoming_left(root: Path) -> list[str]:
    inc = root / store.INCOMING
    return sorted(p.name for p in inc.iterdir()) if inc.is_dir() else []


def assert_each_recording_once(station: Station, rec: Recorder) -> None:
    """What an auditor checks after the crash and the re-dock."""
    rows = station.rows()
    by_source: dict[str, list[Recording]] = {}
    for row in rows:
        by_source.setdefault(row.source_path, []).append(row)
    assert sorted(by_source) == sorted(r.relpath for r in rec.recordings)
    assert all(len(v) == 1 for v in by_source.values()), {
        k: [r.store_path for r in v] for k, v in by_source.items() if len(v) > 1
    }
    on_disk = store_files(station.store)
    assert on_disk == {r.store_path for r in rows}, "a store file without its ledger row"
    assert not [p for p in on_disk if "~" in Path(p).name], on_disk
    assert incoming_left(station.store) == []
    for r in rec.recordings:
        row = by_source[r.relpath][0]
        data = rec.path(r).read_bytes()
        assert row.blake3 == blake3.blake3(data).hexdigest()
        assert (station.store / row.store_path).read_bytes() == data


def summary_counts(stdout: str) -> str:
    line = next((ln for ln in stdout.splitlines() if "outcome " in ln), "")
    assert line, stdout
    return line.strip()


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    """Three clips, a photo and an audio note: a recorder of several files."""
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=3, extras=False)


# ---------------------------------------------------------------------------- kill -9


@pytest.mark.parametrize("nth", [1, 3])
@pytest.mark.parametrize("point", POINTS)
def test_killed_at_any_point_the_next_ingest_stores_each_recording_once(
    tmp_path: Path, card: Recorder, point: str, nth: int
) -> None:
    station = registered(make_station(tmp_path / "station"), card)
    total = len(card.recordings)

    first = station.start("ingest", str(card.root), DOCKD_TEST_PAUSE=f"{point}:{nth}")
    relpath = pause_line(first, point)
    kill9(first)

    # A pause in the pipeline's thread first waits for every file before it to be
    # committed. One after a commit holds the verify thread: the files verified with
    # the nth (a batch) are committed too, and those copied since wait for it.
    committed = len(station.rows())
    if point == "after-commit":
        assert nth <= committed <= total
    else:
        assert committed == nth - 1

    again = station.run("ingest", str(card.root))
    assert again.returncode == 0, again.stdout + again.stderr
    # what the killed run finished (its ledger row committed) is found; the rest taken
    assert (
        f"outcome complete: {total - committed} stored, {committed} already present"
        in summary_counts(again.stdout)
    )
    assert_each_recording_once(station, card)

    sessions = station.sessions()
    assert [s.outcome for s in sessions] == ["interrupted", "complete"]
    assert sessions[0].ended_at is not None

    verify = station.run("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # and a third dock finds everything, stores nothing
    third = station.run("ingest", str(card.root))
    assert third.returncode == 0
    assert f"0 stored, {total} already present" in summary_counts(third.stdout)
    assert_each_recording_once(station, card)

    # the pause line named the file the killed run was taking
    assert relpath in {r.relpath for r in card.recordings}, relpath


# Each pair stops the two threads of one run where they overlap: the verify (and
# commit) of one file, and the copy of the next. (pause points, files committed: at
# least, at most; file 1 is committed alone, or with file 2 when 2 was published
# before the verify thread had picked up 1)
OVERLAPS = [
    ("in-verify:1+after-copy:2", 0, 0),
    ("in-verify:2+after-publish:3", 0, 1),
    ("after-commit:2+after-publish:3", 2, 2),
]


@pytest.mark.parametrize(("pauses", "fewest", "most"), OVERLAPS, ids=[p for p, _, _ in OVERLAPS])
def test_killed_while_the_file_before_is_verified_no_row_without_a_verified_file(
    tmp_path: Path, card: Recorder, pauses: str, fewest: int, most: int
) -> None:
    station = registered(make_station(tmp_path / "station"), card)
    total = len(card.recordings)
    first = station.start("ingest", str(card.root), DOCKD_TEST_PAUSE=pauses)
    points = [p.partition(":")[0] for p in pauses.split("+")]
    paused = pause_lines(first, *points)
    # the file in its verify has no row yet; the next one is copied meanwhile
    rows = station.rows()
    committed = len(rows)
    assert fewest <= committed <= most and all(r.verified for r in rows)
    behind = paused[points[0]]
    assert behind not in {r.source_path for r in rows} or points[0] == "after-commit"
    kill9(first)

    again = station.run("ingest", str(card.root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        f"outcome complete: {total - committed} stored, {committed} already present"
        in summary_counts(again.stdout)
    )
    assert_each_recording_once(station, card)
    assert [s.outcome for s in station.sessions()] == ["interrupted", "complete"]
    assert station.run("audit", "verify").returncode == 0


def test_killed_twice_in_a_row_still_no_twin(tmp_path: Path, card: Recorder) -> None:
    """A crash between publish and commit, then a crash of the run that cleans up after it."""
    station = registered(make_station(tmp_path / "station"), card)
    first = station.start("ingest", str(card.root), DOCKD_TEST_PAUSE="after-publish:2")
    pause_line(first, "after-publish")
    kill9(first)
    second = station.start("ingest", str(card.root), DOCKD_TEST_PAUSE="after-publish:2")
    pause_line(second, "after-publish")
    kill9(second)

    last = station.run("ingest", str(card.root))
    assert last.returncode == 0, last.stdout + last.stderr
    assert_each_recording_once(station, card)
    assert [s.outcome for s in station.sessions()] == ["interrupted", "interrupted", "complete"]
    assert station.run("audit", "verify").returncode == 0


# A COMMIT that takes its time on the server (a WAL flush, a synchronous standby),
# made to wait for the test: a deferred trigger on the file rows runs at COMMIT, and
# waits at the advisory lock GATE while test_gate_on has a row.
GATE = 4343  # (written out in the trigger below)
_GATED_COMMITS = """
CREATE TABLE test_gate_on (x int);
INSERT INTO test_gate_on VALUES (1);
CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM test_gate_on) THEN PERFORM pg_advisory_xact_lock_shared(4343);
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_gate AFTER INSERT ON files
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_gate();
"""
_ALIVE = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")


def _at_the_gate(admin: Connection, proc: subprocess.Popen[bytes]) -> int:
    """The server process of ``proc``'s commit once it waits at the gate."""
    q = text(
        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'advisory' "
        "AND pid <> pg_backend_pid() AND datname = current_database()"
    )
    deadline = time.monotonic() + PAUSE_GUARD_S
    while time.monotonic() < deadline and proc.poll() is None:
        if pid := admin.scalar(q):
            return int(pid)
        time.sleep(0.01)  # polls for a state, not for a time: the guard is for a broken build
    raise AssertionError(f"no commit of dockd ingest waited at the gate (exit {proc.poll()})")


def test_killed_while_its_commit_runs_on_the_server_recovery_ends_that_first(
    tmp_path: Path, card: Recorder, pg_server: PgServer
) -> None:
    """A crash does not end the dead process's server process on PostgreSQL: one in
    the middle of a COMMIT lands its rows when it is done, whenever that is. The next
    run's recovery ends it before asking the ledger which published files have their
    rows, so that no row lands after the answer, naming a file recovery took back."""
    url = pg_server.new_database()
    station = registered(make_station(tmp_path / "station", ledger_url=url), card)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as admin:
            admin.execute(text(_GATED_COMMITS))
            admin.execute(text("SELECT pg_advisory_lock(:k)"), {"k": GATE})
            first = station.start("ingest", str(card.root))
            orphan = _at_the_gate(admin, first)
            kill9(first)
            admin.execute(text("DELETE FROM test_gate_on"))  # the commits after pass
            cfg = load_config(station.config)
            clock = FixedClock(NOW)
            led = open_ledger(cfg.ledger.url)
            try:  # what the next `dockd ingest` or `dockd run` does first
                sink = AlertSink(led, cfg.station.id, clock, cfg.alerts)
                recovery.recover(Context(cfg, led, clock, sink))
            finally:
                led.close()
            left = admin.scalar(_ALIVE, {"pid": orphan})
            admin.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GATE})
            deadline = time.monotonic() + PAUSE_GUARD_S
            while admin.scalar(_ALIVE, {"pid": orphan}) and time.monotonic() < deadline:
                time.sleep(0.01)  # whatever it was still doing, done
    finally:
        engine.dispose()
    assert left == 0  # ended before recovery asked the ledger
    rows = station.rows()
    assert store_files(station.store) == {r.store_path for r in rows}

    again = station.run("ingest", str(card.root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert_each_recording_once(station, card)
    assert [s.outcome for s in station.sessions()] == ["interrupted", "complete"]
    assert station.run("audit", "verify").returncode == 0


def test_daemon_started_after_the_crash_leaves_the_next_ingest_no_twin(
    tmp_path: Path, card: Recorder
) -> None:
    """Killed between publish and commit; then `dockd run` starts (a reboot) before the
    recorder is docked again: the re-dock must still store each recording once."""
    need(root=True, why="dockd run listens to the kernel's device events")
    station = registered(make_station(tmp_path / "station"), card)
    first = station.start("ingest", str(card.root), DOCKD_TEST_PAUSE="after-publish:2")
    pause_line(first, "after-publish")
    kill9(first)

    daemon = Daemon(
        station.config, tmp_path / "daemon.log", env={"DOCKD_RUNTIME_DIR": str(station.runtime)}
    )
    try:
        daemon.start()
        code, _ = daemon.terminate()
        assert code == 0, daemon.tail()
    finally:
        daemon.close()

    again = station.run("ingest", str(card.root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert_each_recording_once(station, card)
    assert [s.outcome for s in station.sessions()] == ["interrupted", "complete"]


# ---------------------------------------------------------------------------- two at once


def test_second_ingest_of_a_busy_recorder_exits_73_and_stores_nothing(
    tmp_path: Path, card: Recorder
) -> None:
    station = registered(make_station(tmp_path / "station"), card)
    # the first run holds: file 1 committed, file 2 published and not yet verified
    first = station.start(
        "ingest", str(card.root), DOCKD_TEST_PAUSE="after-commit:1+after-publish:2"
    )
    try:
        paused = pause_lines(first, "after-commit", "after-publish")
        held = store_files(station.store), incoming_left(station.store)
        assert len(held[0]) == 2 and len(station.rows()) == 1
        assert {Path(n).suffix for n in held[1]} == {".pub"}  # publish markers only:
        markers = read_markers(station.store / store.INCOMING)  # file 2's, file 1's blanked
        assert [m.path.name for m in markers] == [Path(paused["after-publish"]).name]

        second = station.run("ingest", str(card.root))
        assert second.returncode == 73, second.stdout + second.stderr
        message = second.stderr.strip().splitlines()[-1]
        assert message.startswith("dockd: "), second.stderr
        assert "being ingested by another process" in message
        assert str(first.pid) in message
        # the second run copied nothing and took nothing of the first run's away
        assert (store_files(station.store), incoming_left(station.store)) == held
        assert len(station.rows()) == 1
    finally:
        kill9(first)

    done = station.run("ingest", str(card.root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_each_recording_once(station, card)
    assert len(store_files(station.store)) == len(card.recordings)
    assert station.run("audit", "verify").returncode == 0


class LockWatch:
    """inotify on the recorder's lock file: who else opens it while its holder is paused.

    The holder opened it once, before pausing; an ``IN_OPEN`` after that is another
    process trying to take the lock. That is the evidence that a second ``dockd
    ingest --wait`` is queued, with no timing involved.
    """

    IN_OPEN = 0x20

    def __init__(self, path: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_CLOEXEC)
        if (
            self.fd < 0
            or self._libc.inotify_add_watch(self.fd, os.fsencode(path), self.IN_OPEN) < 0
        ):
            raise OSError(ctypes.get_errno(), f"inotify on {path}")
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.fd, selectors.EVENT_READ)

    def opened(self, by: subprocess.Popen[bytes]) -> None:
        """Return once the file was opened; fail if ``by`` ends first."""
        deadline = time.monotonic() + PAUSE_GUARD_S
        while time.monotonic() < deadline:
            if by.poll() is not None:
                raise AssertionError(
                    f"the queued ingest ended ({by.returncode}) instead of waiting"
                )
            if self._sel.select(timeout=1) and os.read(self.fd, 4096):
                return
        raise AssertionError("nobody tried to take the recorder lock")

    def close(self) -> None:
        self._sel.close()
        os.close(self.fd)


@pytest.mark.parametrize(
    ("point", "committed"),
    [("after-commit", 5), ("after-publish", 1)],
    ids=["first-held-after-its-last-commit", "first-killed-between-publish-and-commit"],
)
def test_second_ingest_with_wait_queues_behind_the_first_and_never_twins(
    tmp_path: Path, card: Recorder, point: str, committed: int
) -> None:
    station = registered(make_station(tmp_path / "station"), card)
    total = len(card.recordings)
    assert committed <= total
    nth = total if point == "after-commit" else committed + 1
    first = station.start("ingest", str(card.root), DOCKD_TEST_PAUSE=f"{point}:{nth}")
    pause_line(first, point)
    [lockfile] = station.runtime.glob("recorder-*.lock")
    watch = LockWatch(lockfile)
    waiting = station.start("ingest", "--wait", str(card.root), stdout=True)
    try:
        watch.opened(by=waiting)  # the second run has reached the lock and queues
        assert len(station.sessions()) == 1  # ... without opening a dock session
    finally:
        watch.close()
        kill9(first)
    out, err = waiting.communicate()
    assert waiting.returncode == 0, err.decode()
    assert (
        f"outcome complete: {total - committed} stored, {committed} already present"
        in summary_counts(out.decode())
    )
    assert_each_recording_once(station, card)
    assert [s.outcome for s in station.sessions()] == ["interrupted", "complete"]
    assert station.run("audit", "verify").returncode == 0


# ---------------------------------------------------------------------------- ledger full


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


def fill(fs: Path, leave: int) -> Path:
    """A filler file that leaves ``leave`` bytes free on ``fs``."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    filler = fs / "filler"
    chunk = b"\0" * (1 << 20)
    todo = free - leave
    with filler.open("wb") as fh:
        while todo > 0:
            todo -= fh.write(chunk[: min(todo, len(chunk))])
    st = os.statvfs(fs)
    assert st.f_bavail * st.f_frsize <= leave
    return filler


def test_ledger_disk_full_exits_75_keeps_no_half_file_and_recovers(tmp_path: Path) -> None:
    need(root=True, tools=("mount", "umount"), why="the ledger sits on a real, small tmpfs")
    rec = make_recorder(tmp_path / "rec", clips=2, extras=False)
    # more small files than one commit holds (pipeline.BEHIND_FILES), so some are
    # left to commit when the disk is filled after the first commit
    for i in range(100):
        write_jpeg(
            rec.root
            / "DCIM"
            / "100MEDIA"
            / f"{rec.serial}_{rec.badge}_20260315{7 + i // 60:02d}{i % 60:02d}00_{i + 2:04d}.JPG",
            width=66 + 16 * (i % 8),  # never the recorder's own 160 x 120 photo
            height=48 + 8 * (i // 8),
        )
    relpaths = sorted(
        p.relative_to(rec.root).as_posix()
        for p in rec.root.rglob("*")
        if p.is_file() and p.suffix.upper() in (".MP4", ".JPG", ".WAV")
    )
    with small_tmpfs(tmp_path / "ledgerfs", "8m") as fs:
        db = fs / "ledger.sqlite3"
        station = registered(make_station(tmp_path / "station", ledger_url=f"sqlite:///{db}"), rec)
        resume = tmp_path / "resume"
        os.mkfifo(resume)
        full = station.start(
            "ingest",
            str(rec.root),
            stdout=True,
            DOCKD_TEST_PAUSE="after-commit:1",
            DOCKD_TEST_RESUME=str(resume),
        )
        pause_line(full, "after-commit")
        first = len(station.rows())  # the batch holding file 1
        # no room for another commit (each writes about 100 KB of WAL)
        filler = fill(fs, leave=16 * 1024)
        with resume.open("wb") as fifo:
            fifo.write(b"go")
        _, rest = full.communicate()
        err = rest.decode("utf-8", "replace")
        assert full.returncode == 75, err
        lines = [ln for ln in err.splitlines() if ln.startswith("dockd: ")]
        assert lines, err
        assert str(db) in lines[-1], lines[-1]
        assert incoming_left(station.store) == []  # no half-file, no temporary

        filler.unlink()
        stored_by_crash = store_files(station.store)
        rows = station.rows()
        assert stored_by_crash == {r.store_path for r in rows}, "a store file without its row"
        assert len(rows) == first and 0 < first < len(relpaths), "filled after the first commit"

        again = station.run("ingest", str(rec.root))
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"{len(relpaths) - len(rows)} stored, {len(rows)} already present" in again.stdout
        rows = station.rows()
        assert sorted(r.source_path for r in rows) == relpaths
        assert store_files(station.store) == {r.store_path for r in rows}
        assert incoming_left(station.store) == []
        assert [s.outcome for s in station.sessions()] == ["interrupted", "complete"]
        assert station.run("audit", "verify").returncode == 0
