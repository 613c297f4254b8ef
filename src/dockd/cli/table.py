"""Tables that fit the terminal: cells wrapped where a person would break them, the
columns that matter least left out when even wrapped they do not fit, ``--wide`` for all.

A cell is never cut short ("…"): a file name, an officer or a case number that is
too long for its column goes on to the next line, broken after ``/ _ . ,`` or a space
where it can be. Which columns go first is :data:`LOW_VALUE`'s order, then the
rightmost ones that are not :data:`KEY`; the columns left out are named on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len

#: Columns a person looks a row up by: kept while anything else can go.
KEY = frozenset(
    {
        "id",
        "file",
        "file_id",
        "name",
        "store_path",
        "path",
        "officer",
        "officer_badge",
        "officer_name",
        "badge",
        "case",
        "case_number",
        "device",
        "message",
        "subject",
        "recorded_at",
        "at",
    }
)

#: Columns left out first when the table is too wide, in this order.
LOW_VALUE = (
    "source_path",
    "blake3",
    "sha256",
    "station",
    "session_id",
    "clock_offset_s",
    "acknowledged_by",
    "last_at",
    "occurrences",
    "flags",
    "duration_s",
    "size_bytes",
    "time_source",
    "container",
    "video_codec",
    "audio_codec",
    "width",
    "height",
    "verified",
    "access_class",
    "category",
    "kind",
)

_LONGEST_TOKEN = 20  # a longer unbreakable run (a hash) is folded rather than kept whole
_TOKENS = re.compile(r"[^ /_.,]+[ /_.,]*|[ /_.,]+")


def _overhead(n: int) -> int:
    """Border and padding of ``n`` columns in rich's default box: ``│ a │ b │``."""
    return 3 * n + 1


def _tokens(text: str) -> list[str]:
    return _TOKENS.findall(text) or [""]


def _min_width(texts: Sequence[str]) -> int:
    longest = max((cell_len(t.rstrip()) for s in texts for t in _tokens(s)), default=1)
    return max(1, min(longest, _LONGEST_TOKEN))


def _natural(texts: Sequence[str]) -> int:
    return max((cell_len(line) for s in texts for line in s.splitlines() or [""]), default=1)


def wrap(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` cells, broken after ``/ _ . ,`` or a space;
    a single run longer than ``width`` stays whole here (the table folds it)."""
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for tok in _tokens(para):
            if line and cell_len((line + tok).rstrip()) > width:
                lines.append(line.rstrip())
                line = tok
            else:
                line += tok
        lines.append(line.rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class Layout:
    """Which columns are shown, how wide each is, and which were left out."""

    columns: list[str]
    widths: list[int]
    hidden: list[str]


def layout(
    columns: Sequence[str],
    headers: Sequence[str],
    cells: Sequence[Sequence[str]],
    width: int,
    *,
    wide: bool = False,
) -> Layout:
    """Fit ``columns`` (with their ``headers`` and the rows' ``cells``) into ``width``."""
    texts = {c: [headers[i], *(row[i] for row in cells)] for i, c in enumerate(columns)}
    natural = {c: _natural(t) for c, t in texts.items()}
    if wide:
        return Layout(list(columns), [natural[c] for c in columns], [])
    least = {c: min(_min_width(t), natural[c]) for c, t in texts.items()}
    shown = list(columns)
    droppable = [c for c in LOW_VALUE if c in shown]
    droppable += [c for c in reversed(shown) if c not in KEY and c not in droppable]
    hidden: list[str] = []
    while droppable and _overhead(len(shown)) + sum(least[c] for c in shown) > width:
        gone = droppable.pop(0)
        shown.remove(gone)
        hidden.append(gone)
    widths = {c: least[c] for c in shown}
    spare = width - _overhead(len(shown)) - sum(widths.values())
    while spare > 0:
        short = {c: natural[c] - widths[c] for c in shown if natural[c] > widths[c]}
        if not short:
            break
        total = sum(short.values())
        given = 0
        for c, missing in short.items():
            share = min(missing, max(1, spare * missing // total), spare - given)
            widths[c] += share
            given += share
        spare -= given
        if given == 0:
            break
    return Layout(shown, [widths[c] for c in shown], [c for c in columns if c in hidden])
