"""TOML configuration, loaded once into one frozen, validated :class:`Config`.

Unknown keys are errors: a typo in a policy key must never silently fall back to
a default. Every problem is reported with its key path and the line of the file
it stands on, all at once, so an admin fixes the file in one pass.
"""

from __future__ import annotations

import functools
import os
import re
import string
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dockd.config.base import Section
from dockd.config.dock import DockConfig
from dockd.config.policy import ArchiveConfig, FixityConfig, RetentionConfig, ScheduleConfig
from dockd.config.reports import ReportsConfig
from dockd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/dockd/dockd.toml")
CONFIG_ENV = "DOCKD_CONFIG"

# Placeholders a store path template may use; the template must begin with the
# recording's local date so the store is laid out year / month / day (R4).
TEMPLATE_FIELDS = frozenset(
    {
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "device",
        "badge",
        "station",
        "stem",
        "ext",
        "name",
        "kind",
    }
)
NAMING_GROUPS = frozenset({"device", "serial", "badge", "timestamp", "seq"})
KeyPath = tuple[str | int, ...]  # a key's place in the file: ("archive", "targets", 0, "path")


class StationConfig(Section):
    """Who this dock belongs to and which clock the store's days follow."""

    unit: str = "Unnamed unit"
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = "station-1"
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai'"
            ) from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# Directories dockd must never take as its store or quarantine: it would write its
# YYYY/ folders and .incoming/ straight into them. Exactly these; a directory below
# one of them (/tmp/xyz, /var/lib/dockd/store) is fine.
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/lost+found",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/run/media",
        "/sbin",
        "/snap",
        "/srv",
        "/sys",
        "/tmp",  # noqa: S108 (a name refused, not a file used)
        "/usr",
        "/usr/bin",
        "/usr/include",
        "/usr/lib",
        "/usr/lib32",
        "/usr/lib64",
        "/usr/libexec",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/lib",
        "/usr/local/sbin",
        "/usr/local/share",
        "/usr/sbin",
        "/usr/share",
        "/usr/src",
        "/var",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/local",
        "/var/log",
        "/var/mail",
        "/var/opt",
        "/var/run",
        "/var/spool",
        "/var/tmp",  # noqa: S108
    }
)


def _forms(path: Path) -> tuple[Path, Path]:
    """The path normalised as written (``..`` folded) and with symlinks resolved."""
    lexical = Path(os.path.normpath(os.path.abspath(path)))
    return lexical, Path(os.path.realpath(lexical))


def _system_dir(path: Path) -> str | None:
    """The system directory ``path`` is (as written or through a symlink), else None."""
    for form in _forms(path):
        if str(form) in SYSTEM_DIRS:
            return str(form)
    return None


