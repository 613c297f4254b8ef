"""``/reports``: every report of ``dockd report`` (and ``dockd sweep upcoming``), as a
table, as CSV, and as the printable recording form of the files it names.

Who may read a report is the permission row of its command (``report``, ``sweep
upcoming``: the auditor and up); anyone else gets 403. The period is ``from``/``to``,
dates in the station's time zone, ``to`` included.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from dockd.evidence.form import FORM_COLUMNS
from dockd.reports import output
from dockd.reports.base import Report
from dockd.web.deps import Refused, Signed, require, state_of
from dockd.web.render import lang_of, page
from dockd.web.routes import report_data as data

router = APIRouter()
Reader = Annotated[Signed, Depends(require("report"))]
Day = Annotated[str | None, Query(max_length=32)]


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


@router.get("/reports/{name}")
def report_page(
    request: Request, name: str, start: Annotated[Day, Query(alias="from")] = None, to: Day = None
) -> Response:
    _allowed(request, name)
    report = _run(request, name, start, to)
    tz = state_of(request).config.station.tz
    query = request.url.query
    return page(
        request,
        "report.html",
        report=report,
        rows=[[output.cell(r.get(c), tz) for c in report.columns] for r in report.rows],
        description=data.CATALOG[name][1],
        start=start or "",
        to=to or "",
        query=f"?{query}" if query else "",
        has_form=name in data.FILE_COLUMNS,
    )
