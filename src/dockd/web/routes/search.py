"""Search the footage (``/search``) and download what was found (``/search.csv``).

For those who may query the ledger (``dockd ledger query``'s row). The form is a GET,
so a search is a link that can be bookmarked and sent; its fields are the names scripts
use (``officer=``, ``case=``, ``from=``, ``to=``, ...). Dates are the station's
(``from=2026-03-15`` is that day's midnight in the station's zone; ``to`` includes its
whole day). The query is :func:`dockd.reports.search.search`, all in SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.errors import UsageError
from dockd.reports.output import Encoding, csv_bytes, header_row
from dockd.reports.search import FLAGS, MAX_PAGE_SIZE, SORTS, SearchQuery, search
from dockd.web.deps import LedgerSession, Signed, require, state_of
from dockd.web.render import page, page_number, pager_pages, query_link

router = APIRouter()
Reader = Annotated[Signed, Depends(require("ledger query"))]

PAGE_SIZE = 50
# The form's fields, as the URL names them.
FIELDS = ("officer", "case", "from", "to", "device", "station", "category", "hold", "flag",
          "sort", "order", "page")  # fmt: skip
CSV_COLUMNS = ("id", "recorded_start", "recorded_end", "duration_s", "device", "officer",
               "officer_name", "case_number", "category", "access_class", "size_bytes",
               "state", "held", "flags", "station")  # fmt: skip
CSV_MAX_ROWS = 200_000


def parse_when(value: str, config: Config, *, end: bool = False) -> datetime | None:
    """``2026-03-15`` or ``2026-03-15T08:30`` in the station's zone (an offset is kept);
    a bare date as ``to`` means through the end of that day."""
    value = value.strip()
    if not value:
        return None
    tz = config.station.tz
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time.min, tzinfo=tz)
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not a date; use 2026-03-15 or 2026-03-15T08:30 (station time)"
        ) from None
    return at.replace(tzinfo=tz) if at.tzinfo is None else at


def _text(params: Any, name: str) -> str | None:
    value = str(params.get(name) or "").strip()
    return value or None


def query_of(request: Request, config: Config, *, page_size: int = PAGE_SIZE) -> SearchQuery:
    """The :class:`SearchQuery` a URL asks for (UsageError naming a wrong field)."""
    params = request.query_params
    hold = (params.get("hold") or "").strip()
    if hold not in ("", "yes", "no"):
        raise UsageError(f"hold={hold!r}: use hold=yes, hold=no or leave it out")
    order = (params.get("order") or "desc").strip()
    if order not in ("asc", "desc"):
        raise UsageError(f"order={order!r}: use order=asc or order=desc")
    return SearchQuery(
        officer=_text(params, "officer"),
        device=_text(params, "device"),
        station=_text(params, "station"),
        case=_text(params, "case"),
        category=_text(params, "category"),
        held=None if not hold else hold == "yes",
        flags=frozenset(f for f in params.getlist("flag") if f),
        start=parse_when(params.get("from") or "", config),
        end=parse_when(params.get("to") or "", config, end=True),
        sort=(params.get("sort") or "recorded").strip(),
        descending=order == "desc",
        page=page_number(request),
        page_size=page_size,
    )


def link(request: Request, path: str = "/search", **changes: Any) -> str:
    """``path`` with the request's search fields, some changed (None drops one)."""
    return query_link(request, path, FIELDS, **changes)


@router.get("/search")
def search_page(request: Request, signed: Reader, s: LedgerSession) -> Response:
    web = state_of(request)
    params = request.query_params
    form: dict[str, Any] = {name: params.get(name, "") for name in FIELDS if name != "flag"}
    form["flags"] = params.getlist("flag")
    try:
        q = query_of(request, web.config)
    except UsageError as exc:
        return page(request, "search.html", status_code=400, form=form, error=str(exc),
                    found=None, flags=FLAGS, sorts=SORTS)  # fmt: skip
    found = search(s, q, web.config, web.clock.now())
    last = found.pages(q.page_size)
    return page(
        request,
        "search.html",
        form=form,
        error=None,
        found=found,
        q=q,
        flags=FLAGS,
        sorts=SORTS,
        pages=pager_pages(q.page, last),
        last_page=last,
        link=lambda **changes: link(request, **changes),
        csv_link=link(request, "/search.csv", page=None),
    )


def _csv_rows(
    session: Session, q: SearchQuery, config: Config, now: datetime
) -> Iterator[dict[str, Any]]:
    number, sent = 1, 0
    while sent < CSV_MAX_ROWS:
        found = search(session, replace(q, page=number), config, now)
        for row in found.rows:
            sent += 1
            yield {
                "id": row.id, "recorded_start": row.recorded_start,
                "recorded_end": row.recorded_end, "duration_s": row.duration_s,
                "device": row.device, "officer": row.officer, "officer_name": row.officer_name,
                "case_number": row.case_number, "category": row.category,
                "access_class": row.access_class, "size_bytes": row.size_bytes,
                "state": row.state, "held": "yes" if row.held else "",
                "flags": " ".join(row.flags), "station": row.station,
            }  # fmt: skip
        if number >= found.pages(q.page_size):
            return
        number += 1


@router.get("/search.csv")
def search_csv(request: Request, signed: Reader, s: LedgerSession) -> Response:
    """Every match (up to 200,000 rows) as CSV, UTF-8 with a byte order mark (Excel)."""
    web = state_of(request)
    q = query_of(request, web.config, page_size=MAX_PAGE_SIZE)
    rows = list(_csv_rows(s, q, web.config, web.clock.now()))
    headers = header_row(CSV_COLUMNS, web.config.station.language)
    body = csv_bytes(rows, CSV_COLUMNS, tz=web.config.station.tz, encoding=Encoding.utf8_bom,
                     headers=headers)  # fmt: skip
    stamp = web.clock.now().astimezone(web.config.station.tz).strftime("%Y%m%d-%H%M")
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="dockd-search-{stamp}.csv"'},
    )
