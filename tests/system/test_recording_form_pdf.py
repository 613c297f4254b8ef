"""The recording form prints on A4, one sheet per 20 recordings, each sheet with the
signature line and the seal box (issue 15; 004 管理办法 §12(二)): rendered to PDF by
Debian's Chromium and counted by poppler's pdfinfo, as a clerk printing it would. The
sheet of 20 is left in test-output/recording-form-20.pdf."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.auth.roles import Role
from dockd.cli import main
from dockd.evidence.form import FormRow, describe, form_html
from dockd.ledger.models import Recording
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as_new
from tests.helpers.browser import chromium, need_browser
from tests.helpers.ledgers import docked_station
from tests.helpers.skips import need
from tests.helpers.station import NOW

META = {"unit": "城关派出所", "case": "K-1", "by": "lina", "approved_by": "wang, zhao"}
# The 20-recording sheet is kept among the run's outputs, for a person to look at.
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


def pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    found = re.search(r"^Pages:\s+(\d+)$", info.stdout, flags=re.M)
    assert found is not None, info.stdout
    assert "A4" in info.stdout, info.stdout
    return int(found.group(1))


def test_the_form_prints_on_one_a4_sheet_per_20_recordings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rec: Recorder
) -> None:
    need_browser()
    need(tools=("pdfinfo",), why="counts the printed pages (apt install poppler-utils)")
    ctx = docked_station(tmp_path, monkeypatch, rec, ledger_url=None, now=NOW)
    try:
        with ctx.ledger.read() as s:
            ids = [str(i) for i in s.scalars(select(Recording.id).order_by(Recording.id))]
        act_as_new(monkeypatch, "clerk", Role.CUSTODIAN)  # who tags footage
        assert main(["tag", *ids, "--case", "K-1", "--place", "人民路口 Renmin Rd"]) == 0
        with ctx.ledger.read() as s:
            lines = [
                describe(s, row, ctx.config)
                for row in s.scalars(select(Recording).order_by(Recording.id))
            ]
    finally:
        ctx.ledger.close()
    assert all(line["place"] == "人民路口 Renmin Rd" for line in lines)

    def form(n: int) -> str:
        rows = [
            FormRow(
                no=k + 1, file_id=k + 1, size_bytes=12_345_678, blake3="a" * 64,
                sha256="b" * 64, bag_path="data/x", **lines[k % len(lines)],
            )
            for k in range(n)
        ]  # fmt: skip
        return form_html(rows, META)

    with chromium() as browser:
        page = browser.new_page()
        counted = {}
        for n in (1, 20, 21, 41):
            page.set_content(form(n))
            pdf = tmp_path / f"form-{n}.pdf"
            page.pdf(path=str(pdf), prefer_css_page_size=True)
            counted[n] = pages(pdf)
        sheet = page.inner_text("section.sheet")
    assert counted == {1: 1, 20: 1, 21: 2, 41: 3}
    OUTPUT.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "form-20.pdf", OUTPUT / "recording-form-20.pdf")
    for text in ("摄录人员签名", "单位盖章", "人民路口 Renmin Rd", "K-1"):
        assert text in sheet