def _own_directory(value: Any, what: str, example: str) -> Any:
    """Refuse an empty path, ``/`` or a system directory for a place dockd fills."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"must not be empty: give the directory {what}, e.g. {example}")
    if isinstance(value, str | Path):
        system = _system_dir(Path(value))
        if system is not None:
            kind = "the filesystem root" if system == "/" else f"the system directory {system}"
            seen = "" if os.path.normpath(str(value)) == system else f" ({value} is {system})"
            raise ValueError(
                f"{kind}{seen} cannot be the directory {what}: dockd writes its YYYY/ "
                f"folders and .incoming/ straight into it; give a directory of its own, "
                f"e.g. {example}"
            )
    return value


class StoreConfig(Section):
    """Where originals live and how their paths are built."""

    root: Path = Path("/var/lib/dockd/store")
    path_template: str = "{year}/{month}/{day}/{device}/{name}"
    quarantine: Path | None = None  # default: <root>/../quarantine

    @field_validator("root", mode="before")
    @classmethod
    def _root_own(cls, value: Any) -> Any:
        return _own_directory(value, "of the store", "/var/lib/dockd/store")

    @field_validator("quarantine", mode="before")
    @classmethod
    def _quarantine_own(cls, value: Any) -> Any:
        return _own_directory(value, "of the quarantine", "/var/lib/dockd/quarantine")

    @field_validator("path_template")
    @classmethod
    def _template_ok(cls, value: str) -> str:
        names = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        unknown = sorted({n for n in names if n not in TEMPLATE_FIELDS})
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {unknown}; allowed: {sorted(TEMPLATE_FIELDS)}"
            )
        if not value.startswith("{year}/{month}/{day}/"):
            raise ValueError("must begin with '{year}/{month}/{day}/' (store by recording day)")
        if "{name}" not in value and "{stem}" not in value:
            raise ValueError("must contain '{name}' or '{stem}' so stored files keep their names")
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be relative to the store root and must not contain '..'")
        return value

    @property
    def quarantine_root(self) -> Path:
        return self.quarantine if self.quarantine is not None else self.root.parent / "quarantine"


class LedgerConfig(Section):
    """The database auditors query: SQLite by default, PostgreSQL for many stations."""

    url: str = "sqlite:////var/lib/dockd/ledger.sqlite3"
    # OS group owning the SQLite ledger file (0640) and its directory (0750), so that
    # auditors in it can read the ledger. Not used for PostgreSQL.
    group: str = "dockd"

    @field_validator("group")
    @classmethod
    def _group_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", value):
            raise ValueError(
                f"{value!r} is not a group name: use letters, digits, '_', '.' or '-', at "
                "most 32 characters, starting with a letter or '_' (e.g. \"dockd\")"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url_ok(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("must be an SQLAlchemy URL starting with sqlite:// or postgresql://")
        if value.split("://", 1)[1].split("/", 1)[0].count("@") > 1:
            raise ValueError(
                "has more than one '@' before the host: write an '@' in the password as %40"
            )
        try:
            make_url(value).port  # noqa: B018  (parsing the port is the check)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"is not a database URL SQLAlchemy can read ({exc})") from None
        return value


def _lower_exts(values: Sequence[str]) -> tuple[str, ...]:
    out = []
    for v in values:
        v = v.strip().lower().lstrip(".")
        if not v or "/" in v:
            raise ValueError(f"bad extension {v!r}")
        out.append(v)
    return tuple(out)


class IngestConfig(Section):
    """What counts as a recording and how carefully it is copied."""

    video_extensions: tuple[str, ...] = ("mp4", "mov", "avi", "mkv", "ts", "3gp")
    audio_extensions: tuple[str, ...] = ("wav", "mp3", "aac", "m4a", "amr")
    photo_extensions: tuple[str, ...] = ("jpg", "jpeg", "png")
    verify: Literal["none", "reread"] = "reread"
    unknown_device: Literal["quarantine", "refuse"] = "quarantine"
    # A recorder whose evidence (ID file, filesystem UUID/label, USB serial, file names)
    # points at two different registered devices.
    device_conflict: Literal["quarantine", "refuse"] = "quarantine"
    id_files: tuple[str, ...] = ("DEVICE.ID", "SYSTEM/devinfo.txt", "devinfo.txt")
    copy_buffer_kib: Annotated[int, Field(ge=16, le=65536)] = 1024
    clock_tolerance_hours: Annotated[float, Field(ge=0)] = 24.0

    _norm = field_validator(
        "video_extensions", "audio_extensions", "photo_extensions", mode="after"
    )(classmethod(lambda cls, v: _lower_exts(v)))

    @field_validator("id_files")
    @classmethod
    def _relative(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for v in value:
            if v.startswith("/") or ".." in Path(v).parts:
                raise ValueError(f"{v!r} must be a path inside the recorder, without '..'")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> IngestConfig:
        seen: dict[str, str] = {}
        for kind in ("video", "audio", "photo"):
            for ext in getattr(self, f"{kind}_extensions"):
                if ext in seen:
                    raise ValueError(f"extension {ext!r} is listed as both {seen[ext]} and {kind}")
                seen[ext] = kind
        return self

    def kind_of(self, suffix: str) -> str | None:
        """``video``/``audio``/``photo`` for a file suffix, or None when not a recording."""
        ext = suffix.lower().lstrip(".")
        for kind in ("video", "audio", "photo"):
            if ext in getattr(self, f"{kind}_extensions"):
                return kind
        return None


class NameMatch(Protocol):
    """What dockd uses of an RE2 match (the binding ships no type stubs)."""

    def span(self, group: int = 0) -> tuple[int, int]: ...

    def groupdict(self) -> dict[str, str | None]: ...


class NamePattern(Protocol):
    """What dockd uses of a compiled RE2 pattern."""

    @property
    def pattern(self) -> str: ...

    @property
    def groupindex(self) -> dict[str, int]: ...

    def match(self, text: str) -> NameMatch | None: ...


RE2_HELP = (
    "naming patterns use RE2 syntax (https://github.com/google/re2/wiki/Syntax), which "
    "matches in time linear in the name's length, so no pattern can hang the ingest on a "
    "crafted file name; it has no backreferences (\\1), lookahead or lookbehind ((?=, (?!, "
    "(?<=, (?<!), atomic groups, possessive quantifiers (a++), comments (?#...) or verbose "
    "mode (?x), and writes Python's \\Z as \\z"
)


@functools.lru_cache(maxsize=256)
def compile_naming(pattern: str) -> NamePattern:
    """Compile a naming pattern with RE2 (linear time); ValueError saying why it cannot be."""
    options = re2.Options()
    options.log_errors = False  # the error goes into our message, not onto stderr
    try:
        rx = re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0] if exc.args else "unknown error"
        if isinstance(why, bytes):
            why = why.decode("utf-8", "backslashreplace")
        raise ValueError(f"RE2 cannot compile this pattern ({why}); {RE2_HELP}") from None
    return cast(NamePattern, rx)


def _named_groups(rx: NamePattern) -> dict[str, int]:
    """The pattern's named groups; ValueError for a name used twice (RE2 keeps only one)."""
    groups = dict(rx.groupindex)
    twice = sorted(
        n for n in groups if rx.pattern.count(f"(?P<{n}>") + rx.pattern.count(f"(?<{n}>") > 1
    )
    if twice:
        raise ValueError(f"named group(s) {twice} appear more than once; name each group once")
    return groups


