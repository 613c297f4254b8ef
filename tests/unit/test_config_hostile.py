"""Hostile and careless config files: each is refused with its key and line, or made harmless.

A config is written by an admin under pressure, sometimes copied from a forum: a
pattern that backtracks for minutes, a store root of ``/``, ``true`` where a number
goes, a file saved in GBK. None of these may hang the ingest or reach the disk.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import pytest

from dockd.cli import main
from dockd.config import load_config, parse_config
from dockd.errors import ConfigError
from dockd.ingest.naming import parse_name

SHANGHAI = ZoneInfo("Asia/Shanghai")


def problems(text: str, *, base: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="dockd.toml", base=base)
    return info.value.problems


# ------------------------------------------------------------------ naming: linear time

EVIL = """\
[station]
id = "st-1"

[[naming]]
name = "evil"
pattern = '^(?P<device>(a+)+)$'
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("length", [41, 100_000])
def test_a_catastrophic_pattern_cannot_hang_the_ingest(length: int) -> None:
    # Python's re takes minutes on the 41-character name (2^40 ways to split the a's).
    rules = parse_config(EVIL).naming
    hostile = "a" * (length - 1) + "!"
    assert parse_name(PurePosixPath(f"DCIM/{hostile}.MP4"), rules, SHANGHAI) is None
    fitting = "a" * length
    info = parse_name(PurePosixPath(f"DCIM/{fitting}.MP4"), rules, SHANGHAI)
    assert info is not None and info.rule == "evil" and info.device == fitting


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"^(?P<device>[A-Z]+)_\1$", r"invalid escape sequence: \1"),
        (r"^(?P<device>[A-Z]+)(?=_)", "invalid perl operator: (?="),
        (r"^(?P<device>[A-Z]+)\Z", r"invalid escape sequence: \Z"),
        (r"^(?P<device>a++)$", "bad repetition operator: ++"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_with_key_and_line(pattern: str, why: str) -> None:
    text = f"""\
[station]
id = "st-1"

[[naming]]
name = "ok"
pattern = '^(?P<device>[A-Z]+)$'

[[naming]]
name = "brand-x"
pattern = '{pattern}'
"""
    (problem,) = problems(text)
    assert problem.startswith(
        f"line 10: naming[1].pattern: RE2 cannot compile this pattern ({why})"
    )
    assert "RE2 syntax" in problem and "linear" in problem


def test_a_group_named_twice_is_refused() -> None:
    text = "[[naming]]\nname = 'x'\npattern = '^(?P<device>a)|(?P<device>b)$'\n"
    assert problems(text) == [
        "line 3: naming[0].pattern: named group(s) ['device'] appear more than once; "
        "name each group once"
    ]


def test_default_rules_read_names_as_before() -> None:
    rules = parse_config("").naming
    info = parse_name(
        PurePosixPath("DCIM/ZFY2024000123_004512_20240314093015_0007.MP4"), rules, SHANGHAI
    )
    assert info is not None
    assert (info.rule, info.serial, info.badge, info.seq) == (
        "serial-badge-time-seq",
        "ZFY2024000123",
        "004512",
        "0007",
    )
    assert info.timestamp == datetime(2024, 3, 14, 9, 30, 15, tzinfo=SHANGHAI)
    info = parse_name(PurePosixPath("REC-7_20240314_093015_12.mov"), rules, SHANGHAI)
    assert info is not None and (info.rule, info.device, info.seq) == (
        "device-date-time-seq",
        "REC-7",
        "12",
    )
    assert parse_name(PurePosixPath("notes.mp4"), rules, SHANGHAI) is None


def test_names_in_other_encodings_match_and_keep_their_bytes() -> None:
    rules = parse_config(
        "[[naming]]\nname = 'any-device'\n"
        r"pattern = '^(?P<device>[^_]+)_(?P<timestamp>\d{8}_\d{6})_(?P<seq>\d+)$'"
        "\ntimestamp_format = '%Y%m%d_%H%M%S'\n"
    ).naming
    # GBK bytes of 执法仪 as a Linux FAT mount hands them over: surrogate escapes.
    gbk = os.fsdecode("执法仪".encode("gb18030"))
    info = parse_name(PurePosixPath(f"{gbk}_20240314_093015_3.mp4"), rules, SHANGHAI)
    assert info is not None and info.device == gbk and info.seq == "3"
    assert os.fsencode(info.device) == "执法仪".encode("gb18030")
    assert info.timestamp == datetime(2024, 3, 14, 9, 30, 15, tzinfo=SHANGHAI)
    info = parse_name(PurePosixPath("执法仪_20240314_093015_4.mp4"), rules, SHANGHAI)
    assert info is not None and info.device == "执法仪" and info.seq == "4"


# ------------------------------------------------------------------ numbers are numbers

SLIPS = """\
[ingest]
clock_tolerance_hours = true
copy_buffer_kib = "1024"

[alerts]
notify_timeout_s = false

[retention]
trash_grace_days = "7"

[retention.categories.traffic]
days = true

[fixity]
rate_mb_s = "20"

[dock]
max_parallel = true

[reports]
late_ingest_hours = "24h"

[[archive.targets]]
name = "disk2"
path = "/srv/archive/disk2"
capacity_mb = true
"""


def test_a_bool_or_string_where_a_number_goes_is_refused_in_every_section() -> None:
    assert problems(SLIPS) == [
        "line 2: ingest.clock_tolerance_hours: must be a number, not true",
        'line 3: ingest.copy_buffer_kib: must be a whole number, not "1024"',
        "line 6: alerts.notify_timeout_s: must be a number, not false",
        'line 9: retention.trash_grace_days: must be a whole number, not "7"',
        "line 12: retention.categories.traffic.days: must be a whole number, not true",
        'line 15: fixity.rate_mb_s: must be a number, not "20"',
        "line 18: dock.max_parallel: must be a whole number, not true",
        'line 21: reports.late_ingest_hours: must be a number, not "24h"',
        "line 26: archive.targets[0].capacity_mb: must be a whole number, not true",
    ]


def test_an_integer_where_a_float_goes_is_fine() -> None:
    cfg = parse_config("[ingest]\nclock_tolerance_hours = 6\n[fixity]\nrate_mb_s = 5\n")
    assert cfg.ingest.clock_tolerance_hours == 6.0
    assert cfg.fixity.rate_mb_s == 5.0


# ------------------------------------------------------------------ encoding and syntax


def test_a_file_saved_as_gbk_names_the_line_and_column_of_the_first_bad_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dockd.toml"
    text = '[station]\nid = "st-1"\n# 派出所\nunit = "东城派出所"\n'
    # Line 3 is UTF-8 (a comment someone pasted), line 4 was typed in a GBK editor.
    data = b"".join(
        line.encode("gb18030" if n == 4 else "utf-8")
        for n, line in enumerate(text.splitlines(keepends=True), start=1)
    )
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "line 4: not valid UTF-8 (byte 0xB6 at column 9); save the file as UTF-8"
    ]
    monkeypatch.setenv("DOCKD_CONFIG", str(path))
    assert main(["config", "check"]) == 78
    err = capsys.readouterr().err
    assert f"{path}:" in err and "line 4: not valid UTF-8" in err
    path.write_text(text, encoding="utf-8")
    assert load_config(path).station.unit == "东城派出所"


