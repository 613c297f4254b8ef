"""The Debian package (issue 14): `make deb`, `dpkg -i`, and `dpkg -r` / `--purge` keeping
the evidence.

The package is built once for the module and installed into this machine itself
(/usr/bin, /etc/dockd, /lib/systemd, /opt/dockd): CI's machine is fresh and disposable.
Anywhere else the test refuses to install over a dockd already there, and afterwards
puts the machine back as it found it: package purged, and the ledger, footage, backups
and groups the test made removed (the package itself never removes them).
"""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.make_recorder import make_recorder
from tests.helpers.skips import IN_CI, need

pytestmark = [pytest.mark.root, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
DOCKD = Path("/usr/bin/dockd")
CONFIG = Path("/etc/dockd/dockd.toml")
UNIT = Path("/lib/systemd/system/dockd.service")
STATE = Path("/var/lib/dockd")
LEDGER = STATE / "ledger.sqlite3"
STORE = STATE / "store"
QUARANTINE = STATE / "quarantine"  # where an unregistered recorder's footage is stored
BACKUPS = Path("/var/backups/dockd")
GROUPS = ("dockd", "dockd-audit", "dockd-users")
# What the package installs or creates: none of it may exist before the test.
OURS = (DOCKD, Path("/opt/dockd"), Path("/etc/dockd"), UNIT, STATE, BACKUPS)
# The installed dockd, not this checkout's: nothing of the test's environment.
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


def sh(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], env=ENV, capture_output=True, text=True, check=check, timeout=600
    )


def installed() -> bool:
    r = sh("dpkg-query", "-W", "-f=${db:Status-Status}", "dockd", check=False)
    return r.returncode == 0 and r.stdout.strip() not in ("", "not-installed", "config-files")


def footage() -> list[Path]:
    return sorted(p for d in (STORE, QUARANTINE) for p in d.rglob("*") if p.is_file())


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class Package:
    deb: Path
    version: str


@pytest.fixture(scope="module")
def package() -> Iterator[Package]:
    """`make deb` once, `dpkg -i` the result; afterwards, purge and undo what it made."""
    need(root=True, tools=("dpkg-deb", "dpkg", "make"), why="builds and installs the .deb")
    there = [str(p) for p in OURS if p.exists() or p.is_symlink()]
    if there or installed():
        reason = f"dockd is already on this machine ({', '.join(there) or 'dpkg: dockd'})"
        if IN_CI:
            pytest.fail(f"{reason}: CI's machine must be fresh")
        pytest.skip(f"{reason}: the test installs the package over it")
    groups_before = {g for g in GROUPS if group_exists(g)}
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    arch = sh("dpkg", "--print-architecture").stdout.strip()
    deb = REPO / f"dockd_{version}_{arch}.deb"
    try:
        build = subprocess.run(
            ["make", "--no-print-directory", "deb"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1100,
            check=False,
        )
        assert build.returncode == 0, build.stdout + build.stderr
        assert deb.is_file(), f"make deb left no {deb.name} in the repository root"
        sh("dpkg", "-i", deb)
        yield Package(deb, version)
    finally:
        sh("dpkg", "--purge", "dockd", check=False)
        for path in (STATE, BACKUPS):
            shutil.rmtree(path, ignore_errors=True)
        for g in GROUPS:
            if g not in groups_before and group_exists(g):
                sh("groupdel", g, check=False)
        leftovers = [str(p) for p in OURS if p.exists() or p.is_symlink()]
        assert not leftovers, f"still on the machine after the purge: {leftovers}"


def test_dpkg_i_installs_dockd_units_groups_and_directories(package: Package) -> None:
    r = sh(DOCKD, "--version")
    assert r.stdout.strip() == f"dockd {package.version}"
    assert os.readlink(DOCKD) == "/opt/dockd/bin/dockd"

    unit = UNIT.read_text()
    assert "ExecStart=/usr/bin/dockd --config /etc/dockd/dockd.toml run" in unit
    assert "/usr/local/bin" not in unit
    assert Path("/usr/share/doc/dockd/README.md").is_file()  # the unit's Documentation=
    assert Path("/usr/share/doc/dockd/docs/operations.md").is_file()

    for g in GROUPS:
        assert group_exists(g), f"group {g} not created"
    mode = unit.split("StateDirectoryMode=")[1].split()[0]
    assert stat.S_IMODE(STATE.stat().st_mode) == int(mode, 8)
    assert Path("/run/dockd").is_dir()

    assert CONFIG.read_bytes() == (REPO / "config.example.toml").read_bytes()
    conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "dockd").stdout
    assert str(CONFIG) in conffiles
    # sudo for the dockd-users group, for dockd alone (issue 12: the package installs it)
    sudoers = Path("/etc/sudoers.d/dockd")
    assert str(sudoers) in conffiles and stat.S_IMODE(sudoers.stat().st_mode) == 0o440
    assert "%dockd-users ALL=(root) /usr/bin/dockd" in sudoers.read_text()
    assert sh("dpkg", "--verify", "dockd").stdout == ""  # every file as shipped


def test_units_verify(package: Package) -> None:
    need(tools=("systemd-analyze",), why="checks the installed units")
    units = sorted(Path("/lib/systemd/system").glob("dockd*.service"))
    assert UNIT in units
    # Works without systemd as PID 1; it also checks that ExecStart's program exists.
    r = sh("systemd-analyze", "verify", *units, check=False)
    assert r.returncode == 0, r.stderr


def test_reinstall_backs_up_then_migrates_and_removal_keeps_the_evidence(
    package: Package, tmp_path: Path
) -> None:
    # A station with a ledger and footage in the store, made by the installed dockd.
    recorder = make_recorder(tmp_path / "rec", clips=1, extras=False)
    sh(DOCKD, "--config", CONFIG, "ledger", "migrate")
    r = sh(DOCKD, "--config", CONFIG, "ingest", recorder.root, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    stored = footage()
    assert len(stored) == len(recorder.recordings), r.stdout

    # An upgrade (the same version again runs the same scripts): the ledger is backed
    # up by the dockd being replaced, then migrated by the new one.
    r = sh("dpkg", "-i", package.deb)
    assert "ledger schema already at" in r.stdout, r.stdout + r.stderr
    backups = sorted(BACKUPS.glob("ledger-station-1-*.sqlite3"))
    assert len(backups) == 1, r.stdout
    assert stat.S_IMODE(BACKUPS.stat().st_mode) == 0o750

    sh("dpkg", "-r", "dockd")
    assert not DOCKD.exists() and not DOCKD.is_symlink()
    assert not Path("/opt/dockd").exists()
    assert not UNIT.exists()
    assert LEDGER.is_file()
    assert footage() == stored
    assert CONFIG.is_file()  # a removed package keeps its conffiles

    r = sh("dpkg", "--purge", "dockd")
    assert "are evidence and stay" in r.stdout
    assert not Path("/etc/dockd").exists()
    assert LEDGER.is_file() and backups[0].is_file()
    assert footage() == stored
    for g in GROUPS:
        assert group_exists(g), f"purge removed group {g}, which owns the evidence"