class NamingRule(Section):
    """How one recorder brand names its files: an RE2 regex with named groups."""

    name: str
    pattern: str
    timestamp_format: str | None = None
    timezone: str | None = None  # zone of the recorder's clock; default: the station's

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        groups = _named_groups(compile_naming(value))
        unknown = sorted(set(groups) - NAMING_GROUPS)
        if unknown:
            raise ValueError(f"unknown named group(s) {unknown}; allowed: {sorted(NAMING_GROUPS)}")
        if not groups:
            raise ValueError("needs at least one named group, e.g. (?P<device>...)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            StationConfig._known_zone(value)
        return value

    @model_validator(mode="after")
    def _format_needed(self) -> NamingRule:
        if "timestamp" in self.regex.groupindex and not self.timestamp_format:
            raise ValueError("pattern has a 'timestamp' group, so timestamp_format is required")
        return self

    @property
    def regex(self) -> NamePattern:
        """The compiled RE2 pattern (compiled once per pattern text, then cached)."""
        return compile_naming(self.pattern)


class AlertsConfig(Section):
    """Where alerts go besides the ledger: a command fed each alert as JSON on stdin."""

    notify_command: tuple[str, ...] = ()
    notify_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


DEFAULT_NAMING: tuple[NamingRule, ...] = (
    NamingRule(
        name="serial-badge-time-seq",
        pattern=r"^(?P<serial>[A-Za-z0-9]+)_(?P<badge>\d+)_(?P<timestamp>\d{14})_(?P<seq>\d+)$",
        timestamp_format="%Y%m%d%H%M%S",
    ),
    NamingRule(
        name="device-date-time-seq",
        pattern=r"^(?P<device>[A-Za-z0-9-]+)_(?P<timestamp>\d{8}_\d{6})_(?P<seq>\d+)$",
        timestamp_format="%Y%m%d_%H%M%S",
    ),
)


class Config(Section):
    """The whole configuration. Built once at start; never changed while running."""

    station: StationConfig = StationConfig()
    store: StoreConfig = StoreConfig()
    ledger: LedgerConfig = LedgerConfig()
    ingest: IngestConfig = IngestConfig()
    naming: tuple[NamingRule, ...] = DEFAULT_NAMING
    alerts: AlertsConfig = AlertsConfig()
    logging: LoggingConfig = LoggingConfig()
    dock: DockConfig = DockConfig()
    retention: RetentionConfig = RetentionConfig()
    archive: ArchiveConfig = ArchiveConfig()
    fixity: FixityConfig = FixityConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    reports: ReportsConfig = ReportsConfig()
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Config:
        names = [r.name for r in self.naming]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"naming rule names must be unique; repeated: {dupes}")
        return self

    @model_validator(mode="after")
    def _store_apart(self) -> Config:
        """Nothing else dockd writes may be in the store or quarantine, nor hold them.

        The fixity check walks both and alerts on every file the ledger does not know:
        a SQLite ledger there changes all day, trash, per-case links, archive copies
        and reports would each be "unexpected", and retention could sweep them.
        """
        problems = [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{message}", {"message": message}),
                loc=loc,
                input=str(path),
            )
            for loc, path, message in self._overlaps()
        ]
        if problems:
            raise ValidationError.from_exception_data("Config", problems)
        return self

    def _overlaps(self) -> list[tuple[KeyPath, Path, str]]:
        """(key, path, message) of each place that overlaps the store or the quarantine.

        A problem is reported at the key that is set; where a place is left at its
        default (beside the store), at the store key it collides with.
        """
        store, beside = self.store.root, self.store.root.parent
        fills: dict[str, tuple[Path, KeyPath]] = {"store.root": (store, ("store", "root"))}
        found: list[tuple[KeyPath, Path, str]] = []
        stray = "the fixity check would report every file in it as unexpected"

        def check(
            key: str,
            loc: KeyPath | None,
            path: Path,
            example: Path,
            why: str,
            *,
            file: bool = False,
        ) -> None:
            for name, (other, other_loc) in fills.items():
                relation = _relation(path, other, file=file)
                if not relation:
                    continue
                if loc is None:  # left at its default: the store key that was set is to blame
                    message = (
                        f"{key} is not set, so it is {path}, which {relation} {name} ({other}); "
                        f"set {key} or {name} to a directory of its own: {why}"
                    )
                else:
                    what = f"the SQLite ledger {path}" if file else str(path)
                    place = "keep it" if file else "make it a directory"
                    message = (
                        f"{what} {relation} {name} ({other}); {place} beside the store, "
                        f"e.g. {example}: {why}"
                    )
                found.append((loc or other_loc, path, message))
                return

        quarantine = self.store.quarantine
        check(
            "store.quarantine",
            ("store", "quarantine") if quarantine is not None else None,
            self.store.quarantine_root,
            beside / "quarantine",
            "the store and the quarantine are checked and cleaned apart, so each would take "
            "the other's files for strays",
        )
        fills["store.quarantine"] = (
            self.store.quarantine_root,
            ("store", "quarantine") if quarantine is not None else ("store", "root"),
        )
        ledger = _sqlite_file(self.ledger.url)
        if ledger is not None:
            check(
                "ledger.url",
                ("ledger", "url"),
                ledger,
                beside / "ledger.sqlite3",
                "it changes with every ingest, so every fixity run would raise an alert for it",
                file=True,
            )
        trash = self.retention.trash
        check(
            "retention.trash",
            ("retention", "trash") if trash is not None else None,
            trash if trash is not None else beside / "trash",
            beside / "trash",
            "files moved to the trash would still be in the store, and " + stray,
        )
        by_case = self.reports.by_case_root
        check(
            "reports.by_case_root",
            ("reports", "by_case_root") if by_case is not None else None,
            by_case if by_case is not None else beside / "by-case",
            beside / "by-case",
            "its hard links would be counted as stored files, and " + stray,
        )
        for index, target in enumerate(self.archive.targets):
            check(
                f"archive.targets[{index}].path",
                ("archive", "targets", index, "path"),
                target.path,
                beside / "archive" / target.name,
                "an archive copy must be somewhere else than the originals, and " + stray,
            )
        reports = self.schedule.weekly_report_dir
        if reports is not None:
            key = "schedule.weekly_report_dir"
            check(key, ("schedule", "weekly_report_dir"), reports, beside / "reports", stray)
        return found


