"""The access register (R10, R15): no view or export without who, why and an approver;
restricted footage needs a grant that covered it; every access is listed with its grant.

The grants themselves (requests, approvals, expiry) are tests/integration/test_grants.py;
here the CLI views under a grant made through :mod:`dockd.auth.access`."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dockd.auth import access as grants
from dockd.auth import accounts
from dockd.auth.accounts import Stamp
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.config.access import AccessConfig
from dockd.context import Context
from dockd.errors import UsageError
from dockd.evidence.access import Access, check, view
from dockd.evidence.export import export_bag
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.models import AuditEvent, Recording
from dockd.reports.base import Period
from dockd.reports.catalog import run_report
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register
from tests.helpers.station import write_config


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


@pytest.fixture
def ids(
    ctx: Context, clock: FixedClock, rec: Recorder, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> list[int]:  # fmt: skip
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    return [f.file_id for f in result.files if f.file_id is not None]


def access_events(ctx: Context) -> int:
    with ctx.ledger.session() as s:
        q = select(func.count()).where(AuditEvent.action.in_(("file.view", "file.export")))
        return s.scalar(q) or 0


@pytest.mark.parametrize(
    ("by", "reason", "approved_by", "missing"),
    [
        ("Li", None, "Chief", "--reason"),
        ("Li", "check", None, "--approved-by"),
        ("Li", "  ", "Chief", "--reason"),
        (None, "check", "Chief", "--by"),
    ],
)
def test_access_without_who_why_or_approver_is_refused(
    ctx: Context,
    ids: list[int],
    by: str | None,
    reason: str | None,
    approved_by: str | None,
    missing: str,
) -> None:
    with ctx.ledger.session() as s, pytest.raises(UsageError, match=missing) as caught:
        view(s, ids[0], Access(by, reason, approved_by), at=ctx.clock.now())
    assert "refused" in str(caught.value)
    assert access_events(ctx) == 0


def test_self_approval_is_refused(ctx: Context, ids: list[int]) -> None:
    with pytest.raises(UsageError, match="own access"):
        check(Access("Li Na", "curious", " li na "), [], what="viewing")


def granted_view(ctx: Context, file_id: int, *, requester: str, approver: str, reason: str) -> int:
    """A view grant of ``file_id`` to ``requester`` approved by ``approver`` (both accounts)."""
    policy = AccessConfig()
    with ctx.ledger.session() as s:
        asked = Stamp(datetime.now(UTC), "st-test", requester)
        req = grants.request_access(
            s, asked, policy, kind="view", reason=reason, file_ids=[file_id]
        )
        approving = accounts.actor_of(s, accounts.account_by_login(s, approver))
        stamp = Stamp(datetime.now(UTC), "st-test", approver)
        grants.approve(s, stamp, approving, policy, req.id)
        return req.id


def test_view_registers_the_access_and_prints_the_path(
    ctx: Context, ids: list[int], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    act_as(monkeypatch, add_account(ctx.ledger, "li", "officer"))
    add_account(ctx.ledger, "chief", "leader")
    number = granted_view(ctx, ids[0], requester="li", approver="chief", reason="complaint 12")
    assert main(["view", str(ids[0])]) == 0
    out = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    with ctx.ledger.session() as s:
        row = s.get_one(Recording, ids[0])
        (ev,) = audit.history(s, "file", ids[0])[1:]
    assert Path(out["path"]).is_file()
    assert Path(out["path"]) == ctx.config.store.root / row.store_path
    assert out["blake3"] == row.blake3
    assert int(out["access_event"]) == ev.id
    assert int(out["grant"]) == number
    assert ev.action == "file.view" and ev.actor == "li"
    assert json.loads(ev.details) == {
        "by": "li",
        "reason": "complaint 12",
        "approved_by": "chief",
        "grant": number,
        "restricted": False,
        "case": None,
    }


def test_restricted_files_need_a_grant_that_covers_them(ctx: Context, ids: list[int]) -> None:
    with ctx.ledger.session() as s:
        row = s.get_one(Recording, ids[1])
        row.access_class = "restricted"
    who = ("li", "privacy complaint", "chief")
    with pytest.raises(UsageError, match="restricted"):
        check(Access(*who), [row], what="viewing")
    check(Access(*who, restricted_ok=True), [row], what="viewing")
    check(Access(*who), [], what="viewing")  # a normal file needs no more


def test_access_report_lists_every_access_made(
    ctx: Context,
    ids: list[int],
    config: Config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[str, int, str, str, str]] = []
    for n, fid in enumerate(ids[:3]):
        who = (f"officer{n}", f"reason {n}", f"chief{n}")
        with ctx.ledger.session() as s:
            view(s, fid, Access(*who), at=ctx.clock.now())
        made.append(("view", fid, *who))
    export_bag(
        config=ctx.config,
        ledger=ctx.ledger,
        alerts=ctx.alerts,
        clock=ctx.clock,
        dest=tmp_path / "bag",
        access=Access("prosecutor", "trial", "judge"),
        file_ids=ids[:2],
    )
    made += [("export", fid, "prosecutor", "trial", "judge") for fid in ids[:2]]
    act_as(monkeypatch, add_account(ctx.ledger, "olga", "officer"))
    add_account(ctx.ledger, "director", "legal")
    granted_view(ctx, ids[-1], requester="olga", approver="director", reason="spot check")
    assert main(["view", str(ids[-1])]) == 0
    made.append(("view", ids[-1], "olga", "spot check", "director"))
    capsys.readouterr()

    with ctx.ledger.session() as s:
        report = run_report("access", s, config, Period(), ctx.clock.now())
    listed = [(r["action"], r["file"], r["by"], r["reason"], r["approved_by"]) for r in report.rows]
    assert listed == made

    act_as(monkeypatch, add_account(ctx.ledger, "aude", "auditor"))
    assert main(["report", "access", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(made)
    assert main(["report", "access", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\ufeff")  # the byte order mark Excel needs for UTF-8
    lines = out.removeprefix("\ufeff").strip().splitlines()
    assert lines[0].startswith("event,at,action,file,by,reason,approved_by")
    assert len(lines) == 1 + len(made)

    # The same register straight from SQL, for an auditor without the CLI.
    conn = sqlite3.connect(config.ledger.url.removeprefix("sqlite:///"))
    try:
        sql_rows = conn.execute(
            "SELECT action, file_id, accessed_by, reason, approved_by FROM v_access_register"
            " ORDER BY event_id"
        ).fetchall()
    finally:
        conn.close()
    assert [(a.removeprefix("file."), f, b, r, ap) for a, f, b, r, ap in sql_rows] == made
