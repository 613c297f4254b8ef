"""Run every ``dockd ...`` command that README.md and docs/*.md show, on a demo station.

    .venv/bin/python scripts/docs_check.py [--keep] [-v] [FILE.md ...]

The guides cannot drift from the code: each ``dockd`` line of a ```sh block is run
(through ``dockd.cli.main``, the console script's entry point, in this process so a
hundred commands take seconds, not minutes) against a demo station built in a
temporary directory the way ``make demo`` builds one: a simulated recorder made of
real recordings (``fixtures/make_recorder.py``), registered, assigned and ingested.
Each file runs on its own copy of that station, in its order, so a guide's later
examples see what its earlier ones did (a tag, a hold) and no guide sees another's.

- ``-c <demo config>`` is put after ``dockd`` (or replaces the ``-c``/``--config`` given).
- Who runs it: a leading ``sudo`` is dropped, and the command runs as ``sudo dockd`` by
  the demo's clerk would (:data:`DEMO_PERSON`, an account holding every role, so each
  guide command runs as a person who may run it; the permission table itself is tested
  in tests/). The station's setup runs as root without sudo (the ``system`` account).
- Example values are replaced by the demo's through :data:`SUBSTITUTIONS` (a path
  such as ``/media/recorder``, the recording day ``2026-03-15``, file ids ``101``,
  ...). The demo's recordings are made, and docked, 200 days before today, so they are
  past routine retention (180 days, and the floor from ingest) whatever the date.
- Commands that cannot run here are listed in :data:`SKIP`, with the reason.
- Anything after ``#`` is a comment; ``a && b``, ``a | b`` and ``a; b`` are split and
  each ``dockd`` part runs; a redirection (``> FILE``) is dropped.

Every command must exit 0. A command that exits otherwise is reported with its
file, line, the command as run, and its output; the check then exits 1. Relative
links must point at files of the repository. When README.md is checked (the default)
it must also be at most 8 KiB, show the two setup commands first, link every guide and
name every module of ``src/dockd`` in its layout.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import grp
import io
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import unittest.mock
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for fixtures.make_recorder

from dockd.auth.roles import Role  # noqa: E402
from dockd.cli import main as dockd_main  # noqa: E402
from dockd.clock import SystemClock  # noqa: E402
from fixtures.make_recorder import make_recorder  # noqa: E402

README_MAX_BYTES = 8192
README_FIRST = ("make demo", "make test")
STATION_TZ = ZoneInfo("Asia/Shanghai")
DEMO_AGE_DAYS = 200  # past the 180 days of routine retention, so the sweep has work
DEVICE, SERIAL, BADGE = "DV-0001", "ZFY2024000123", "012345"
# The demo's people, as `sudo dockd users add` makes them: (login, uid, roles). The uids
# are ones no account of a machine running this has; dockd knows them by uid alone.
DEMO_ADMIN = ("demo-admin", 64001, (Role.ADMIN,))
DEMO_PERSON = ("demo-clerk", 64002, tuple(Role))

# Commands a guide may show that are not run here: (words after `dockd`) -> why.
SKIP: dict[tuple[str, ...], str] = {
    ("run",): "the daemon needs root, udevd and block devices, and runs until SIGTERM "
    "(tests/system/test_dock_e2e.py runs it for real)",
}

SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}
REDIRECTIONS = {">", ">>", "<", "2>", "2>>"}


@dataclass
class Station:
    """One demo station: config, ledger, store and recorder under ``root``."""

    root: Path
    day: date  # local day of the demo recordings
    exports: int = 0
    person: int | None = None  # the uid the guides' commands run as (sudo's SUDO_UID)

    @property
    def config(self) -> Path:
        return self.root / "dockd.toml"

    def dockd(self, *args: str) -> tuple[int, str, str]:
        return run_dockd(["-c", str(self.config), *args], sudo_uid=self.person)

    def json(self, *args: str) -> Any:
        code, out, err = self.dockd(*args, "--format", "json")
        if code != 0:
            raise RuntimeError(f"dockd {' '.join(args)} exited {code}: {err}")
        return json.loads(out)


def run_dockd(argv: list[str], *, sudo_uid: int | None = None) -> tuple[int, str, str]:
    """``dockd ARGV`` in this process as ``sudo dockd`` by ``sudo_uid`` would run (None:
    as root without sudo), whoever runs this; returns exit code, stdout, stderr."""

    def identity(env: Any = None) -> dict[str, Any]:
        sudo = {} if sudo_uid is None else {"SUDO_UID": str(sudo_uid)}
        return {"uid": 0, "sudo_uid": sudo_uid, "env": sudo}

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        unittest.mock.patch("dockd.cli.common.process_identity", identity),
    ):
        try:
            code = dockd_main(argv)
        except Exception as exc:  # a traceback is a failure like any other
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            code = 1
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- substitutions


def _file_id(st: Station, index: int) -> str:
    rows = [r for r in st.json("ledger", "query") if r["kind"] == "video" and not r["flags"]]
    if len(rows) <= index:
        raise RuntimeError(f"the demo has {len(rows)} stored video(s) left; this needs {index + 1}")
    return str(rows[index]["id"])


def _trashed_file(st: Station) -> str:
    rows = st.json("trash", "list")
    if not rows:
        raise RuntimeError("the trash is empty: show `dockd sweep retention` before this")
    return str(rows[0]["file_id"])


def _open_alert(st: Station) -> str:
    rows = st.json("alerts", "list")
    if not rows:
        raise RuntimeError("no open alert to acknowledge")
    return str(rows[0]["id"])


def _newest_hold(st: Station) -> str:
    rows = st.json("hold", "list")
    if not rows:
        raise RuntimeError("no active hold: show `dockd hold add` before this")
    return str(max(r["id"] for r in rows))


def _head_hash(st: Station) -> str:
    head = st.json("audit", "head")
    row = head[0] if isinstance(head, list) else head
    return str(row["hash"])


def _new_export_dir(st: Station) -> str:
    st.exports += 1
    return str(st.root / "exports" / f"bag-{st.exports}")


def _month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


@dataclass(frozen=True)
class Sub:
    """Replace ``token`` (a whole argument) in commands starting with ``prefix``."""

    token: str
    value: Callable[[Station], str]
    prefix: tuple[str, ...] = ()
    why: str = ""


# Example values the guides use, and the demo value each stands for. Most specific
# first: the first entry whose prefix matches a command wins for its token.
SUBSTITUTIONS: tuple[Sub, ...] = (
    Sub("/media/recorder", lambda st: str(st.root / "recorder"), why="the recorder's mount"),
    Sub("cases.csv", lambda st: str(st.root / "cases.csv"), why="an export of the case system"),
    Sub("/media/usb/A2026-001", _new_export_dir, why="a new directory for the bag"),
    Sub("1234", _trashed_file, ("trash", "restore"), "a file in the trash"),
    Sub("101", lambda st: _file_id(st, 0), why="a stored recording"),
    Sub("102", lambda st: _file_id(st, 1), why="another stored recording"),
    Sub("1234", lambda st: _file_id(st, 2), why="a stored recording"),
    Sub("41", _open_alert, ("alerts", "ack"), "an open alert"),
    Sub("7", _newest_hold, ("hold", "release"), "a hold just placed"),
    Sub("HEAD_HASH", _head_hash, why="the head written in the paper register"),
)
# Dates inside arguments (also as 2026-03-15T06:00): the demo recordings' day and month.
DATES: tuple[tuple[str, Callable[[Station], date]], ...] = (
    ("2026-03-15", lambda st: st.day),
    ("2026-03-16", lambda st: st.day + timedelta(days=1)),
    ("2026-03-01", lambda st: st.day.replace(day=1)),
    ("2026-03-31", lambda st: _month_end(st.day)),
)


# A quarter (dockd handover --quarter): the demo recordings' quarter, over by now.
QUARTER = "2026Q1"


def _quarter(st: Station) -> str:
    return f"{st.day.year}Q{(st.day.month - 1) // 3 + 1}"


def substitute(words: list[str], st: Station) -> list[str]:
    """The command with the guide's example values replaced by the demo's."""
    out = []
    for word in words:
        for sub in SUBSTITUTIONS:
            if word == sub.token and words[: len(sub.prefix)] == list(sub.prefix):
                word = sub.value(st)
                break
        for example, value in DATES:
            if example in word:
                word = word.replace(example, value(st).isoformat())
        if word == QUARTER:
            word = _quarter(st)
        out.append(word)
    return out


# ---------------------------------------------------------------- the demo station


def build_station(root: Path) -> Station:
    """The README demo's station, with a recorder docked once (and a case CSV)."""
    today = datetime.now(STATION_TZ).date()
    day = today - timedelta(days=DEMO_AGE_DAYS)
    root.mkdir(parents=True)
    group = grp.getgrgid(os.getgid()).gr_name  # the demo has no `dockd` group
    (root / "dockd.toml").write_text(
        f"""[station]
unit = "Demo Station"
id = "demo"
timezone = "Asia/Shanghai"

[store]
root = "store"

[ledger]
url = "sqlite:///ledger.sqlite3"
group = "{group}"
""",
        encoding="utf-8",
    )
    start = datetime(day.year, day.month, day.day, 6, 30, tzinfo=STATION_TZ)
    make_recorder(
        root / "recorder", vendor="a", serial=SERIAL, device_number=DEVICE, badge=BADGE, start=start
    )
    (root / "cases.csv").write_text(
        "case_number,officer_badge,start,end,cause,party\n"
        f"A2026-002,{BADGE},{day} 06:00,{day} 12:00,traffic accident,Wang Wu\n",
        encoding="utf-8",
    )
    st = Station(root, day)
    steps = [
        ("devices", "add", DEVICE, "--serial", SERIAL, "--brand", "Demo", "--model", "BWC-1"),
        ("officers", "add", BADGE, "--name", "Zhang Wei"),
        ("assign", DEVICE, BADGE, "--from", (day - timedelta(days=30)).isoformat()),
        ("ingest", str(root / "recorder")),
    ]
    # docked that evening: retention never counts from before the ingest
    docked = datetime(day.year, day.month, day.day, 20, 0, tzinfo=STATION_TZ)
    for step in steps:
        with unittest.mock.patch.object(SystemClock, "now", lambda _self: docked):
            code, out, err = st.dockd(*step)
        if code != 0:
            raise RuntimeError(f"demo setup: dockd {' '.join(step)} exited {code}\n{out}{err}")
    add_people(st)
    st.person = DEMO_PERSON[1]
    return st


