#!/usr/bin/env python3
"""Write the seed corpora and libFuzzer dictionaries of dockd's fuzz targets.

    fuzz/make_seeds.py [OUT_DIR]        (default: fuzz/corpus)

Makes ``OUT_DIR/<target>/seeds/`` (one small file per seed, named after what it
shows) and ``OUT_DIR/<target>.dict`` for the targets ``id_file``, ``names`` and
``config``. Everything is generated here, so nothing binary is committed; running it
again rewrites the same files.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "config.example.toml"

ID_FILES: dict[str, bytes] = {
    "plain": b"serial=ZFY2024000123\ndevice=DV-0001\n",
    "crlf-colon-spaces": b"SN: ZFY2024000123\r\nDevice No = DV-0002\r\n",
    "bom": b"\xef\xbb\xbfserial_number = ABC123\n",
    "control-only": b"id=DV-0003\nserial=\x00\x01\x02\n",
    "gbk": "设备编号=DV-0004\nserial=序列号123\ndevice_id=执法仪\n".encode("gbk"),
    "utf8-chinese": "device=执法仪-01\nserialno=ZFY\u3000123\n".encode(),
    "ansi-escapes": b"serial = \x1b[31mRED\x1b[0m\ndevice=DV\x07-5\n",
    "c1-and-separators": "device=\x85NEL\u2028LS\u2029PS\nsn=A\x9bB\n".encode(),
    "bidi-override": "serial=ZFY\u202eevil\ndevice=\ufeffDV-6\n".encode(),
    "long-value": b"serial_number: " + b"X" * 300 + b"\n",
    "empty": b"",
    "tab-and-del": b"device=DV\tTAB\ndeviceno=DV-9\x7f\n",
    "utf16": "serial=ABC\r\ndevice=DV-7\r\n".encode("utf-16"),
    "ini-like": b"[info]\nmodel=DSJ-V9\nserial=Z1\n# comment\ndevice_id = DV-10\nid: DV-11\n",
    "invalid-utf8": b"serial=\xff\xfe\xc0\x80Z\ndevice=\xed\xa0\x80DV\n",
    "nul-inside": b"serial=ZFY\x00123\ndevice=\x00\n",
}

ID_DICT: list[str | bytes] = [
    "serial",
    "sn",
    "serial_number",
    "serial number",
    "serialno",
    "device",
    "device_number",
    "device number",
    "deviceno",
    "id",
    "device_id",
    "=",
    ":",
    "\r\n",
    "\x00",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\u3000",
]

SERIAL_NAME = "ZFY2024000123_012345_20260301083000_0001"
DEVICE_NAME = "DV-0001_20260301_083000_0001"

NAMES: dict[str, bytes] = {
    "serial-badge-time-seq": f"{SERIAL_NAME}.mp4".encode(),
    "device-date-time-seq": f"{DEVICE_NAME}.MP4".encode(),
    "in-folders": f"DCIM/100MEDIA/{SERIAL_NAME}.mov".encode(),
    "month-13": b"DV-0001_20261301_083000_0001.mp4",
    "feb-30-hour-25": b"ZFY1_1_20260230250000_1.wav",
    "year-0": b"ZFY1_1_00000101000000_1.mp4",
    "dst-gap-time": b"DV-0001_20260329_023000_0001.mp4",
    "gbk-name": "执法记录仪_20260301_083000_0001.mp4".encode("gbk"),
    "gbk-folder": "录像/DV-0001_20260301_083000_0001.mp4".encode("gbk"),
    "gbk-badge-word": "警号012345_录音.wav".encode("gbk"),
    "gbk-device": "DV-0001_20260301_083000_0001_现场.mp4".encode("gbk"),
    "gb18030-4byte": "\U00020000名.mp4".encode("gb18030"),
    "gbk-private-use": b"\xaa\xa1\xaa\xa2.mp4",
    "utf8-chinese": "执法记录仪_20260301.mp4".encode(),
    "fullwidth-digits": "ZFY2024000123_\uff10\uff11\uff12_20260301083000_0001.mp4".encode(),
    "arabic-indic-timestamp": (
        "DV-1_\u0662\u0660\u0662\u0666\u0660\u0663\u0660\u0661_083000_1.mp4".encode()
    ),
    "dot-dot-ext": b"..mp4",
    "dots": b"...",
    "dot-dot": b"..",
    "dot": b".",
    "hidden": b".hidden.mp4",
    "unsafe-chars": b'a\\b:c*d?"e<f>g|h.mp4',
    "long-ascii": b"x" * 250 + b".mp4",
    "long-chinese": ("长" * 80 + ".mp4").encode(),
    "long-ext": b"y" * 210 + b".abcdefghijk",
    "invalid-utf8": b"\xff\xfe\x80.mp4",
    "nul": b"name\x00nul.mp4",
    "controls": b"ctl\x01\x1f\x7f\t.mp4",
    "ideographic-space-dots": "\u3000.\u3000.mp4".encode(),
    "spaces-dots": b" . . ",
    "combining": "e\u0301\u0301.mp4".encode(),
    "empty": b"",
    "slashes": b"//a//b/",
    "surrogate-utf8": b"\xed\xb2\x80_1_20260301083000_1.mp4",
    "half-gbk": "执".encode("gbk")[:1] + b"_20260301_083000_1.mp4",
}

NAMES_DICT: list[str | bytes] = [
    "_",
    ".mp4",
    ".MP4",
    ".",
    "/",
    "ZFY2024000123",
    "012345",
    "20260301083000",
    "20260301_083000",
    "DV-0001",
    "0001",
    "执法",
    "执法".encode("gbk"),
    "\U00020000".encode("gb18030"),
    b"\xaa\xa1",
    b"\x81\x30\x81\x30",
    b"\xff",
    b"\x80",
    b"\xed\xb2\x80",
    "\u3000",
    "\u0301",
    "\u0662",
    "\uff10",
    "\ue000",
]

EXTRA_CONFIGS: dict[str, str] = {
    "empty": "",
    "minimal": '[station]\ntimezone = "Europe/Berlin"\nid = "dock-2"\n',
    "relative-paths": (
        '[store]\nroot = "store"\nquarantine = "q"\n[ledger]\nurl = "sqlite:///ledger.sqlite3"\n'
    ),
    "naming-timezone": (
        "[[naming]]\n"
        'name = "hik"\n'
        "pattern = '^(?P<device>[A-Z]{2}\\d{4})-(?P<timestamp>\\d{12})$'\n"
        'timestamp_format = "%y%m%d%H%M%S"\n'
        'timezone = "UTC"\n'
    ),
    "naming-bad-pattern": "[[naming]]\nname = \"x\"\npattern = '(?P<device>a'\n",
    "naming-lookahead": "[[naming]]\nname = \"x\"\npattern = '(?=a)(?P<device>a+)'\n",
    "retention-category": (
        "[retention]\nminimum_days = 365\n"
        "[retention.categories.traffic]\ndays = 730\n"
        'description = "two years"\n'
    ),
    "archive-target": (
        '[archive]\ninclude_categories = ["evidence"]\n'
        '[[archive.targets]]\nname = "disk2"\npath = "/srv/archive/disk2"\n'
        'kind = "removable"\nreserve_mb = 512\n'
    ),
    "dock-match": (
        '[[dock.match]]\nname = "images"\ndevname = "/dev/loop*"\n'
        'fs_labels = ["TRAIN*"]\nproperties = { ID_USB_DRIVER = "usb-storage" }\n'
    ),
    "unknown-key-bad-type": '[ingest]\nverfy = "reread"\ncopy_buffer_kib = "big"\n',
    "store-template": (
        '[store]\npath_template = "{year}/{month}/{day}/{station}/{badge}/{stem}.{ext}"\n'
    ),
    "alerts": '[alerts]\nnotify_command = ["/bin/true", "--x"]\nnotify_timeout_s = 5\n',
    "schedule": '[schedule]\nretention = "*/5 * * * 1-5"\nfixity = ""\n',
    # TOML that config.example.toml does not use: nested arrays, inline tables,
    # arrays laid out over lines, multi-line strings holding lines that look like headers
    "nested-arrays": '[ingest]\nid_files = [["a", ["b"]], []]\nx = [[[[[[1]]]]], [[2]]]\n',
    "inline-tables": (
        'dock = { match = [{ name = "usb", bus = "usb", properties = { A = { B = "c" } } }] }\n'
    ),
    "aligned-arrays": (
        "[ingest]\n"
        "video_extensions = [\n"
        '    "mp4",        "mov",\n'
        "]\n"
        "matrix = [\n"
        "  [        1,   2],\n"
        "  [  'a' ,    'b'  ],\n"
        "]\n"
    ),
    "multiline-strings": (
        '[station]\nunit = """\n[ station ]\n  [[naming]]  \\\n  x"""\n'
        "id = '''\n[store]\n'''\n"
    ),
}

CONFIG_TOKENS = [
    "[",
    "]",
    "[[",
    "]]",
    "=",
    ".",
    ",",
    "{",
    "}",
    '"',
    "'",
    '"""',
    "'''",
    "#",
    "\n",
    "\\u",
    "\\U",
    "\\",
    "true",
    "false",
    "inf",
    "-inf",
    "nan",
    "0x",
    "0o",
    "0b",
    "1e400",
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "07:32:00",
    "(?P<device>",
    "(?P<serial>",
    "(?P<badge>",
    "(?P<timestamp>",
    "(?P<seq>",
    "(?<device>",
    "\\d{14}",
    "{1000}",
    "{4294967296}",
    "(",
    ")",
    "*",
    "+",
    "?",
    "|",
    "\\p{Han}",
    "%Y%m%d%H%M%S",
    "UTC",
    "Asia/Shanghai",
    "../",
    "sqlite:///",
    "postgresql+psycopg://",
    "{year}/{month}/{day}/",
    "{name}",
    "{stem}",
]


