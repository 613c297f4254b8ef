"""The web view's login, sessions and recording pages (issue 13), on a real SQLite ledger
filled by a real ingest of a simulated recorder, through the real app in process.

People: a custodian who searches and asks for access (cora), legal who approves (lena),
an auditor (aude, reads only) and an officer (olga, no reader role).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dockd.auth import access as grants
from dockd.auth.accounts import Stamp, actor_of, find_account
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.models import AccessRequest, AuditEvent, Recording
from dockd.sweeps.locations import stored_path
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import register
from tests.helpers.web import PASSWORD, add_person, client, csrf_of, log_in
from tests.helpers.webserver import make_web_station, running_web

LINK = r'class="recording-link" href="/recordings/(\d+)"'


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


@pytest.fixture
def files(ctx: Context, clock: FixedClock, rec: Recorder) -> list[int]:
    """The recorder ingested for real, and the station's people."""
    register(ctx.ledger, clock, rec)
    run_ingest(ctx, rec.root)
    with ctx.ledger.read() as s:
        q = select(Recording.id).where(Recording.kind == "video").order_by(Recording.id)
        ids = list(s.scalars(q))
    assert len(ids) == 2  # and a photo and a sound file
    add_person(ctx.ledger, "cora", "custodian", name="Cora Chen")
    add_person(ctx.ledger, "lena", "legal", name="Lena Liu")
    add_person(ctx.ledger, "aude", "auditor", name="Aude Ma")
    add_person(ctx.ledger, "olga", "officer", name="Olga Wu")
    return ids


@pytest.fixture
def browser(ctx: Context, clock: FixedClock, files: list[int]) -> Iterator[TestClient]:
    yield client(ctx.config, ctx.ledger, clock)


def events(ctx: Context, action: str) -> list[AuditEvent]:
    with ctx.ledger.read() as s:
        q = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(s.scalars(q))


def grant_view(ctx: Context, file_id: int, requester: str = "cora") -> int:
    """``requester`` asks to view the file and legal approves, through the core functions
    the CLI uses (``dockd access request`` / ``approve``)."""
    now = ctx.clock.now()
    with ctx.ledger.session() as s:
        req = grants.request_access(
            s, Stamp(now, "st-test", requester), ctx.config.access,
            kind="view", reason="complaint 41", file_ids=[file_id],
        )  # fmt: skip
        number = req.id
    with ctx.ledger.session() as s:
        account = find_account(s, "lena")
        assert account is not None
        legal = actor_of(s, account)
        req = grants.approve(s, Stamp(now, "st-test", "lena"), legal, ctx.config.access, number)
        assert req.status == grants.GRANTED
    return number


# ----------------------------------------------------------------------------- login