def test_a_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dockd.toml"
    path.write_bytes(b'\xef\xbb\xbf[station]\nid = "st-bom"\n')
    assert load_config(path).station.id == "st-bom"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[station]\nid = "st-1"\nunit = "unterminated\n',
            "line 3: not valid TOML: Illegal character '\\n' (column 21)",
        ),
        (
            "[fixity]\ncycle_days = 30\ncycle_days = 40\n",
            "line 3: not valid TOML: Cannot overwrite a value (column 16)",
        ),
        (
            "[ingest]\nvideo_extensions = [\n  'mp4',\n",
            "line 3: not valid TOML: Invalid value (at the end of the file)",
        ),
    ],
)
def test_a_toml_syntax_error_names_its_line(text: str, problem: str) -> None:
    assert problems(text) == [problem]


# ------------------------------------------------------------------ new keys


def test_device_conflict_and_ledger_group() -> None:
    cfg = parse_config("")
    assert cfg.ingest.device_conflict == "quarantine"
    assert cfg.ledger.group == "dockd-audit"
    cfg = parse_config('[ingest]\ndevice_conflict = "refuse"\n[ledger]\ngroup = "audit_ro"\n')
    assert (cfg.ingest.device_conflict, cfg.ledger.group) == ("refuse", "audit_ro")
    found = problems('[ingest]\ndevice_conflict = "guess"\n[ledger]\ngroup = "dockd;rm"\n')
    assert len(found) == 2
    assert found[0].startswith("line 2: ingest.device_conflict: Input should be 'quarantine'")
    assert found[1].startswith("line 4: ledger.group: 'dockd;rm' is not a group name")
    (problem,) = problems("[ledger]\ngroup = 0\n")
    assert problem == "line 2: ledger.group: Input should be a valid string"


