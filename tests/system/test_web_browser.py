"""The web view in a real browser (issue 13's must-show): Debian's Chromium driven by
Playwright against a real ``dockd web``, on a ledger filled by a real ``dockd ingest``.

A custodian who is also legal staff logs in, finds Zhang Wei's footage by a part of his
name, opens a clip: no player without a grant, the media refused, a request form. Their
own approval of the request is refused; legal staff and then the leader approve it (the
station's rule needs both); the clip plays in the page and the play is in the access
register once. A form posted without its CSRF token is refused, and logging out ends
the session for good. The run leaves screenshots of the search page and the recording's
page in docs/ (1280x800).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.helpers.browser import VIEWPORT, chromium, need_browser
from tests.helpers.webserver import PASSWORD, REPO, WebStation, make_web_station, running_web

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CLIP = "ZFY2024000123_012345_20260315063000_0001.MP4"
PHOTO = "ZFY2024000123_012345_20260315063012_0001.JPG"
REQUESTER, LEGAL, LEADER = "chen-jing", "wang-fang", "zhao-lei"
DOCS = REPO / "docs"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebStation, str]]:
    """The station, its people, and ``dockd web`` serving it (one server for the module)."""
    need_browser()  # before the station is built for nothing
    station = make_web_station(tmp_path_factory.mktemp("web"))
    station.add_person(REQUESTER, "陈静 Chen Jing", "custodian", "legal")
    station.add_person(LEGAL, "王芳 Wang Fang", "legal")
    station.add_person(LEADER, "赵磊 Zhao Lei", "leader")
    with running_web(station) as base:
        yield station, base


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def log_in(browser: Browser, base: str, login: str, locale: str = "en-US") -> Page:
    """A fresh browser context (no cookie) signed in as ``login``, on the search page."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base, locale=locale)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto("/login")
    page.fill("form#login [name=username]", login)
    page.fill("form#login [name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("form#login [type=submit]")
    assert re.search(r"/search", page.url), f"{login} was not signed in: {page.url}"
    return page


def shot(page: Page, name: str) -> None:
    """A screenshot of the page as it is, in docs/ for the guide (replaced every run)."""
    page.screenshot(path=str(DOCS / name))
    assert (DOCS / name).stat().st_size > 10_000


def requests(station: WebStation) -> int:
    """How many access requests ``dockd access history`` lists."""
    return len(json.loads(station.dockd("access", "history", "--format", "json").stdout))


def post_form(page: Page, action: str, **fields: str) -> int:
    """Post a form the page does not offer, as a person could build it in the browser,
    with the session's CSRF token (from the logout form); the answer's status."""
    token = page.locator("form#logout [name=csrf_token]").get_attribute("value")
    with page.expect_navigation() as nav:
        page.evaluate(
            """([action, fields]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [action, {"csrf_token": token, **fields}],
        )
    response = nav.value
    assert response is not None
    return response.status


def decide(page: Page, request_id: int, verb: str, reason: str) -> int:
    """Approve or deny request ``request_id`` from the approvals page; the answer's status."""
    page.goto("/approvals")
    row = page.locator(f"table#pending tr.request[data-request-id='{request_id}']")
    form = row.locator(f"form.{verb}")
    form.locator("[name=reason]").fill(reason)
    with page.expect_navigation() as nav:
        form.locator("[type=submit]").click()
    response = nav.value
    assert response is not None
    return response.status


def test_search_request_approve_play_logout(browser: Browser, web: tuple[WebStation, str]) -> None:
    station, base = web
    clip = station.files[CLIP]
    page = log_in(browser, base, REQUESTER, locale="zh-CN")

    # Search by a part of the officer's name, in another case.
    page.fill("form#search [name=officer]", "zhang")
    with page.expect_navigation():
        page.locator("form#search [type=submit]").click()
    assert "officer=zhang" in page.url
    assert page.locator("table#results tr.result").count() == 5
    assert "5" in page.locator("#result-count").inner_text()
    shot(page, "web-search.png")

    # Open the clip: its facts, but no player and no media without a grant.
    with page.expect_navigation():
        page.click(f"a.recording-link[href='/recordings/{clip}']")
    assert page.url.endswith(f"/recordings/{clip}")
    assert page.locator("#recording-facts").is_visible()
    assert page.locator("img#thumbnail").get_attribute("src") == (
        f"/recordings/{clip}/thumbnail.jpg"
    )
    assert page.locator("video#player").count() == 0
    assert page.request.get(f"/recordings/{clip}/media").status == 403

    # Ask to see it.
    page.fill("form#request-access [name=reason]", "投诉核查 complaint review")
    with page.expect_navigation():
        page.locator("form#request-access [type=submit]").click()
    status = page.locator("#request-status").inner_text()
    found = re.search(r"\d+", status)
    assert found, status
    request_id = int(found.group())

    # The requester, legal staff themselves, is not offered their own request, and
    # posting its approval form anyway is refused.
    page.goto("/approvals")
    assert page.locator(f"tr.request[data-request-id='{request_id}']").count() == 0
    assert post_form(page, f"/approvals/{request_id}/approve", reason="mine") == 403
    assert page.locator("#approval-error").is_visible()
    assert page.request.get(f"/recordings/{clip}/media").status == 403

    # Legal staff, then the leader: two other people.
    for login in (LEGAL, LEADER):
        approver = log_in(browser, base, login)
        assert decide(approver, request_id, "approve", "核查需要 needed for the review") < 400
        approver.context.close()

    # Now it plays in the page, through range requests, and the play is registered once.
    page.goto(f"/recordings/{clip}")
    player = page.locator("video#player")
    assert player.get_attribute("src") == f"/recordings/{clip}/media"
    with page.expect_response(lambda r: r.url.endswith(f"/recordings/{clip}/media")) as media:
        page.evaluate(
            "() => { const v = document.querySelector('video#player'); v.muted = true;"
            " return v.play(); }"
        )
    assert media.value.status == 206
    page.wait_for_function(
        "() => { const v = document.querySelector('video#player');"
        " return v.readyState >= 2 && v.currentTime > 0.2; }"
    )
    views = [
        r
        for r in station.access_register()
        if r["file"] == clip and r["action"] == "view" and r["by"] == REQUESTER
    ]
    assert len(views) == 1, views
    page.reload()
    assert REQUESTER in page.locator("table#access-history").inner_text()
    shot(page, "web-recording.png")

    # Logging out ends the session: the old cookie no longer opens a page.
    cookies = page.context.cookies()
    with page.expect_navigation():
        page.locator("form#logout [type=submit]").click()
    assert page.url.endswith("/login")
    page.goto("/search")
    assert "/login" in page.url
    replay = browser.new_context(base_url=base)
    replay.add_cookies(cookies)  # type: ignore[arg-type]
    again = replay.new_page()
    again.goto("/search")
    assert "/login" in again.url
    replay.close()
    page.context.close()


def test_a_form_without_its_csrf_token_is_refused(
    browser: Browser, web: tuple[WebStation, str]
) -> None:
    station, base = web
    photo = station.files[PHOTO]
    page = log_in(browser, base, REQUESTER)
    page.goto(f"/recordings/{photo}")
    asked = requests(station)
    page.fill("form#request-access [name=reason]", "no token")
    page.evaluate(
        "() => document.querySelectorAll('form#request-access [name=csrf_token]')"
        ".forEach(e => e.remove())"
    )
    with page.expect_navigation() as nav:
        page.locator("form#request-access [type=submit]").click()
    response = nav.value
    assert response is not None and response.status == 403
    assert "CSRF" in page.content()
    assert requests(station) == asked  # nothing was asked
    # Still signed in: the refusal ended nothing but the forged post.
    page.goto("/search")
    assert "/search" in page.url
    page.context.close()
