"""The web view's languages: Chinese (zh_CN) and English, from gettext catalogs.

The catalogs are the ``.po`` files in ``web/locale/<lang>/LC_MESSAGES/dockd.po``,
compiled in memory with Babel when the app starts (no build step, no ``.mo`` files to
forget). The language is ``?lang=zh|en`` (remembered in a cookie), else that cookie,
else the browser's Accept-Language; English when nothing says otherwise.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGS = ("zh_CN", "en")
DEFAULT = "en"
# What the switch and the cookie say, and the catalog each means.
SHORT = {"zh": "zh_CN", "en": "en"}


def short(lang: str) -> str:
    return "zh" if lang == "zh_CN" else "en"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (one of :data:`LANGS`)."""
    if lang not in LANGS:
        raise ValueError(f"{lang!r} is not a language of the web view ({', '.join(LANGS)})")
    po = resources.files("dockd.web") / "locale" / lang / "LC_MESSAGES" / "dockd.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def from_accept_language(header: str | None) -> str | None:
    """The first language of an Accept-Language header that the view speaks, by weight."""
    if not header:
        return None
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        weighted.append((-weight, index, tag.strip().lower()))
    for neg, _, tag in sorted(weighted):
        if neg >= 0:
            continue
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return None


def choose(query: str | None, cookie: str | None, accept: str | None) -> str:
    """The language of one request: the switch, the cookie, the browser, English."""
    for word in (query, cookie):
        if word in SHORT:
            return SHORT[word]
    return from_accept_language(accept) or DEFAULT