def add_people(st: Station) -> None:
    """The demo's accounts, added by root as the first `sudo dockd users add` would be."""
    for login, uid, roles in (DEMO_ADMIN, DEMO_PERSON):
        words = [w for role in roles for w in ("--role", role.value)]
        name = login.replace("-", " ").title()
        code, out, err = st.dockd("users", "add", login, "--name", name, "--uid", str(uid), *words)
        if code != 0:
            raise RuntimeError(f"demo setup: dockd users add {login} exited {code}\n{out}{err}")


def copy_station(template: Station, root: Path) -> Station:
    shutil.copytree(template.root, root, symlinks=True)
    return Station(root, template.day, person=template.person)


# ---------------------------------------------------------------- reading the guides


@dataclass(frozen=True)
class Command:
    path: Path
    line: int
    words: tuple[str, ...]  # after `dockd`

    def where(self) -> str:
        return f"{shown(self.path)}:{self.line}"


def shown(path: Path) -> str:
    """A path as a person finds it: relative to the repository when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def sh_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, logical line) of every ```sh block; continuations joined."""
    in_sh = False
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_sh = not in_sh and stripped == "```sh"
            pending = []
            continue
        if not in_sh:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        pending.append(line)
        yield start, " ".join(pending)
        pending = []


def commands_in(path: Path) -> Iterator[Command]:
    for number, line in sh_lines(path.read_text(encoding="utf-8")):
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        try:
            tokens = list(lex)
        except ValueError as exc:
            where = f"{shown(path)}:{number}"
            raise SystemExit(f"{where}: the shell cannot read this line: {exc}") from exc
        part: list[str] = []
        for token in [*tokens, ";"]:
            if token in SHELL_OPERATORS:
                words = part[1:] if part[:1] == ["sudo"] else part
                if words[:1] == ["dockd"]:
                    yield Command(path, number, tuple(words[1:]))
                part = []
            else:
                part.append(token)


