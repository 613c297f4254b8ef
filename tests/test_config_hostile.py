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

from dockd.config import parse_config
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
