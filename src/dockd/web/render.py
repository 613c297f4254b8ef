"""Pages: Jinja2 templates rendered on the server, in the request's language.

``page`` hands every template the same things: the request's language and its
``gettext``, the signed-in account (if any) and its CSRF token for forms, and the nav.
Autoescaping is on for every template; the filters ``localtime`` (UTC to the station's
time, ``2026-03-15 06:30``) and ``mb`` (bytes to ``12.3 MB``) format what the ledger
holds the way people read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from dockd.auth.permissions import allowed
from dockd.auth.roles import Actor
from dockd.config import Config
from dockd.config.station import local_text
from dockd.errors import UsageError
from dockd.reports.output import mb
from dockd.web import i18n
from dockd.web.deps import Signed, state_of
from dockd.web.sessions import LANG_COOKIE

# (path, label): the header's links, in order. Labels are gettext message ids.
NAV = (
    ("/search", "Search"),
    ("/approvals", "Approvals"),
    ("/reports", "Reports"),
    ("/exports", "Exports"),
    ("/station", "Station"),
)
# The commands whose permission rows open each page (any one shows its link).
NAV_ACTIONS = {
    "/search": ("ledger query",),
    "/approvals": ("access pending",),
    "/reports": ("report",),
    "/exports": ("export",),
    "/station": ("status", "alerts list", "sweep runs", "health"),
}


def nav_for(actor: Actor) -> list[tuple[str, str]]:
    """The header's links this account may follow (the pages still check for themselves)."""
    return [
        (href, label)
        for href, label in NAV
        if any(allowed(actor, action) for action in NAV_ACTIONS[href])
    ]


LANG_MAX_AGE = 365 * 24 * 3600


def make_env(config: Config) -> Environment:
    """The templates of ``dockd.web`` with the station's time zone in ``localtime``."""
    env = Environment(
        loader=PackageLoader("dockd.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = config.station.tz

    def localtime(value: datetime | None, seconds: bool = False) -> str:
        return "" if value is None else local_text(value, tz, seconds=seconds)

    env.filters["localtime"] = localtime
    env.filters["mb"] = mb
    env.globals["station_name"] = config.station.unit
    return env


def query_link(request: Request, path: str, fields: Iterable[str], **changes: Any) -> str:
    """``path`` with the request's ``fields`` (query parameters), some changed (None
    drops one): the links of a pager, a sort or a download keep the page's filters."""
    keep = set(fields)
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k in keep and v != ""]
    for key, value in changes.items():
        pairs = [(k, v) for k, v in pairs if k != key]
        if value is not None:
            pairs.append((key, str(value)))
    return path + ("?" + urlencode(pairs) if pairs else "")


def pager_pages(current: int, last: int) -> list[int]:
    """The page numbers a pager shows: the first, the last and those near the current."""
    near = {1, last, *range(max(1, current - 2), min(last, current + 2) + 1)}
    return sorted(near)


def page_number(request: Request) -> int:
    """The ``page`` a URL asks for (1 without one); a UsageError for one that is not."""
    text = (request.query_params.get("page") or "1").strip()
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"page={text!r} is not a page number (1, 2, ...)")
    return int(text)


def lang_of(request: Request) -> str:
    """The request's language (:func:`dockd.web.i18n.choose`)."""
    return i18n.choose(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def gettext_of(request: Request) -> Any:
    """The ``gettext`` of the request's language (for messages built in Python)."""
    return i18n.translations(lang_of(request)).gettext


def page(request: Request, template: str, *, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render ``template`` for this request, with everything base.html needs."""
    web = state_of(request)
    env: Environment = request.app.state.templates
    lang = lang_of(request)
    tr = i18n.translations(lang)
    signed = getattr(request.state, "signed", None)
    context: dict[str, Any] = {
        "request": request,
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh_CN" else "en",
        "lang_short": i18n.short(lang),
        "gettext": tr.gettext,
        "ngettext": tr.ngettext,
        "_": tr.gettext,
        "signed": signed if isinstance(signed, Signed) else None,
        "nav": nav_for(signed.actor) if isinstance(signed, Signed) else [],
        "csrf_token": signed.csrf if isinstance(signed, Signed) else "",
        "path": request.url.path,
        "tz": web.config.station.timezone,
    }
    context.update(ctx)
    body = env.get_template(template).render(context)
    response = HTMLResponse(body, status_code=status_code)
    switch = request.query_params.get("lang")
    if switch in i18n.SHORT:
        response.set_cookie(
            LANG_COOKIE,
            switch,
            max_age=LANG_MAX_AGE,
            httponly=True,
            samesite="strict",
            secure=web.config.web.cookie_secure,
        )
    return response