def with_config(words: Sequence[str], config: Path) -> list[str]:
    """``-c CONFIG`` first; a redirection and its target dropped."""
    out: list[str] = []
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
        elif word in ("-c", "--config") or word in REDIRECTIONS:
            skip_next = True
        elif not word.startswith("--config="):
            out.append(word)
    return ["-c", str(config), *out]


def skip_reason(words: Sequence[str]) -> str | None:
    verbs = tuple(w for w in words if not w.startswith("-"))
    for key, why in SKIP.items():
        if verbs[: len(key)] == key:
            return why
    return None


# ---------------------------------------------------------------- README rules


def readme_problems(readme: Path, guides: Sequence[Path]) -> list[str]:
    """README size, first commands, links to every guide, the module layout."""
    problems: list[str] = []
    data = readme.read_bytes()
    text = data.decode("utf-8")
    if len(data) > README_MAX_BYTES:
        problems.append(f"README.md is {len(data)} bytes; at most {README_MAX_BYTES}")
    title, _, rest = text.partition("\n")
    rest = rest.lstrip("\n")
    if not title.startswith("# ") or not rest.startswith("```sh\n"):
        problems.append("README.md: a ```sh block must come right under the title")
    else:
        block = rest.removeprefix("```sh\n").split("```", 1)[0]
        lines = [ln.split("#", 1)[0].strip() for ln in block.splitlines()]
        if [ln for ln in lines if ln][:2] != list(README_FIRST):
            problems.append(f"README.md: its first ```sh block must start with {README_FIRST}")
    for guide in guides:
        rel = guide.relative_to(REPO).as_posix()
        if f"]({rel})" not in text and f"]({rel}#" not in text:
            problems.append(f"README.md does not link {rel}")
    problems += layout_problems(text)
    return problems