# ------------------------------------------------------------------ the store's own place


@pytest.mark.parametrize(
    ("root", "said"),
    [
        ("/", "the filesystem root cannot be the directory of the store"),
        ("", "must not be empty: give the directory of the store"),
        ("  ", "must not be empty: give the directory of the store"),
        ("/var/lib", "the system directory /var/lib cannot be the directory of the store"),
        ("/tmp", "the system directory /tmp cannot be the directory of the store"),
        ("/etc/", "the system directory /etc cannot be the directory of the store"),
        ("/srv/x/../../usr", "the system directory /usr cannot be the directory of the store"),
    ],
)
def test_a_store_root_that_is_no_place_of_its_own_is_refused(root: str, said: str) -> None:
    (problem,) = problems(f'[station]\nid = "st-1"\n\n[store]\nroot = "{root}"\n')
    assert problem.startswith(f"line 5: store.root: {said}")


def test_a_store_root_through_a_symlink_to_a_system_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "store").symlink_to("/etc")
    (problem,) = problems('[store]\nroot = "store"\n', base=tmp_path)
    assert problem.startswith(
        f"line 2: store.root: the system directory /etc ({tmp_path / 'store'} is /etc) cannot be"
    )


def test_a_quarantine_of_slash_is_refused() -> None:
    (problem,) = problems('[store]\nroot = "/srv/dockd/store"\nquarantine = "/"\n')
    assert problem.startswith("line 3: store.quarantine: the filesystem root cannot be")


def test_subdirectories_of_system_directories_are_fine(tmp_path: Path) -> None:
    for root in ("/tmp/xyz", "/var/lib/dockd/store", "/srv/bwc/store", "/mnt/data/store"):
        assert parse_config(f'[store]\nroot = "{root}"\n').store.root == Path(root)
    cfg = parse_config(
        '[store]\nroot = "store"\n[ledger]\nurl = "sqlite:///ledger.sqlite3"\n', base=tmp_path
    )
    assert cfg.store.root == tmp_path / "store"


def test_a_sqlite_ledger_inside_the_store_is_refused(tmp_path: Path) -> None:
    (problem,) = problems(
        '[store]\nroot = "data"\n\n[ledger]\nurl = "sqlite:///data/ledger.sqlite3"\n',
        base=tmp_path,
    )
    assert problem == (
        f"line 5: ledger.url: the SQLite ledger {tmp_path}/data/ledger.sqlite3 is inside "
        f"store.root ({tmp_path}/data); keep it beside the store, e.g. "
        f"{tmp_path}/ledger.sqlite3: it changes with every ingest, so every fixity run would "
        "raise an alert for it"
    )
    (problem,) = problems(
        f'[store]\nroot = "{tmp_path}/store"\nquarantine = "{tmp_path}/q"\n'
        f'[ledger]\nurl = "sqlite:///{tmp_path}/q/l.db"\n'
    )
    assert problem.startswith(f"line 5: ledger.url: the SQLite ledger {tmp_path}/q/l.db is inside")
    # PostgreSQL and in-memory ledgers have no file to worry about.
    parse_config('[store]\nroot = "/srv/s"\n[ledger]\nurl = "postgresql://db/dockd"\n')
    parse_config('[store]\nroot = "/srv/s"\n[ledger]\nurl = "sqlite:///:memory:"\n')