def test_a_person_logs_in_with_their_password_and_lands_on_the_page_they_asked_for(
    ctx: Context, browser: TestClient, files: list[int]
) -> None:
    first = browser.get(f"/recordings/{files[0]}", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == f"/login?next=%2Frecordings%2F{files[0]}"
    form = browser.get(first.headers["location"])
    assert 'id="login"' in form.text and 'name="username"' in form.text
    data = {"username": "cora", "password": PASSWORD, "csrf_token": csrf_of(form.text),
            "next": f"/recordings/{files[0]}"}  # fmt: skip
    done = browser.post("/login", data=data, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/recordings/{files[0]}"
    page = browser.get(done.headers["location"])
    assert page.status_code == 200
    assert "Cora Chen (cora)" in page.text
    (event,) = events(ctx, "account.login")
    assert event.subject_id == "cora" and json.loads(event.details) == {"via": "password"}


def test_a_wrong_password_is_refused_on_the_form_and_audited(
    ctx: Context, browser: TestClient
) -> None:
    form = browser.get("/login")
    data = {"username": "cora", "password": "not it at all", "csrf_token": csrf_of(form.text)}
    answer = browser.post("/login", data=data)
    assert answer.status_code == 401
    assert 'id="login-error"' in answer.text
    assert browser.get("/search", follow_redirects=False).status_code == 303  # not signed in
    (event,) = events(ctx, "account.login_failed")
    assert event.subject_id == "cora"
    assert json.loads(event.details) == {"reason": "wrong password", "via": "password"}


def test_after_five_failed_logins_even_the_right_password_waits(
    ctx: Context, browser: TestClient, clock: FixedClock
) -> None:
    for _ in range(5):
        assert log_in(browser, "cora", "guessing again") == 401
    form = browser.get("/login")
    data = {"username": "cora", "password": PASSWORD, "csrf_token": csrf_of(form.text)}
    answer = browser.post("/login", data=data, follow_redirects=False)
    assert answer.status_code == 429
    assert 'id="login-error"' in answer.text and "15 minutes" in answer.text
    assert len(events(ctx, "account.login_failed")) == 5  # the sixth was never checked
    assert events(ctx, "account.login") == []
    clock.advance(timedelta(minutes=16))
    assert log_in(browser, "cora") == 303


def test_the_same_address_trying_many_logins_is_stopped_too(browser: TestClient) -> None:
    for login in ("anna", "bert", "carl", "dora", "emil"):
        assert log_in(browser, login, "guessing") == 401
    assert log_in(browser, "cora") == 429


def test_a_session_ends_after_fifteen_idle_minutes(
    browser: TestClient, clock: FixedClock, files: list[int]
) -> None:
    assert log_in(browser, "cora") == 303
    page = f"/recordings/{files[0]}"
    clock.advance(timedelta(minutes=14))
    assert browser.get(page, follow_redirects=False).status_code == 200  # and touched
    clock.advance(timedelta(minutes=14))
    assert browser.get(page, follow_redirects=False).status_code == 200
    clock.advance(timedelta(minutes=15, seconds=1))
    gone = browser.get(page, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")


def test_logging_out_revokes_the_cookie(browser: TestClient, files: list[int]) -> None:
    assert log_in(browser, "cora") == 303
    cookie = browser.cookies.get("dockd_session")
    assert cookie
    page = browser.get(f"/recordings/{files[0]}")
    out = browser.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    thief = TestClient(browser.app, base_url=str(browser.base_url))
    thief.cookies.set("dockd_session", cookie)
    again = thief.get(f"/recordings/{files[0]}", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


def test_a_disabled_account_is_signed_out_at_its_next_request(
    ctx: Context, browser: TestClient, files: list[int]
) -> None:
    from dockd.auth.accounts import disable_account

    assert log_in(browser, "cora") == 303
    with ctx.ledger.session() as s:
        disable_account(s, Stamp(ctx.clock.now(), "st-test", "system"), "cora", reason="left")
    gone = browser.get(f"/recordings/{files[0]}", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")


# ----------------------------------------------------------------------------- recording


def test_a_recordings_page_shows_what_the_ledger_knows(
    ctx: Context, browser: TestClient, files: list[int], rec: Recorder
) -> None:
    assert log_in(browser, "aude") == 303
    page = browser.get(f"/recordings/{files[0]}")
    assert page.status_code == 200
    facts = page.text.split('id="recording-facts"')[1].split("</dl>")[0]
    with ctx.ledger.read() as s:
        row = s.get_one(Recording, files[0])
        recorded = row.recorded_start.astimezone(ctx.config.station.tz).strftime("%Y-%m-%d %H:%M")
    assert recorded in facts  # station time
    assert "the recorder&#39;s clock" in facts  # which clock the time came from
    assert rec.device_number in facts and "Zhang Wei" in facts and rec.badge in facts
    assert row.blake3 in facts
    assert "untagged" in facts  # no case yet
    trail = page.text.split('id="audit-trail"')[1].split("</table>")[0]
    assert "file.ingest" in trail or "file.stored" in trail or "file." in trail
    assert 'id="access-history"' in page.text
    assert f'<img id="thumbnail" src="/recordings/{files[0]}/thumbnail.jpg"' in page.text
    assert 'id="player"' not in page.text  # no grant
    assert 'id="request-access"' not in page.text  # an auditor asks for nothing
    thumb = browser.get(f"/recordings/{files[0]}/thumbnail.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8" and len(thumb.content) > 500


def test_an_unknown_recording_is_a_404_page(browser: TestClient) -> None:
    assert log_in(browser, "aude") == 303
    answer = browser.get("/recordings/999999")
    assert answer.status_code == 404
    assert "no recording with id 999999" in answer.text


def test_without_a_grant_the_media_is_refused_and_the_page_offers_the_request_form(
    ctx: Context, browser: TestClient, files: list[int]
) -> None:
    assert log_in(browser, "cora") == 303
    refused = browser.get(f"/recordings/{files[0]}/media", headers={"Range": "bytes=0-99"})
    assert refused.status_code == 403
    assert "holds no active view grant" in refused.text
    assert events(ctx, "file.view") == []
    page = browser.get(f"/recordings/{files[0]}")
    assert 'id="player"' not in page.text
    assert 'id="request-access"' in page.text and 'name="reason"' in page.text
    sent = browser.post(
        f"/recordings/{files[0]}/request",
        data={"reason": "complaint 41, officer's conduct", "csrf_token": csrf_of(page.text)},
    )
    assert sent.status_code == 200
    status = re.search(r'id="request-status" data-request-id="(\d+)"', sent.text)
    assert status is not None
    with ctx.ledger.read() as s:
        req = s.get_one(AccessRequest, int(status.group(1)))
        assert (req.requested_by, req.kind, req.status) == ("cora", "view", "pending")
        assert grants.files_of(req) == (files[0],)
        assert req.reason == "complaint 41, officer's conduct"
    assert len(events(ctx, "access.request")) == 1


def test_under_a_grant_the_page_plays_with_ranges_and_each_play_is_registered_once(
    ctx: Context, browser: TestClient, files: list[int]
) -> None:
    number = grant_view(ctx, files[0])
    assert log_in(browser, "cora") == 303
    page = browser.get(f"/recordings/{files[0]}")
    assert f'<video id="player" src="/recordings/{files[0]}/media"' in page.text
    with ctx.ledger.read() as s:
        original = stored_path(ctx.config, s.get_one(Recording, files[0])).read_bytes()
    media = f"/recordings/{files[0]}/media"
    first = browser.get(media, headers={"Range": "bytes=0-99"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-99/{len(original)}"
    assert first.content == original[:100]
    rest = browser.get(media, headers={"Range": f"bytes=100-{len(original) - 1}"})
    assert rest.status_code == 206 and rest.content == original[100:]
    (view,) = events(ctx, "file.view")
    details = json.loads(view.details)
    assert view.actor == "cora" and view.subject_id == str(files[0])
    assert details["grant"] == number and details["approved_by"] == "lena"
    browser.get(f"/recordings/{files[0]}")  # played again: a second play
    assert browser.get(media, headers={"Range": "bytes=0-9"}).status_code == 206
    assert len(events(ctx, "file.view")) == 2
    history = browser.get(f"/recordings/{files[0]}").text.split('id="access-history"')[1]
    assert history.count('class="access"') == 2


def test_a_grant_for_one_file_does_not_play_another(
    ctx: Context, browser: TestClient, files: list[int]
) -> None:
    grant_view(ctx, files[0])
    assert log_in(browser, "cora") == 303
    assert browser.get(f"/recordings/{files[1]}/media").status_code == 403
    assert 'id="player"' not in browser.get(f"/recordings/{files[1]}").text


def test_an_expired_grant_is_refused_and_audited(
    ctx: Context, browser: TestClient, files: list[int], clock: FixedClock
) -> None:
    grant_view(ctx, files[0])
    clock.advance(timedelta(hours=73))
    assert log_in(browser, "cora") == 303
    answer = browser.get(f"/recordings/{files[0]}/media")
    assert answer.status_code == 403 and "expired" in answer.text
    assert len(events(ctx, "access.expired")) == 1
    assert events(ctx, "file.view") == []


def test_the_page_is_in_chinese_when_the_browser_asks_and_the_switch_is_remembered(
    browser: TestClient, files: list[int]
) -> None:
    zh = browser.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert 'lang="zh-CN"' in zh.text and "登录" in zh.text
    en = browser.get("/login?lang=en", headers={"Accept-Language": "zh-CN"})
    assert 'lang="en"' in en.text and "Log in" in en.text
    again = browser.get("/login", headers={"Accept-Language": "zh-CN"})
    assert 'lang="en"' in again.text  # the switch wins over the browser, from its cookie


def test_dockd_web_is_in_the_permission_table_for_admins_only(tmp_path: Path) -> None:
    from dockd.auth.permissions import PERMISSIONS
    from dockd.auth.roles import Role

    assert PERMISSIONS["web"].roles == frozenset({Role.ADMIN})


def test_config_web_defaults_listen_on_the_loopback(config: Config) -> None:
    assert config.web.address == ("127.0.0.1", 8470)
    assert config.web.idle_timeout_minutes == 15 and config.web.login_attempts == 5
    assert config.web.cookie_secure is True


# ----------------------------------------------------------------------------- search


def test_search_by_a_part_of_the_officers_name_finds_their_recordings(
    browser: TestClient, files: list[int], rec: Recorder
) -> None:
    assert log_in(browser, "aude") == 303
    page = browser.get("/search", params={"officer": "zhang"})
    assert page.status_code == 200
    assert 'id="search"' in page.text
    assert re.search(r'id="result-count" data-total="4"', page.text)  # 2 clips, photo, sound
    links = re.findall(LINK, page.text)
    assert {int(i) for i in links} >= set(files)
    assert "Zhang Wei (" + rec.badge + ")" in page.text
    nobody = browser.get("/search", params={"officer": "li si"})
    assert 'data-total="0"' in nobody.text and 'class="result"' not in nobody.text
    by_badge = browser.get("/search", params={"officer": rec.badge[2:]})
    assert 'data-total="4"' in by_badge.text


def test_search_pages_and_sorts_and_downloads_csv(browser: TestClient, files: list[int]) -> None:
    assert log_in(browser, "aude") == 303
    page = browser.get("/search", params={"sort": "id", "order": "asc"})
    ids = [
        int(i) for i in re.findall(r'class="recording-link" href="/recordings/(\d+)"', page.text)
    ]
    assert ids == sorted(ids) and len(ids) == 4
    down = browser.get("/search", params={"sort": "id", "order": "desc"})
    ids_down = re.findall(LINK, down.text)
    assert [int(i) for i in ids_down] == sorted(ids, reverse=True)
    csv_link = re.search(r'id="csv" href="([^"]+)"', page.text)
    assert csv_link is not None and csv_link.group(1).startswith("/search.csv?")
    csv = browser.get(csv_link.group(1).replace("&amp;", "&"))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel reads the names
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("id,recorded_start") and len(lines) == 5
    assert "Zhang Wei" in lines[1]


def test_a_wrong_search_field_says_which(browser: TestClient) -> None:
    assert log_in(browser, "aude") == 303
    answer = browser.get("/search", params={"from": "last tuesday"})
    assert answer.status_code == 400
    assert 'id="search-error"' in answer.text and "last tuesday" in answer.text


def test_an_officer_without_a_reader_role_may_not_search(browser: TestClient) -> None:
    assert log_in(browser, "olga") == 303
    answer = browser.get("/search", params={"officer": "zhang"})
    assert answer.status_code == 403
    assert "ledger query" not in answer.text  # the page names roles, not commands
    assert "auditor" in answer.text


# ----------------------------------------------------------------------------- dockd web


def test_dockd_web_serves_the_view_on_the_port_it_is_given(tmp_path: Path) -> None:
    """The real command: ``dockd web --port N`` (uvicorn, one worker) answers with the
    security headers (tests/helpers/webserver.py runs it as the browser tests do)."""
    web = make_web_station(tmp_path)
    with (
        running_web(web) as base,
        urllib.request.urlopen(f"{base}/login", timeout=10) as answer,  # noqa: S310
    ):
        assert answer.status == 200
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert 'id="login"' in answer.read().decode("utf-8")
        assert answer.headers.get("server") is None  # says nothing about itself


def test_logging_in_again_gives_a_new_session_and_ends_the_old_one(
    browser: TestClient, files: list[int]
) -> None:
    assert log_in(browser, "cora") == 303
    old = str(browser.cookies.get("dockd_session"))
    again = TestClient(browser.app, base_url=str(browser.base_url))
    form = again.get("/login")  # the form, fetched before the old cookie is sent along
    again.cookies.set("dockd_session", old)
    data = {"username": "lena", "password": PASSWORD, "csrf_token": csrf_of(form.text)}
    answer = again.post("/login", data=data, follow_redirects=False)
    assert answer.status_code == 303
    new = re.search(r"dockd_session=([^;]+)", answer.headers["set-cookie"])
    assert new is not None and new.group(1) != old
    gone = browser.get(f"/recordings/{files[0]}", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")


def test_a_form_posted_after_the_session_ended_goes_to_login_then_search(
    browser: TestClient, clock: FixedClock, files: list[int]
) -> None:
    assert log_in(browser, "cora") == 303
    page = browser.get(f"/recordings/{files[0]}")
    clock.advance(timedelta(minutes=16))
    answer = browser.post(
        f"/recordings/{files[0]}/request",
        data={"reason": "complaint 41", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fsearch"
