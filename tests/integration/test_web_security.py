"""The web view's security (issue 13's must-show): no URL reaches a file outside the store,
reports are refused without a reader role, the session cookie is HttpOnly and
SameSite, every response carries the Content-Security-Policy, and a form posted
without its CSRF token is refused and changes nothing.

On a real SQLite ledger filled by a real ingest, through the real app in process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from dockd.auth import access as grants
from dockd.auth.accounts import Stamp, actor_of, find_account
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.models import AccessRequest, Recording
from dockd.web.app import CSP
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import register
from tests.helpers.web import add_person, client, csrf_of, log_in

OUTSIDE = "not-for-any-browser-7f3a"  # the content of a file beside the store


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=1, extras=False)


@pytest.fixture
def file_id(ctx: Context, clock: FixedClock, rec: Recorder, tmp_path: Path) -> int:
    """One clip ingested; a secret file beside the store (where the ledger also is)."""
    register(ctx.ledger, clock, rec)
    run_ingest(ctx, rec.root)
    (tmp_path / "secret.txt").write_text(OUTSIDE, encoding="utf-8")
    add_person(ctx.ledger, "cora", "custodian")
    add_person(ctx.ledger, "lena", "legal")
    add_person(ctx.ledger, "olga", "officer")
    with ctx.ledger.read() as s:
        return s.scalars(select(Recording.id).where(Recording.kind == "video")).one()


@pytest.fixture
def browser(ctx: Context, clock: FixedClock, file_id: int) -> Iterator[TestClient]:
    yield client(ctx.config, ctx.ledger, clock)


def grant_view(ctx: Context, file_id: int) -> None:
    now = ctx.clock.now()
    with ctx.ledger.session() as s:
        req = grants.request_access(
            s, Stamp(now, "st-test", "cora"), ctx.config.access,
            kind="view", reason="complaint 41", file_ids=[file_id],
        )  # fmt: skip
        number = req.id
    with ctx.ledger.session() as s:
        account = find_account(s, "lena")
        assert account is not None
        grants.approve(s, Stamp(now, "st-test", "lena"), actor_of(s, account),
                       ctx.config.access, number)  # fmt: skip


# Ways of writing "up a directory" in a URL: plain, encoded, double-encoded, mixed.
UP = ("../", "..%2F", "%2e%2e%2f", "%2E%2E/", "..%252F", "..%5C", "....//", "%c0%ae%c0%ae/")


def escapes(target: str) -> list[str]:
    return [up * 8 + target for up in UP]


def test_no_path_in_any_url_reaches_a_file_outside_the_store(
    ctx: Context, browser: TestClient, file_id: int, tmp_path: Path
) -> None:
    grant_view(ctx, file_id)  # the file routes answer for real, under a grant
    assert log_in(browser, "cora") == 303
    targets = [str(tmp_path / "secret.txt").lstrip("/"), "etc/passwd", "secret.txt"]
    templates = (
        "/recordings/{}", "/recordings/{}/media", "/recordings/{}/thumbnail.jpg",
        "/reports/{}", "/reports/{}.csv", "/reports/{}/form", "/exports/{}/file",
        "/static/{}", "/{}", "/search.csv?officer={}",
    )  # fmt: skip
    tried = 0
    for template in templates:
        for target in targets:
            for attempt in escapes(target):
                answer = browser.get(template.format(attempt))
                tried += 1
                assert OUTSIDE not in answer.text, (template, attempt)
                assert "root:x:0:0" not in answer.text, (template, attempt)
                assert answer.status_code != 200 or template.startswith(
                    ("/search.csv", "/reports/{}")
                ), (template, attempt, answer.status_code)
    assert tried == len(templates) * len(targets) * len(UP)
    # The static route serves its own files, and nothing above them (the app's source).
    assert browser.get("/static/style.css").status_code == 200
    for attempt in ("/static/..%2Fapp.py", "/static/%2e%2e/app.py", "/static/../app.py"):
        answer = browser.get(attempt)
        assert answer.status_code == 404 and "create_app" not in answer.text


def test_a_ledger_row_pointing_outside_the_store_is_never_served(
    ctx: Context, browser: TestClient, file_id: int
) -> None:
    grant_view(ctx, file_id)
    with ctx.ledger.session() as s:  # a tampered row: what if the path came from elsewhere
        s.execute(update(Recording).where(Recording.id == file_id).values(
            store_path="../secret.txt"))  # fmt: skip
    assert log_in(browser, "cora") == 303
    answer = browser.get(f"/recordings/{file_id}/media")
    assert answer.status_code == 404 and OUTSIDE not in answer.text
    assert "not in the store" in answer.text
    thumb = browser.get(f"/recordings/{file_id}/thumbnail.jpg")
    assert thumb.status_code == 404 and OUTSIDE not in thumb.text


def test_an_account_without_a_reader_role_gets_403_on_reports_search_and_recordings(
    browser: TestClient, file_id: int
) -> None:
    assert log_in(browser, "olga") == 303  # an officer: no reader role
    for path in ("/reports", "/reports/late", "/reports/late.csv", "/search",
                 "/search.csv", f"/recordings/{file_id}",
                 f"/recordings/{file_id}/thumbnail.jpg"):  # fmt: skip
        answer = browser.get(path)
        assert answer.status_code == 403, path
        assert "auditor" in answer.text, path  # names the roles that may


def test_the_session_cookie_is_httponly_samesite_and_secure(browser: TestClient) -> None:
    form = browser.get("/login")
    prelogin = form.headers["set-cookie"]
    assert "HttpOnly" in prelogin and "SameSite=strict" in prelogin and "Secure" in prelogin
    data = {"username": "cora", "password": "correct horse battery staple",
            "csrf_token": csrf_of(form.text)}  # fmt: skip
    answer = browser.post("/login", data=data, follow_redirects=False)
    assert answer.status_code == 303
    (session_cookie,) = [
        c for c in answer.headers.get_list("set-cookie") if c.startswith("dockd_session=")
    ]
    attributes = {part.strip().split("=")[0].lower() for part in session_cookie.split(";")[1:]}
    assert {"httponly", "samesite", "secure", "path"} <= attributes
    assert "SameSite=strict" in session_cookie and "Path=/" in session_cookie
    assert "expires" not in attributes and "max-age" not in attributes  # ends with the browser


def test_every_response_carries_the_content_security_policy(
    ctx: Context, browser: TestClient, file_id: int
) -> None:
    grant_view(ctx, file_id)
    anonymous = [browser.get(p, follow_redirects=False) for p in ("/login", "/search", "/")]
    anonymous += [browser.get("/static/style.css"), browser.get("/static/htmx.min.js")]
    anonymous += [browser.get("/static/nothing.css"), browser.get("/no/such/page")]
    anonymous.append(browser.post("/login", data={"username": "x"}))  # 403: no CSRF token
    assert log_in(browser, "cora") == 303
    signed = [
        browser.get("/search"),
        browser.get("/search.csv"),
        browser.get(f"/recordings/{file_id}"),
        browser.get(f"/recordings/{file_id}/thumbnail.jpg"),
        browser.get(f"/recordings/{file_id}/media", headers={"Range": "bytes=0-9"}),
        browser.get("/recordings/999999"),
        browser.get("/recordings/not-a-number"),
        browser.put("/search"),
        browser.post("/logout"),
    ]
    statuses = {r.status_code for r in anonymous + signed}
    assert {200, 206, 303, 400, 403, 404, 405} <= statuses
    for answer in anonymous + signed:
        where = (answer.request.method, answer.request.url.path, answer.status_code)
        assert answer.headers.get("content-security-policy") == CSP, where
        assert answer.headers.get("x-content-type-options") == "nosniff", where
        assert answer.headers.get("x-frame-options") == "DENY", where
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    page = browser.get("/search").text
    assert "<script>" not in page and " style=" not in page and " onclick=" not in page
    assert browser.get("/search").headers["cache-control"] == "no-store"


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    ctx: Context, browser: TestClient, file_id: int
) -> None:
    assert log_in(browser, "cora") == 303
    page = browser.get(f"/recordings/{file_id}")
    token = csrf_of(page.text)
    for data in ({"reason": "complaint 41"}, {"reason": "complaint 41", "csrf_token": "forged"}):
        answer = browser.post(f"/recordings/{file_id}/request", data=data)
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    with ctx.ledger.read() as s:
        assert list(s.scalars(select(AccessRequest))) == []
    refused = browser.post("/logout", data={})
    assert refused.status_code == 403
    assert browser.get(f"/recordings/{file_id}").status_code == 200  # still signed in
    assert browser.post("/approvals/1/approve", data={"reason": "ok"}).status_code == 403
    done = browser.post(f"/recordings/{file_id}/request",
                        data={"reason": "complaint 41", "csrf_token": token})  # fmt: skip
    assert done.status_code == 200 and re.search(r'id="request-status"', done.text)


def test_the_login_form_needs_its_own_token_and_never_sends_you_off_site(
    browser: TestClient,
) -> None:
    assert browser.post(
        "/login", data={"username": "cora", "password": "correct horse battery staple"}
    ).status_code == 403  # fmt: skip
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        form = browser.get("/login")
        data = {"username": "cora", "password": "correct horse battery staple",
                "csrf_token": csrf_of(form.text), "next": target}  # fmt: skip
        answer = browser.post("/login", data=data, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/search"
        browser.cookies.clear()