OVERLAPS = """\
[store]
root = "/srv/bwc/store"
quarantine = "/srv/bwc/store/quarantine"

[retention]
trash = "/srv/bwc"

[reports]
by_case_root = "/srv/bwc/store"

[[archive.targets]]
name = "disk2"
path = "/srv/bwc/quarantine/copies"

[schedule]
weekly_report_dir = "/srv/bwc/store/reports"

[web]
exports = "/srv/bwc/store/exports"
"""


def test_store_and_the_places_beside_it_must_not_overlap() -> None:
    found = problems(OVERLAPS)
    assert [p.split(" ", 3)[:3] for p in found] == [
        ["line", "3:", "store.quarantine:"],
        ["line", "6:", "retention.trash:"],
        ["line", "9:", "reports.by_case_root:"],
        ["line", "16:", "schedule.weekly_report_dir:"],
        ["line", "19:", "web.exports:"],
    ]
    assert "/srv/bwc/store/quarantine is inside store.root (/srv/bwc/store)" in found[0]
    assert "/srv/bwc contains store.root (/srv/bwc/store)" in found[1]
    assert "e.g. /srv/bwc/trash" in found[1]
    assert "/srv/bwc/store is the same directory as store.root" in found[2]
    assert "/srv/bwc/store/reports is inside store.root" in found[3]
    assert "/srv/bwc/store/exports is inside store.root" in found[4]
    assert "an export package holds copies of the originals" in found[4]
    # With the quarantine beside the store, the archive target inside it is the problem.
    moved = OVERLAPS.replace('quarantine = "/srv/bwc/store/quarantine"', "")
    found = problems(moved)
    assert any(
        p.startswith(
            "line 13: archive.targets[0].path: /srv/bwc/quarantine/copies is inside "
            "store.quarantine (/srv/bwc/quarantine)"
        )
        for p in found
    )


def test_the_default_places_beside_the_store_are_fine() -> None:
    cfg = parse_config(
        '[store]\nroot = "/srv/bwc/store"\n'
        '[[archive.targets]]\nname = "disk2"\npath = "/srv/bwc/archive"\n'
    )
    assert cfg.store.quarantine_root == Path("/srv/bwc/quarantine")


def test_a_default_place_that_collides_is_reported_at_the_key_that_was_set() -> None:
    # The trash is left at its default, <store>/../trash, and the quarantine was put there.
    (problem,) = problems(
        '[station]\nid = "st-1"\n[store]\nroot = "/srv/bwc/store"\nquarantine = "/srv/bwc/trash"\n'
    )
    assert problem.startswith(
        "line 5: store.quarantine: retention.trash is not set, so it is /srv/bwc/trash, which "
        "is the same directory as store.quarantine (/srv/bwc/trash); set retention.trash or "
        "store.quarantine to a directory of its own: files moved to the trash"
    )


# ------------------------------------------------- found by fuzzing the loader (make fuzz)


@pytest.mark.parametrize(
    "nested", ["a = " + "[" * 600 + "]" * 600, "a = " + "{b=" * 600 + "1" + "}" * 600]
)
def test_a_config_nested_beyond_reason_is_a_config_error_not_a_crash(nested: str) -> None:
    (problem,) = problems(nested)
    assert "nested too deeply" in problem


def test_a_long_run_of_spaces_in_an_array_does_not_stall_config_check() -> None:
    # `key_lines` ran a regex whose parts shared the spaces: cubic in their number
    # (15 s for 1,500). Now linear; pytest-timeout guards the call, no stopwatch here.
    text = "[ingest]\nclock_tolerance_hours = [\n[" + " " * 20_000 + "1],\n]\n"
    (problem,) = problems(text)
    assert problem.startswith("line 2: ingest.clock_tolerance_hours:")


def test_the_web_views_export_place_must_be_absolute() -> None:
    """A relative ``[web] exports`` would be one place for ``dockd config check`` (the
    admin's directory) and another for the web service, and would slip past the
    not-inside-the-store check: refused like every other place, with its key and line."""
    for value in ("store/exports", ""):
        (problem,) = problems(f'[store]\nroot = "/srv/bwc/store"\n[web]\nexports = "{value}"\n')
        assert problem.startswith("line 4: web.exports: ")
        assert problem.endswith("must be an absolute path")
