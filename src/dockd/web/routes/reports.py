"""``/reports``: every report of ``dockd report`` (and ``dockd sweep upcoming``), as a
table, as CSV, and as the printable recording form of the files it names.

Who may read a report is the permission row of its command (``report``, ``sweep
upcoming``: the auditor and up); anyone else gets 403. The period is ``from``/``to``,
dates in the station's time zone, ``to`` included.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from dockd.errors import UsageError
from dockd.evidence.form import FORM_COLUMNS
from dockd.reports import output
from dockd.reports.base import Report
from dockd.web.deps import Refused, Signed, require, state_of
from dockd.web.render import lang_of, page, page_number, pager_pages, query_link
from dockd.web.routes import report_data as data

router = APIRouter()
Reader = Annotated[Signed, Depends(require("report"))]
Day = Annotated[str | None, Query(max_length=32)]
PAGE_SIZE = 500  # rows of a report one page shows
FIELDS = ("from", "to", "lang", "page")  # what a report's links carry on
FORM_MAX_FILES = 2_000  # files one printable recording form lists (a few dozen pages)


def _allowed(request: Request, name: str) -> Signed:
    """The signed-in reader of report ``name`` (404 for a name no report has, told only
    to someone who may read reports)."""
    signed = require("report")(request)
    if name not in data.CATALOG:
        raise Refused(404, f"no report named {name!r}; the reports are listed at /reports")
    action, _ = data.CATALOG[name]
    return require(action)(request) if action != "report" else signed


def _run(request: Request, name: str, start: str | None, end: str | None) -> Report:
    web = state_of(request)
    st = data.Station(web.config, web.ledger, web.clock)
    with web.ledger.read() as s:
        return data.run(name, s, st, start, end)


@router.get("/reports")
def index(request: Request, signed: Reader) -> Response:
    return page(request, "reports.html", reports=data.CATALOG, with_form=data.FILE_COLUMNS)


@router.get("/reports/{name}.csv")
def report_csv(
    request: Request, name: str, start: Annotated[Day, Query(alias="from")] = None, to: Day = None
) -> Response:
    _allowed(request, name)
    report = _run(request, name, start, to)
    lang = "zh" if lang_of(request) == "zh_CN" else "en"
    body = output.csv_bytes(
        report.rows,
        report.columns,
        tz=state_of(request).config.station.tz,
        headers=output.header_row(report.columns, lang),
    )
    filename = f"{name}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/reports/{name}/form")
def report_form(
    request: Request, name: str, start: Annotated[Day, Query(alias="from")] = None, to: Day = None
) -> Response:
    """The recording form (摄录情况记录表) of the files the report names, to print."""
    signed = _allowed(request, name)
    if name not in data.FILE_COLUMNS:
        raise Refused(404, f"the report {name} names no files: it has no recording form")
    web = state_of(request)
    report = _run(request, name, start, to)
    ids = data.file_ids(report)
    if len(ids) > FORM_MAX_FILES:  # not cut short: a form printed as evidence is whole
        raise UsageError(
            f"the report {name} names {len(ids):,} files over this period; the printable"
            f" form is made for at most {FORM_MAX_FILES:,}: choose a shorter period"
            " (from, to), or download the report's CSV"
        )
    with web.ledger.read() as s:
        rows = data.form_rows(s, web.config, ids)
    return page(
        request,
        "report_form.html",
        report=report,
        columns=FORM_COLUMNS,
        lines=[["" if getattr(r, c) is None else str(getattr(r, c)) for c, _, _ in FORM_COLUMNS]
               for r in rows],
        made_by=signed.actor.login,
        made_at=web.clock.now(),
        start=start or "",
        to=to or "",
    )  # fmt: skip


def _cells(report: Report, row: dict[str, Any], tz: tzinfo) -> list[tuple[str, str | None]]:
    """A row's cells as shown, each with a link or None: a summary row's file count
    links to the search that lists those files."""
    search = data.search_of(report.name, row)
    files = "/search?" + urlencode({k: v for k, v in search.items() if v}) if search else None
    return [(output.cell(row.get(c), tz), files if c == "files" else None) for c in report.columns]


@router.get("/reports/{name}")
def report_page(
    request: Request, name: str, start: Annotated[Day, Query(alias="from")] = None, to: Day = None
) -> Response:
    """The report as a table, :data:`PAGE_SIZE` rows a page (a month of a large
    station's untagged footage is hundreds of thousands of rows: a browser is not
    sent them all; the CSV has every row)."""
    _allowed(request, name)
    web = state_of(request)
    st = data.Station(web.config, web.ledger, web.clock)
    with web.ledger.read() as s:  # a page past the end (the rows grew fewer): the last
        shown = data.run_page(name, s, st, start, to, number=page_number(request), size=PAGE_SIZE)
    report, number = shown.report, shown.number
    last = max(1, -(-shown.total // PAGE_SIZE))
    return page(
        request,
        "report.html",
        report=report,
        rows=[_cells(report, r, web.config.station.tz) for r in report.rows],
        total=shown.total,
        page_no=number,
        last_page=last,
        pages=pager_pages(number, last),
        link=lambda **changes: query_link(request, f"/reports/{name}", FIELDS, **changes),
        description=data.CATALOG[name][1],
        start=start or "",
        to=to or "",
        csv_link=query_link(request, f"/reports/{name}.csv", FIELDS, page=None),
        form_link=query_link(request, f"/reports/{name}/form", FIELDS, page=None),
        has_form=name in data.FILE_COLUMNS,
    )
