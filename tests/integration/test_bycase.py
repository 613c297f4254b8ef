"""The per-case view of each day (R4): read-only hard links by case and recording day,
rebuilt when tags change, never moving or changing an original."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.errors import ConfigError
from dockd.evidence import bycase, cases
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Recording
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register
from tests.helpers.station import make_config


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


@pytest.fixture
def ids(ctx: Context, clock: FixedClock, rec: Recorder) -> list[int]:
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    return [f.file_id for f in result.files if f.file_id is not None]


def tag(ctx: Context, file_ids: list[int], case: str) -> None:
    with ctx.ledger.session() as s:
        rows = cases.select_files(s, file_ids=file_ids)
        cases.tag_files(s, rows, cases.Tag(case_number=case), at=ctx.clock.now(), actor="t")


def rebuild(ctx: Context) -> bycase.LinkResult:
    with ctx.ledger.session() as s:
        return bycase.rebuild(s, ctx.config)


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_links_by_case_and_local_recording_day(ctx: Context, ids: list[int]) -> None:
    tag(ctx, ids[:2], "G/1")  # a slash in a case number must not make a folder
    result = rebuild(ctx)
    assert (result.linked, result.errors) == (2, [])
    root = ctx.config.store.root.parent / "by-case"
    assert bycase.by_case_root(ctx.config) == root
    with ctx.ledger.session() as s:
        rows = [s.get_one(Recording, i) for i in ids[:2]]
    # 06:30 in Shanghai is 22:30 UTC the day before: the day folder is the local one.
    assert tree(root) == {f"G_1/2026/03/15/{Path(r.store_path).name}" for r in rows}
    for r in rows:
        link = root / "G_1/2026/03/15" / Path(r.store_path).name
        original = ctx.config.store.root / r.store_path
        assert os.path.samefile(link, original)  # a hard link: same inode, no copy
        assert link.stat().st_mode & 0o777 == 0o440  # read-only like the original
        assert not link.is_symlink()
    again = rebuild(ctx)
    assert (again.linked, again.kept, again.removed) == (0, 2, 0)


def test_retag_moves_the_link_and_leaves_the_original(ctx: Context, ids: list[int]) -> None:
    tag(ctx, ids[:1], "H-1")
    rebuild(ctx)
    with ctx.ledger.session() as s:
        row = s.get_one(Recording, ids[0])
    original = ctx.config.store.root / row.store_path
    before = (original.stat().st_ino, blake3.blake3(original.read_bytes()).hexdigest())
    tag(ctx, ids[:1], "H-2")
    result = rebuild(ctx)
    assert (result.linked, result.removed) == (1, 1)
    root = bycase.by_case_root(ctx.config)
    assert tree(root) == {f"H-2/2026/03/15/{Path(row.store_path).name}"}
    assert not (root / "H-1").exists()  # emptied folders are pruned
    assert (original.stat().st_ino, blake3.blake3(original.read_bytes()).hexdigest()) == before
    assert before[1] == row.blake3

    # A file leaving the store (trashed) leaves the per-case view too.
    with ctx.ledger.session() as s:
        s.get_one(Recording, ids[0]).state = "trashed"
    assert rebuild(ctx).removed == 1
    assert tree(root) == set()
    assert original.exists()


def test_configured_root_and_cli_rebuild(
    tmp_path: Path,
    clock: FixedClock,
    rec: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    extra = f'[reports]\nby_case_root = "{tmp_path / "cases-view"}"\n'
    config = make_config(tmp_path, extra)
    (tmp_path / "dockd.toml").write_text(
        f"""
[station]
id = "st-test"
[store]
root = "{tmp_path / "store"}"
quarantine = "{tmp_path / "quarantine"}"
[ledger]
url = "sqlite:///{tmp_path / "ledger.sqlite3"}"
{extra}""",
        encoding="utf-8",
    )
    ledger = open_ledger(config.ledger.url)
    try:
        ctx = Context(config, ledger, clock, AlertSink(ledger, "st-test", clock, config.alerts))
        register(ledger, clock, rec)
        run_ingest(ctx, rec.root)
        with ledger.session() as s:
            first = s.scalars(select(Recording.id).order_by(Recording.id)).first()
        monkeypatch.setenv("DOCKD_CONFIG", str(tmp_path / "dockd.toml"))
        # `dockd tag` rebuilds the view itself.
        act_as(monkeypatch, add_account(ledger, "sgt", Role.CUSTODIAN))
        assert main(["tag", str(first), "--case", "J-9"]) == 0
        assert len(tree(tmp_path / "cases-view" / "J-9")) == 1
        assert main(["cases", "links"]) == 0
        assert "0 linked, 1 unchanged, 0 removed" in capsys.readouterr().out
    finally:
        ledger.close()
    with pytest.raises(ConfigError, match="absolute"):
        make_config(tmp_path, '[reports]\nby_case_root = "relative/dir"\n')
