"""The synthetic ledger of ``ledger.py``, loaded in bulk. Not a test.

The rows come in one of two orders (``--order``). ``ingest``, the default, is the
order dockd writes them in: a station adds a file's row when it ingests it, so the
rows of one month sit together in the table, and a report's look-ups of a month's
rows read neighbouring pages. The recording times are spread evenly over the two
years (each row's time drawn within its own slot of the span) and the rows are
written in the order of their ingest time, late ingests (30-90 h) and all.
``random`` is the order of the runs before 2026-11-27 07:00 UTC: each row's
recording time drawn anywhere in the span, rows written as drawn, so a month's rows
are scattered over the whole table (the same seeds, the same draws: a ledger filled
by an earlier version holds the same rows).

Either way the rows are loaded the way a bulk import is, not the way dockd writes
one file at a time: the table's secondary indexes are dropped first and built again
once the rows are in (one sort each instead of ~20 B-tree inserts per row), SQLite
takes the rows through the raw ``executemany`` of one transaction with the journal
in memory and no fsync, and PostgreSQL through ``COPY``. A bulk load that fails
leaves a broken ledger: this is for a throw-away bench database only. The clips'
leads (``dockd.ledger.leads``), which dockd's sessions keep as rows are written, are
set once the rows are in (before the indexes), as the migration that brought them
does.

The values are stored as SQLAlchemy stores them (``UTCDateTime`` on SQLite: naive
UTC text with microseconds; booleans 0/1), so the reports read them back alike.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from common import say
from sqlalchemy import insert

from dockd.config import Config
from dockd.ledger import leads
from dockd.ledger.db import Ledger
from dockd.ledger.models import Device, FileState, Officer
from dockd.policy.retention import FileFacts, retention_of

START = datetime(2024, 11, 1, tzinfo=UTC)
DEVICES, OFFICERS = 100, 200
POLICY = Config().retention
NOW = datetime(2026, 11, 1, tzinfo=UTC)  # the fill's "now"

# Every column the fill sets, in the order of the tuples rows() yields. The columns
# it leaves out are NULL, as SQLAlchemy leaves a column with no default.
COLUMNS = (
    "station",
    "device_id",
    "device_ref",
    "officer_id",
    "badge_hint",
    "badge_mismatch",
    "kind",
    "case_number",
    "access_class",
    "recorded_start",
    "recorded_end",
    "time_source",
    "duration_s",
    "size_bytes",
    "blake3",
    "source_path",
    "store_path",
    "ingested_at",
    "verified",
    "probe_failed",
    "clock_suspect",
    "unregistered",
    "device_conflict",
    "officer_by_hand",
    "expires_at",
    "state",
    "trashed_at",
    "trash_path",
    "purged_at",
)
_TIMES = frozenset(
    ("recorded_start", "recorded_end", "ingested_at", "expires_at", "trashed_at", "purged_at")
)
_BOOLS = frozenset(
    ("badge_mismatch", "verified", "probe_failed", "clock_suspect", "unregistered")
) | {"device_conflict", "officer_by_hand"}
_BATCH = 50_000


Order = Literal["ingest", "random"]
ORDERS: tuple[Order, ...] = ("ingest", "random")


def fill(
    led: Ledger,
    n: int,
    seed: int = 7,
    *,
    devices: int = DEVICES,
    officers: int = OFFICERS,
    order: Order = "ingest",
) -> None:
    """``n`` file rows of ``devices`` recorders worn by ``officers`` officers (two per
    recorder in turn), written in ``order``, and the devices and officers."""
    with led.session() as s:
        s.execute(
            insert(Device),
            [
                {"number": f"DV-{i:04d}", "serial": f"SN{i:08d}", "registered_at": START}
                for i in range(devices)
            ],
        )
        s.execute(
            insert(Officer),
            [
                {"badge": f"{i:06d}", "name": f"Officer {i}", "created_at": START}
                for i in range(officers)
            ],
        )
    source = rows(n, seed, devices, officers, order)
    if led.dialect == "sqlite":
        _load_sqlite(led, source)
    else:
        _load_postgresql(led, source)


_INGESTED = COLUMNS.index("ingested_at")
_RECORDED = COLUMNS.index("recorded_start")


def rows(
    n: int,
    seed: int = 7,
    devices: int = DEVICES,
    officers: int = OFFICERS,
    order: Order = "ingest",
) -> Iterator[tuple[Any, ...]]:
    """The ``n`` file rows, as tuples in the order of :data:`COLUMNS` (aware datetimes),
    in ``order`` (see the module's text)."""
    if order == "random":
        return _drawn(n, seed, devices, officers, spread=False)
    return _by_ingest(_drawn(n, seed, devices, officers, spread=True))


def _by_ingest(drawn: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Rows coming in the order of their recording times, given in the order of their
    ingest times. A row is ingested after it was recorded, so once a row recorded at
    ``t`` has come, every row held back that was ingested by ``t`` can go: the rows
    held are those of the last hours (90 at most), not the table."""
    held: list[tuple[datetime, int, tuple[Any, ...]]] = []
    for seq, row in enumerate(drawn):
        recorded = row[_RECORDED]
        while held and held[0][0] <= recorded:
            yield heapq.heappop(held)[2]
        heapq.heappush(held, (row[_INGESTED], seq, row))
    while held:
        yield heapq.heappop(held)[2]


def _drawn(
    n: int, seed: int, devices: int, officers: int, *, spread: bool
) -> Iterator[tuple[Any, ...]]:
    """The rows as drawn: each recording time anywhere in the span, or with ``spread``
    within the row's own slot of it (so the rows come in recording order)."""
    rng = random.Random(seed)
    now = NOW
    span = (now - START).total_seconds()
    flags = random.Random(seed + 1)  # its own draws: the rows above stay as they were
    for i in range(n):
        dev = rng.randrange(devices)
        at = (i + rng.random()) / n if spread else rng.random()
        rec = START + timedelta(seconds=at * span)
        dur = rng.uniform(30, 1800)
        late = rng.random() < 0.01
        ingest = (
            rec
            + timedelta(seconds=dur)
            + timedelta(hours=rng.uniform(30, 90) if late else rng.uniform(0.5, 12))
        )
        mark = flags.random()
        officer = (dev * 2 + (i % 2)) % officers
        case_number = f"C-{rng.randrange(20000):05d}" if rng.random() < 0.1 else None
        end = rec + timedelta(seconds=dur)
        expires = retention_of(
            FileFacts(
                id=i + 1,
                recorded_start=rec,
                recorded_end=end,
                case_number=case_number,
                ingested_at=ingest,
            ),
            [],
            POLICY,
        ).expires_at
        yield (
            f"st-{dev % 4}",
            dev + 1,
            f"DV-{dev:04d}",
            officer + 1,
            f"{(officer + 1 if mark < 0.003 else officer) % officers:06d}",
            mark < 0.003,
            "audio" if mark > 0.93 else "photo" if mark > 0.9 else "video",
            case_number,
            "normal",
            rec,
            end,
            "container",
            dur,
            int(dur * 1_000_000),
            f"{i:064x}",
            f"DCIM/100MEDIA/{i}.MP4",
            f"x/{i}.MP4",
            ingest,
            True,
            False,
            0.003 <= mark < 0.008,
            False,
            False,
            False,
            expires,
            *_life(expires, now),
        )


def _life(expires: datetime, now: datetime) -> tuple[str, datetime | None, str | None, Any]:
    """State, trashed_at, trash_path and purged_at as the nightly sweep leaves a file
    that expired before ``now``."""
    if expires > now:
        return (FileState.STORED.value, None, None, None)
    purge = expires + timedelta(days=POLICY.trash_grace_days)
    if purge > now:
        return (FileState.TRASHED.value, expires, "t", None)
    return (FileState.PURGED.value, expires, "t", purge)


def _sqlite_text(at: datetime | None) -> str | None:
    """What ``UTCDateTime`` stores on SQLite: naive UTC, always with microseconds."""
    if at is None:
        return None
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(" ", "microseconds")[:26]  # without its "+00:00"


def _sqlite_row_fn() -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    times = [i for i, c in enumerate(COLUMNS) if c in _TIMES]
    bools = [i for i, c in enumerate(COLUMNS) if c in _BOOLS]
    text = _sqlite_text

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(row)
        for i in times:
            out[i] = text(out[i])
        for i in bools:
            out[i] = int(out[i])
        return tuple(out)

    return convert


def _leads_sql(led: Ledger) -> list[str]:
    """The statements that set every clip's lead (``leads.bulk_statements``), as text
    for the raw connection: run once the rows are in and before the indexes are built
    again, so that no index is rewritten for them."""
    return [str(stmt.compile(dialect=led.engine.dialect)) for stmt in leads.bulk_statements()]


def _load_sqlite(led: Ledger, source: Iterator[tuple[Any, ...]]) -> None:
    raw = led.engine.raw_connection()
    try:
        con: Any = raw.driver_connection
        cur = con.cursor()
        indexes = cur.execute(
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = 'files' AND sql IS NOT NULL"
        ).fetchall()
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA cache_size=-524288")  # 512 MiB
        cur.execute("PRAGMA temp_store=MEMORY")
        mode = cur.execute("PRAGMA journal_mode=MEMORY").fetchone()[0]
        say(f"  sqlite fill: journal {mode}, {len(indexes)} indexes dropped")
        cur.execute("BEGIN")
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        marks = ", ".join("?" * len(COLUMNS))
        sql = f"INSERT INTO files ({', '.join(COLUMNS)}) VALUES ({marks})"  # noqa: S608
        convert = _sqlite_row_fn()
        began = time.monotonic()
        batch: list[tuple[Any, ...]] = []
        for row in source:
            batch.append(convert(row))
            if len(batch) == _BATCH:
                cur.executemany(sql, batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)
        loaded = time.monotonic()
        for sql in _leads_sql(led):
            cur.execute(sql)
        led_at = time.monotonic()
        for _, create in indexes:
            cur.execute(create)
        cur.execute("COMMIT")
        say(
            f"  sqlite fill: rows {loaded - began:.1f} s, leads {led_at - loaded:.1f} s,"
            f" indexes {time.monotonic() - led_at:.1f} s"
        )
        cur.execute("PRAGMA journal_mode=WAL")
        cur.close()
    finally:
        raw.detach()  # its pragmas stay with it: the pool never hands it out again
        raw.close()


def _load_postgresql(led: Ledger, source: Iterator[tuple[Any, ...]]) -> None:
    raw = led.engine.raw_connection()
    try:
        con: Any = raw.driver_connection
        with con.cursor() as cur:
            indexes = cur.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i"
                " WHERE i.tablename = 'files' AND i.schemaname = current_schema()"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
            ).fetchall()
            # The rows' devices and officers exist by construction: no per-row
            # foreign key triggers (the bench server's user is a superuser).
            cur.execute("SET session_replication_role = replica")
            cur.execute("SET maintenance_work_mem = '512MB'")
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            began = time.monotonic()
            with cur.copy(f"COPY files ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in source:
                    copy.write_row(row)
            loaded = time.monotonic()
            for sql in _leads_sql(led):
                cur.execute(sql)
            led_at = time.monotonic()
            for _, create in indexes:
                cur.execute(create)
            say(
                f"  postgresql fill: {len(indexes)} indexes dropped, rows"
                f" {loaded - began:.1f} s, leads {led_at - loaded:.1f} s,"
                f" indexes {time.monotonic() - led_at:.1f} s"
            )
            cur.execute("RESET session_replication_role")
            cur.execute("RESET maintenance_work_mem")
        con.commit()
    finally:
        raw.detach()
        raw.close()