def layout_problems(readme_text: str) -> list[str]:
    """Every package and module of src/dockd must be named in the README's layout."""
    block = re.search(r"```\n(src/dockd/\n.*?)```", readme_text, re.S)
    if block is None:
        return ["README.md: no layout block (a ``` block starting with 'src/dockd/')"]
    layout = block.group(1)
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?:\.py|/)?", layout))
    problems = []
    src = REPO / "src" / "dockd"
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if rel.name == "__init__.py" or "versions" in rel.parts or rel.parts[0] == "__main__.py":
            continue
        if len(rel.parts) == 1:
            wanted = rel.name  # config.py
        elif rel.parts[:2] == ("ledger", "migrations"):
            wanted = "migrations/"
        else:
            wanted = rel.stem  # a module of a package: its name in the package's line
        if wanted not in words and f"{rel.stem}/" not in words:
            problems.append(f"README.md layout does not name src/dockd/{rel.as_posix()}")
    for pkg in sorted(p for p in src.iterdir() if (p / "__init__.py").exists()):
        if f"{pkg.name}/" not in words:
            problems.append(f"README.md layout does not name the package src/dockd/{pkg.name}/")
    return problems


def slugs(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{1,6} (.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def link_problems(path: Path) -> list[str]:
    """Relative links must point at files of this repository that exist (and at
    headings that exist, for a link with ``#anchor`` to a Markdown file)."""
    problems = []
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            where = f"{shown(path)}:{number}"
            if not resolved.is_relative_to(REPO):
                problems.append(f"{where}: link {target} leaves the repository")
            elif not resolved.exists():
                problems.append(f"{where}: link {target} points at nothing")
            elif anchor and resolved.suffix == ".md" and anchor not in slugs(resolved):
                problems.append(f"{where}: link {target}: no such heading in {file or 'here'}")
    return problems


# ---------------------------------------------------------------- the run


@dataclass
class Report:
    ran: int = 0
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def run_file(path: Path, st: Station, report: Report, *, verbose: bool = False) -> None:
    for cmd in commands_in(path):
        why = skip_reason(cmd.words)
        if why is not None:
            report.skipped.append(f"{cmd.where()}: dockd {' '.join(cmd.words)}: {why}")
            continue
        try:
            argv = with_config(substitute(list(cmd.words), st), st.config)
        except RuntimeError as exc:
            report.failures.append(f"{cmd.where()}: dockd {' '.join(cmd.words)}\n  {exc}")
            continue
        code, out, err = run_dockd(argv, sudo_uid=st.person)
        report.ran += 1
        if verbose:
            print(f"{cmd.where()}: exit {code}: dockd {shlex.join(argv)}")
        if code != 0:
            shown = "dockd " + shlex.join(argv)
            output = "\n".join(f"  | {ln}" for ln in (out + err).rstrip().splitlines()[-40:])
            report.failures.append(
                f"{cmd.where()}: dockd {shlex.join(cmd.words)}\n"
                f"  exited {code} (expected 0) as: {shown}\n{output}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("files", nargs="*", type=Path, help="default: README.md and docs/*.md")
    parser.add_argument("--keep", action="store_true", help="keep the demo stations")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each command run")
    args = parser.parse_args(argv)

    readme = REPO / "README.md"
    guides = sorted((REPO / "docs").glob("*.md"))
    files = [p.resolve() for p in args.files] or [readme, *guides]
    report = Report()
    if readme in files:
        report.failures += readme_problems(readme, guides)
    for path in files:
        report.failures += link_problems(path)

    work = Path(tempfile.mkdtemp(prefix="dockd-docs-"))
    os.environ["DOCKD_RUNTIME_DIR"] = str(work / "run")  # locks: never /run/dockd
    os.environ.pop("DOCKD_CONFIG", None)
    os.environ.setdefault("COLUMNS", "200")
    try:
        template = build_station(work / "template")
        for i, path in enumerate(files):
            station = copy_station(template, work / f"station-{i}")
            run_file(path, station, report, verbose=args.verbose)
    finally:
        if args.keep:
            print(f"demo stations kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    for line in report.skipped:
        print(f"skipped {line}")
    for failure in report.failures:
        print(f"FAIL {failure}")
    print(
        f"docs check: {report.ran} dockd command(s) from {len(files)} file(s) ran, "
        f"{len(report.skipped)} skipped, {len(report.failures)} problem(s)"
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
