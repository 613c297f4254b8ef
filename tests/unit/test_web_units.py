"""The web view's parts without a ledger: [web] config, sessions and login counts on a
fixed clock, the language of a request, and the catalogs of both languages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dockd.clock import FixedClock
from dockd.config import load_config, parse_config
from dockd.config.web import WebConfig
from dockd.errors import ConfigError
from dockd.reports.search import FLAGS
from dockd.web import i18n
from dockd.web.recording_view import CLOCKS
from dockd.web.render import NAV
from dockd.web.sessions import SessionStore

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 16, 2, 0, tzinfo=UTC)


def store(clock: FixedClock) -> SessionStore:
    return SessionStore(clock, idle=timedelta(minutes=15), attempts=5, window=timedelta(minutes=15))


def test_the_example_states_the_web_defaults() -> None:
    assert load_config(ROOT / "config.example.toml").web == WebConfig()


@pytest.mark.parametrize(
    ("listen", "says"),
    [("8470", "not HOST:PORT"), ("127.0.0.1:0", "from 1 to 65535"), (":8470", "names no host")],
)
def test_a_wrong_listen_address_is_named_with_an_example(listen: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f'[web]\nlisten = "{listen}"\n', source="t.toml")
    text = str(err.value)
    assert says in text and "127.0.0.1:8470" in text and "metrics" not in text


def test_a_session_lives_while_used_and_ends_when_idle() -> None:
    clock = FixedClock(T0)
    sessions = store(clock)
    sess = sessions.open("cora")
    assert sess.token != sess.csrf and len(sess.token) >= 43
    clock.advance(timedelta(minutes=15))
    assert sessions.get(sess.token) is sess  # exactly 15 minutes idle is still alive
    clock.advance(timedelta(minutes=15, seconds=1))
    assert sessions.get(sess.token) is None
    assert sessions.get(sess.token) is None  # and forgotten


def test_closing_forgets_the_session_and_a_disabled_login_loses_every_session() -> None:
    sessions = store(FixedClock(T0))
    a, b, c = sessions.open("cora"), sessions.open("cora"), sessions.open("lena")
    sessions.close(a.token)
    assert sessions.get(a.token) is None and sessions.get(b.token) is b
    sessions.close_login("cora")
    assert sessions.get(b.token) is None and sessions.get(c.token) is c
    assert sessions.get("") is None and sessions.get(None) is None


def test_failed_logins_are_counted_per_login_and_per_address_within_the_window() -> None:
    clock = FixedClock(T0)
    sessions = store(clock)
    for _ in range(4):
        sessions.failed("Cora", "10.0.0.1")
    assert not sessions.blocked("cora", "10.0.0.9")
    sessions.failed("cora", "10.0.0.2")
    assert sessions.blocked("CORA", "10.0.0.9")  # the login, whatever its letters' case
    assert sessions.blocked("lena", "10.0.0.1") is False  # 10.0.0.1 failed 4 times only
    clock.advance(timedelta(minutes=15, seconds=1))
    assert not sessions.blocked("cora", "10.0.0.9")
    sessions.failed("x", "10.0.0.3")
    sessions.succeeded("x")
    assert not sessions.blocked("x", "10.0.0.4")


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "lang"),
    [
        (None, None, None, "en"),
        (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        (None, None, "en-US,en;q=0.9,zh;q=0.8", "en"),
        (None, None, "fr-FR, zh-TW;q=0.5", "zh_CN"),
        (None, None, "zh;q=0.2, en;q=0.9", "en"),
        (None, None, "de, fr", "en"),
        (None, "zh", "en", "zh_CN"),
        ("en", "zh", "zh-CN", "en"),
        ("klingon", None, "zh", "zh_CN"),
    ],
)
def test_the_language_of_a_request(
    query: str | None, cookie: str | None, accept: str | None, lang: str
) -> None:
    assert i18n.choose(query, cookie, accept) == lang


def test_every_message_of_the_templates_has_a_chinese_translation() -> None:
    """Each `_("...")` of every template is in the zh_CN catalog, translated, with the
    same placeholders (a missing one would show English on a Chinese page)."""
    zh = i18n.translations("zh_CN")
    templates = ROOT / "src" / "dockd" / "web" / "templates"
    found = {label for _, label in NAV} | set(FLAGS) | set(CLOCKS.values())
    found |= {"pending", "granted", "expired", "denied"}  # export request states
    found |= {"normal", "restricted", "stored", "trashed", "purged"}  # access class, state
    for path in templates.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'_\("((?:[^"\\]|\\.)*)"\)', text))
        for one, many in re.findall(r'ngettext\("([^"]*)", "([^"]*)"', text):
            assert zh.ngettext(one, many, 2) != many, f"untranslated in zh_CN: {one}"
    missing = sorted(m for m in found if zh.gettext(m) == m)
    assert not missing, f"untranslated in zh_CN: {missing}"
    for message in found:
        assert set(re.findall(r"%\(\w+\)\w", message)) == set(
            re.findall(r"%\(\w+\)\w", zh.gettext(message))
        ), message
    assert i18n.translations("en").gettext("Search") == "Search"


def test_the_header_links_only_the_pages_a_role_opens() -> None:
    from dockd.auth.roles import Actor, Role
    from dockd.web.render import nav_for

    def links(*roles: Role) -> list[str]:
        return [href for href, _ in nav_for(Actor(2, "x", "X", frozenset(roles)))]

    assert links(Role.AUDITOR) == ["/search", "/reports", "/exports", "/station"]
    assert links(Role.OFFICER) == ["/approvals", "/exports"]
    assert links(Role.ADMIN) == ["/search", "/approvals", "/reports", "/exports", "/station"]
    assert links(Role.LEGAL) == ["/search", "/approvals", "/reports", "/exports", "/station"]


def test_a_play_is_claimed_once_until_the_page_opens_another() -> None:
    sessions = store(FixedClock(T0))
    sess = sessions.open("cora")
    assert sessions.claim_play(sess, 7)  # straight to the media: registered once
    assert not sessions.claim_play(sess, 7)
    sessions.start_play(sess, 7)  # the page again: a new play
    assert sessions.claim_play(sess, 7) and not sessions.claim_play(sess, 7)
    assert sessions.claim_play(sess, 8)  # each file its own plays
    sessions.unclaim_play(sess, 8)  # registering failed: the next request registers
    assert sessions.claim_play(sess, 8)
