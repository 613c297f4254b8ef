"""The README and the guides in docs/ say what dockd does now.

The README fits a screen and starts with the two commands CI and the hooks look for;
every guide is linked from it; and ``scripts/docs_check.py`` runs every ``dockd``
command the guides show against a real demo station (a simulated recorder made of
real recordings, ingested), so a renamed option or a removed command fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CHECK = REPO / "scripts" / "docs_check.py"
GUIDES = sorted((REPO / "docs").glob("*.md"))


def test_readme_fits_a_screen() -> None:
    size = len(README.read_bytes())
    assert size <= 8192, f"README.md is {size} bytes: move detail into a guide in docs/"


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    body = [ln for ln in lines[1:] if ln.strip()]
    assert body[0] == "```sh", "the setup commands must come right under the title"
    assert body[1].startswith("make demo")
    assert body[2].startswith("make test")


def test_readme_links_every_guide() -> None:
    text = README.read_text(encoding="utf-8")
    assert GUIDES, "no guides in docs/"
    missing = [g.name for g in GUIDES if f"](docs/{g.name}" not in text]
    assert not missing, f"README.md does not link {missing}"


@pytest.fixture(scope="module")
def docs_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """One run of the check over README.md, every guide and one guide with a broken
    command (a device number the demo has already registered), to see it caught."""
    bad = tmp_path_factory.mktemp("docs") / "broken.md"
    bad.write_text(
        "# A broken guide\n\nText.\n\n```sh\n"
        "dockd devices list                       # fine\n"
        "dockd devices add DV-0001 --serial X     # DV-0001 is the demo's: refused\n"
        "```\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "DOCKD_CONFIG"}
    proc = subprocess.run(
        [sys.executable, str(CHECK), str(README), *map(str, GUIDES), str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=280,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr, bad


def _failures(output: str) -> list[str]:
    """Each FAIL report with its indented detail lines."""
    return re.findall(r"^FAIL .*?(?=^\S|\Z)", output, re.M | re.S)


def test_every_command_in_the_guides_runs(docs_check: tuple[int, str, Path]) -> None:
    _, output, bad = docs_check
    summary = re.search(r"docs check: (\d+) dockd command\(s\) from (\d+) file\(s\) ran", output)
    assert summary is not None, output
    assert int(summary.group(2)) == len(GUIDES) + 2
    assert int(summary.group(1)) >= 50, "the guides show fewer commands than expected"
    others = [f for f in _failures(output) if not f.startswith(f"FAIL {bad}:")]
    assert not others, "\n".join(others)


def test_a_broken_command_is_reported_with_guide_line_and_output(
    docs_check: tuple[int, str, Path],
) -> None:
    code, output, bad = docs_check
    assert code == 1, output
    ours = [f for f in _failures(output) if f.startswith(f"FAIL {bad}:")]
    assert len(ours) == 1, output
    report = ours[0]
    assert report.startswith(f"FAIL {bad}:7: dockd devices add DV-0001 --serial X")
    assert "exited 64 (expected 0)" in report, report
    assert "| dockd: device DV-0001 is already registered" in report, "its output is shown"