def dict_line(token: str | bytes) -> str:
    """One libFuzzer dictionary entry: printable ASCII as is, other bytes as \\xNN."""
    raw = token.encode() if isinstance(token, str) else token
    body = "".join(
        chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in raw
    )
    return f'"{body}"'


def config_dict(example: str) -> list[str]:
    """Every key and table name of config.example.toml (commented ones too), plus TOML syntax."""
    words: list[str] = []
    for m in re.finditer(r"^\s*#?\s*([a-z_][a-z0-9_]*)\s*=", example, re.MULTILINE):
        words.append(f"{m.group(1)} = ")
    for m in re.finditer(r"^\s*#?\s*(\[\[?[a-z_.]+\]\]?)", example, re.MULTILINE):
        words.append(m.group(1))
    for m in re.finditer(r'"([^"\n]{1,40})"', example):
        words.append(m.group(1))
    return list(dict.fromkeys(words + CONFIG_TOKENS))


def strip_comments(example: str) -> str:
    """config.example.toml without comment and blank lines: a small seed to mutate."""
    return "".join(
        line + "\n"
        for line in example.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def write_target(out: Path, target: str, seeds: dict[str, bytes], words: list[str | bytes]) -> None:
    seed_dir = out / target / "seeds"
    seed_dir.mkdir(parents=True, exist_ok=True)
    for old in seed_dir.iterdir():
        old.unlink()
    for name, data in seeds.items():
        digest = hashlib.sha1(data).hexdigest()[:8]  # noqa: S324 (a file name, not security)
        (seed_dir / f"{name}-{digest}").write_bytes(data)
    lines = [dict_line(w) for w in words]
    (out / f"{target}.dict").write_text("\n".join(dict.fromkeys(lines)) + "\n", encoding="ascii")
    print(f"{target}: {len(seeds)} seeds in {seed_dir}, {len(lines)} dictionary entries")


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else HERE / "corpus"
    example = EXAMPLE.read_text(encoding="utf-8")
    write_target(out, "id_file", ID_FILES, list(ID_DICT))
    write_target(out, "names", NAMES, list(NAMES_DICT))
    configs = {"example": example.encode(), "example-no-comments": strip_comments(example).encode()}
    configs.update({name: text.encode() for name, text in EXTRA_CONFIGS.items()})
    write_target(out, "config", configs, list(config_dict(example)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