def _relation(path: Path, other: Path, *, file: bool = False) -> str | None:
    """How ``path`` lies to the directory ``other``: same, inside, containing, or None."""
    for a, b in zip(_forms(path), _forms(other), strict=True):
        if a == b:
            return "is the same path as" if file else "is the same directory as"
        if a.is_relative_to(b):
            return "is inside"
        if not file and b.is_relative_to(a):
            return "contains"
    return None


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    m = re.match(r"^sqlite(?:\+\w+)?://(?P<rest>[^?]*)", url)
    if m is None or not m.group("rest").startswith("/"):
        return None
    name = m.group("rest")[1:].removeprefix("file:")
    if not name or name == ":memory:":
        return None
    return Path(name)


# --------------------------------------------------------------------------- loading


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make relative paths (store root, quarantine, sqlite file) relative to the config file."""
    store = data.get("store")
    if isinstance(store, dict):
        for key in ("root", "quarantine"):
            val = store.get(key)
            if isinstance(val, str) and val and not Path(val).is_absolute():
                store[key] = str(base / val)
    ledger = data.get("ledger")
    if isinstance(ledger, dict):
        url = ledger.get("url")
        if (
            isinstance(url, str)
            and url.startswith("sqlite:///")
            and not url.startswith("sqlite:////")
        ):
            rel = url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                ledger["url"] = "sqlite:///" + str(base / rel)


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Map key paths to 1-based line numbers by a light scan of the TOML text.

    Handles ``[table]``, ``[[array.of.tables]]`` (indexed) and ``key = ...`` lines,
    which is what dockd's config uses; anything it cannot place falls back to the
    nearest enclosing table when reporting.
    """
    lines: dict[tuple[str | int, ...], int] = {}
    counters: dict[tuple[str, ...], int] = {}
    current: tuple[str | int, ...] = ()
    # Words separated by single runs of spaces: no two parts of the pattern can take
    # the same spaces, so a long run of them costs linear time, not cubic.
    header = re.compile(
        r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"']+(?: +[A-Za-z0-9_.\-\"']+)*)\s*\]\]?\s*(#.*)?$"
    )
    keyline = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]+\")\s*=")
    for number, raw in enumerate(text.splitlines(), start=1):
        m = header.match(raw)
        if m:
            parts = tuple(p.strip().strip("\"'") for p in m.group(2).split("."))
            if m.group(1) == "[[":
                idx = counters.get(parts, 0)
                counters[parts] = idx + 1
                current = (*parts, idx)
            else:
                current = parts
            lines.setdefault(current, number)
            continue
        k = keyline.match(raw)
        if k:
            lines.setdefault((*current, k.group(1).strip('"')), number)
    return lines


def _line_for(loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _fmt_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TOML_AT = re.compile(
    r"^(?P<msg>.*) \("
    r"(?:at line (?P<line>\d+), column (?P<col>\d+)|(?P<end>at end of document))\)$"
)


def _toml_problem(message: str, text: str) -> str:
    """``line N: not valid TOML: ... (column C)`` from tomllib's message, line first."""
    m = _TOML_AT.match(message)
    if m is None:
        return f"not valid TOML: {message}"
    if m.group("end"):
        last = max(1, len(text.splitlines()))
        return f"line {last}: not valid TOML: {m.group('msg')} (at the end of the file)"
    return f"line {m.group('line')}: not valid TOML: {m.group('msg')} (column {m.group('col')})"


def decode_config(data: bytes, source: str) -> str:
    """The file's text; a file that is not UTF-8 is refused at the line of its first bad byte.

    A config saved as GBK (or Latin-1) by a local editor would otherwise be reported
    as a byte offset nobody can find in an editor.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data.count(b"\n", 0, start) + 1
        line_start = data.rfind(b"\n", 0, start) + 1
        column = len(data[line_start:start].decode("utf-8")) + 1
        raise ConfigError(
            source,
            [
                f"line {line}: not valid UTF-8 (byte 0x{data[start]:02X} at column {column}); "
                "save the file as UTF-8"
            ],
        ) from None


def parse_config(text: str, *, source: str = "<config>", base: Path | None = None) -> Config:
    """Parse and validate TOML text; raise :class:`ConfigError` listing every problem."""
    text = text.removeprefix("\ufeff")  # a byte-order mark (Windows editors) is not an error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [_toml_problem(str(exc), text)]) from None
    except RecursionError:
        raise ConfigError(
            source,
            [
                "arrays or tables nested too deeply to read; "
                "a dockd config nests at most a few levels"
            ],
        ) from None
    if base is not None:
        _resolve_paths(data, base)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        lines = key_lines(text)
        problems: list[tuple[int, str]] = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            line = _line_for(loc, lines)
            where = f"line {line}: " if line else ""
            key = _fmt_loc(loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see config.example.toml for every key)"
            problems.append((line or 0, f"{where}{key}: {msg}"))
        # In the order of the file, so the admin fixes it top to bottom.
        raise ConfigError(source, [p for _, p in sorted(problems, key=lambda p: p[0])]) from None
    return cfg.model_copy(update={"source": Path(source) if base is not None else None})


def load_config(path: Path | None = None) -> Config:
    """Load the config from ``path``, ``$DOCKD_CONFIG`` or /etc/dockd/dockd.toml.

    A path that was asked for and does not exist is an error; when none was asked
    for and the default file is absent, the built-in defaults are used.
    """
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    chosen = path or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        data = chosen.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(
                str(chosen), ["file not found; copy config.example.toml there and edit it"]
            ) from None
        return Config()
    except OSError as exc:
        raise ConfigError(str(chosen), [f"cannot read: {exc}"]) from exc
    text = decode_config(data, str(chosen))
    return parse_config(text, source=str(chosen), base=chosen.resolve().parent)
