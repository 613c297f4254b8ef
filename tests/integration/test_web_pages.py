"""The web view's approvals, reports, exports and station pages (issue 13), driven like a
browser (FastAPI's TestClient) against ``create_app`` with a ledger filled by a real
ingest and people signed in through the login form with their accounts' passwords."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import bagit
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.auth.accounts import find_account
from dockd.auth.passwords import hash_password
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.config.dock import Bay as BayConfig
from dockd.context import Context
from dockd.dock.match import BlockEvent
from dockd.dock.status import StatusBoard
from dockd.evidence import cases
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import AccessRequest, AuditEvent
from dockd.runtime import LOCK_NAME, RUNTIME_ENV, FileLock
from dockd.web.app import create_app
from dockd.web.routes import reports as report_routes
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import add_account
from tests.helpers.ledgers import register
from tests.helpers.station import make_config

PASSWORD = "correct horse battery staple"  # noqa: S105 (a test account's)
PEOPLE = {
    "olga": ("officer",),  # asks
    "lena": ("legal",),  # approves the first step of an export
    "leo": ("leader",),  # approves the second
    "aud": ("auditor",),  # reads reports; decides nothing
    "dora": ("device-manager",),  # the station's docks
}


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


@pytest.fixture
def web_config(tmp_path: Path) -> Config:
    # The packages go to a [web] exports of its own, not the default beside the store.
    extra = (
        f'[web]\ncookie_secure = false\nexports = "{tmp_path / PACKAGES}"\n\n'
        "[reports]\nuntagged_days = 0\n"
    )
    return make_config(tmp_path, extra)


@pytest.fixture
def web_ledger(web_config: Config) -> Iterator[Ledger]:
    led = open_ledger(web_config.ledger.url)
    yield led
    led.close()


@pytest.fixture
def file_ids(web_config: Config, web_ledger: Ledger, clock: FixedClock, rec: Recorder) -> list[int]:
    """A real ingest; the first clip tagged as case K-1, the rest left untagged."""
    alerts = AlertSink(web_ledger, web_config.station.id, clock, web_config.alerts)
    ctx = Context(config=web_config, ledger=web_ledger, clock=clock, alerts=alerts)
    register(web_ledger, clock, rec)
    ids = [f.file_id for f in run_ingest(ctx, rec.root).files if f.file_id is not None]
    with web_ledger.session() as s:
        rows = cases.select_files(s, file_ids=ids[:1])
        cases.tag_files(s, rows, cases.Tag(case_number="K-1"), at=clock.now(), actor="clerk")
    for login, roles in PEOPLE.items():
        add_account(web_ledger, login, *roles, at=clock.now())
        with web_ledger.session() as s:  # the helper's accounts have no password
            account = find_account(s, login)
            assert account is not None
            account.password_hash = hash_password(PASSWORD)
    return ids


@pytest.fixture
def status_file(tmp_path: Path) -> Path:
    return tmp_path / "run" / "status.json"


@pytest.fixture
def sign_in(
    web_config: Config, web_ledger: Ledger, clock: FixedClock, status_file: Path,
    file_ids: list[int],
) -> Iterator[Callable[[str], TestClient]]:  # fmt: skip
    """A browser signed in as a person, through the login form."""
    app = create_app(web_config, web_ledger, clock=clock, status_file=status_file)
    opened: list[TestClient] = []

    def browser(login: str) -> TestClient:
        client = TestClient(app, follow_redirects=False)
        opened.append(client)
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None, form.text
        answer = client.post(
            "/login",
            data={"username": login, "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert answer.status_code == 303, answer.text
        return client

    yield browser
    for client in opened:
        client.close()


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def ask_export(client: TestClient, *, case: str = "K-1", reason: str = "court order 17") -> int:
    page = client.get("/exports")
    assert page.status_code == 200
    assert 'id="export-request"' in page.text
    made = client.post(
        "/exports/request",
        data={"csrf_token": csrf(page.text), "case": case, "kind": "export", "reason": reason},
    )
    assert made.status_code == 303
    number = int(made.headers["location"].split("made=")[1])
    shown = client.get(made.headers["location"])
    assert 'id="export-made"' in shown.text
    assert f'data-request-id="{number}" data-state="pending"' in shown.text
    return number


def decide(client: TestClient, number: int, verb: str, reason: str = "") -> tuple[int, str]:
    page = client.get("/approvals")
    answer = client.post(
        f"/approvals/{number}/{verb}", data={"csrf_token": csrf(page.text), "reason": reason}
    )
    if answer.status_code == 303:
        answer = client.get(answer.headers["location"])
        return 303, answer.text
    return answer.status_code, answer.text


def error_of(page: str) -> str:
    found = re.search(r'id="approval-error"[^>]*>([^<]*)<', page)
    assert found is not None, page
    return found.group(1)


# ------------------------------------------------------------------ approvals


def test_an_export_is_approved_by_two_other_people_never_by_its_requester(
    sign_in: Callable[[str], TestClient], web_ledger: Ledger
) -> None:
    olga, lena, leo = sign_in("olga"), sign_in("lena"), sign_in("leo")
    number = ask_export(olga)

    # the requester does not see her own request, and is refused when she tries
    assert f'data-request-id="{number}"' not in olga.get("/approvals").text
    status, page = decide(olga, number, "approve")
    assert status == 403
    assert "olga asked for access request" in error_of(page)

    queue = lena.get("/approvals")
    assert re.search(rf'<tr class="request" data-request-id="{number}">', queue.text)
    assert "court order 17" in queue.text
    status, page = decide(lena, number, "approve", "checked the order")
    assert status == 303
    assert "still needs leader" in page
    assert f'data-request-id="{number}"' not in page  # lena's step is done

    # the same person cannot fill the second step
    status, page = decide(lena, number, "approve")
    assert status == 403
    assert "lena has already approved" in error_of(page).replace("&#39;", "'")

    status, page = decide(leo, number, "approve")
    assert status == 303
    assert f"access request {number} is granted to olga" in page
    mine = olga.get("/exports").text
    assert f'data-request-id="{number}" data-state="granted"' in mine
    assert f'action="/exports/{number}/make"' in mine  # the package is made by a POST
    assert f'href="/exports/{number}/file"' not in mine  # nothing to download before

    with web_ledger.read() as s:
        actions = [
            (e.action, e.actor)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.subject_type == "access_request")
            )
        ]
    assert actions == [
        ("access.request", "olga"),
        ("access.approve", "lena"),
        ("access.approve", "leo"),
        ("access.grant", "leo"),
    ]


def test_a_denial_needs_a_reason_and_closes_the_request(
    sign_in: Callable[[str], TestClient], web_ledger: Ledger
) -> None:
    olga, leo = sign_in("olga"), sign_in("leo")
    number = ask_export(olga)
    status, page = decide(leo, number, "deny", "  ")
    assert status == 400
    assert "say why" in error_of(page)
    status, page = decide(leo, number, "deny", "no case for it")
    assert status == 303
    assert f"access request {number} is denied and closed" in page
    with web_ledger.read() as s:
        assert s.get_one(AccessRequest, number).status == "denied"
    mine = olga.get("/exports").text
    assert f'data-request-id="{number}" data-state="denied"' in mine
    assert f"/exports/{number}/make" not in mine and f"/exports/{number}/file" not in mine
    assert olga.get(f"/exports/{number}/file").status_code == 403
    assert make(olga, number).status_code == 403


def test_the_requester_withdraws_a_pending_export_request_with_a_reason(
    sign_in: Callable[[str], TestClient], web_ledger: Ledger
) -> None:
    olga, lena = sign_in("olga"), sign_in("lena")
    number = ask_export(olga)
    token = csrf(olga.get("/exports").text)
    blank = olga.post(f"/exports/{number}/withdraw", data={"csrf_token": token, "reason": ""})
    assert blank.status_code == 400 and 'id="export-error"' in blank.text
    theirs = lena.post(
        f"/exports/{number}/withdraw",
        data={"csrf_token": csrf(lena.get("/exports").text), "reason": "not mine"},
    )
    assert theirs.status_code == 404  # only one's own request
    done = olga.post(
        f"/exports/{number}/withdraw", data={"csrf_token": token, "reason": "wrong case"}
    )
    assert done.status_code == 303
    assert f'data-request-id="{number}" data-state="denied"' in olga.get("/exports").text
    assert f'data-request-id="{number}"' not in lena.get("/approvals").text
    with web_ledger.read() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "access.deny"))
        assert event.actor == "olga" and "wrong case" in event.details


def test_people_without_a_deciding_role_are_refused(
    sign_in: Callable[[str], TestClient],
) -> None:
    olga, aud, dora = sign_in("olga"), sign_in("aud"), sign_in("dora")
    number = ask_export(olga)
    assert aud.get("/approvals").status_code == 403  # the auditor changes nothing
    page = dora.get("/approvals")
    assert page.status_code == 200  # may look: no export step needs a device manager
    assert f'data-request-id="{number}"' not in page.text
    status, text = decide(dora, number, "approve")
    assert status == 403
    assert "fills none of those steps" in error_of(text)
    # a form without the session's CSRF token is refused before anything is decided
    refused = dora.post(f"/approvals/{number}/approve", data={"reason": "x"})
    assert refused.status_code == 403


# ------------------------------------------------------------------ reports


def test_reports_are_refused_to_an_account_without_a_reader_role(
    sign_in: Callable[[str], TestClient],
) -> None:
    olga = sign_in("olga")
    urls = (
        "/reports",
        "/reports/late",
        "/reports/late.csv",
        "/reports/untagged-files/form",
        "/reports/x",
    )
    for url in urls:
        assert olga.get(url).status_code == 403, url


def test_an_auditor_reads_every_report_as_a_page_csv_and_recording_form(
    sign_in: Callable[[str], TestClient], file_ids: list[int], rec: Recorder
) -> None:
    aud = sign_in("aud")
    index = aud.get("/reports").text
    for name in ("late", "gaps", "untagged", "untagged-files", "usage-officer",
                 "usage-device", "badge-mismatch", "upcoming"):  # fmt: skip
        assert f'href="/reports/{name}"' in index, name

    page = aud.get("/reports/usage-device", params={"from": "2026-03-01", "to": "2026-03-16"})
    assert page.status_code == 200
    assert 'id="report"' in page.text and rec.device_number in page.text

    untagged = aud.get("/reports/untagged-files", params={"from": "2026-03-01", "to": "2026-03-16"})
    rows = re.findall(r'<tr class="row"><td>(\d+)</td>', untagged.text)
    assert sorted(map(int, rows)) == sorted(file_ids[1:])  # K-1's clip is tagged

    csv = aud.get("/reports/untagged-files.csv", params={"from": "2026-03-01", "to": "2026-03-16"})
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    assert csv.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, for Excel
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("id,device,officer")
    assert len(lines) == 1 + len(file_ids) - 1
    chinese = aud.get("/reports/untagged-files.csv", params={"lang": "zh"})
    assert chinese.content.decode("utf-8-sig").startswith("编号,执法记录仪编号,执法人员")

    form = aud.get(
        "/reports/untagged-files/form", params={"from": "2026-03-01", "to": "2026-03-16"}
    )
    assert form.status_code == 200
    assert "摄录情况记录表" in form.text
    assert len(re.findall(r'<tr class="form-row">', form.text)) == len(file_ids) - 1
    assert "Zhang Wei" in form.text

    # the summary: who left which day untagged; its count opens those files in the search
    summary = aud.get("/reports/untagged", params={"from": "2026-03-01", "to": "2026-03-16"})
    links = re.findall(r'<a class="files" href="([^"]+)">(\d+)</a>', summary.text)
    assert links and sum(int(n) for _, n in links) == len(file_ids) - 1
    for href, n in links:
        assert "flag=untagged" in href and f"device=%22{rec.device_number}%22" in href
        listed = aud.get(unescape(href))
        assert listed.status_code == 200
        assert re.search(rf'data-total="{n}"', listed.text), (href, n)

    empty = aud.get("/reports/untagged", params={"from": "2025-01-01", "to": "2025-01-02"})
    assert 'class="row"' not in empty.text
    assert aud.get("/reports/nonsense").status_code == 404
    assert aud.get("/reports/usage-device/form").status_code == 404


def test_a_long_report_is_shown_a_page_at_a_time_and_downloaded_whole(
    sign_in: Callable[[str], TestClient], file_ids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser is sent one page of a report (a month of a large station's untagged
    footage is hundreds of thousands of rows); its pager and CSV keep the period."""
    monkeypatch.setattr(report_routes, "PAGE_SIZE", 1)
    aud = sign_in("aud")
    period = {"from": "2026-03-01", "to": "2026-03-16"}
    untagged = sorted(file_ids[1:])
    assert len(untagged) >= 2
    last = len(untagged)
    seen: list[int] = []
    for n in range(1, last + 1):
        html = aud.get("/reports/untagged-files", params={**period, "page": str(n)}).text
        rows = re.findall(r'<tr class="row"><td>(\d+)</td>', html)
        assert len(rows) == 1, n
        seen += map(int, rows)
        assert f'data-total="{last}"' in html and f"page {n} of {last}" in html
        assert ('rel="next"' in html) == (n < last) and ('rel="prev"' in html) == (n > 1)
        assert re.findall(r'class="page current"[^>]*>(\d+)<', html) == [str(n)]
    assert sorted(seen) == untagged

    first = aud.get("/reports/untagged-files", params=period).text
    found = re.search(r'rel="next" href="([^"]+)"', first)
    assert found is not None
    following = aud.get(unescape(found.group(1))).text  # the pager's own link
    assert re.findall(r'<tr class="row"><td>(\d+)</td>', following) == [str(seen[1])]
    assert f"page 2 of {last}" in following
    csv_link = re.search(r'id="csv" href="([^"]+)"', following)
    assert csv_link is not None and "page=" not in csv_link.group(1)
    lines = aud.get(unescape(csv_link.group(1))).content.decode("utf-8-sig").splitlines()
    assert sorted(int(line.split(",")[0]) for line in lines[1:]) == untagged

    past = aud.get("/reports/untagged-files", params={**period, "page": "99"}).text
    assert re.findall(r'<tr class="row"><td>(\d+)</td>', past) == [str(seen[-1])]
    assert f"page {last} of {last}" in past
    for bad in ("0", "x"):
        wrong = aud.get("/reports/untagged", params={**period, "page": bad})
        assert wrong.status_code == 400 and "page" in wrong.text, bad

    # the upcoming deletions decide only a page's files: the pages are the CSV's rows
    months = {"to": "2026-10-01"}  # the month the clips' retention ends in, and before
    lines = aud.get("/reports/upcoming.csv", params=months).content.decode("utf-8-sig")
    coming = [line.split(",")[0] for line in lines.splitlines()[1:]]
    assert sorted(map(int, coming)) == untagged  # K-1's clip waits for its case
    paged = []
    for n in range(1, len(coming) + 1):
        html = aud.get("/reports/upcoming", params={**months, "page": str(n)}).text
        assert f'data-total="{len(coming)}"' in html and f"page {n} of {len(coming)}" in html
        paged += re.findall(r'<tr class="row"><td>(\d+)</td>', html)
    assert paged == coming


def test_a_recording_form_of_more_files_than_it_is_made_for_is_refused_whole(
    sign_in: Callable[[str], TestClient], file_ids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The printable form is evidence: never a part of the files passed off as all of
    them; the reader is told how many there are and what to do."""
    aud = sign_in("aud")
    period = {"from": "2026-03-01", "to": "2026-03-16"}
    untagged = len(file_ids) - 1
    monkeypatch.setattr(report_routes, "FORM_MAX_FILES", untagged - 1)
    refused = aud.get("/reports/untagged-files/form", params=period)
    assert refused.status_code == 400
    assert f"names {untagged} files" in refused.text and "shorter period" in refused.text
    assert 'class="form-row"' not in refused.text
    monkeypatch.setattr(report_routes, "FORM_MAX_FILES", untagged)
    whole = aud.get("/reports/untagged-files/form", params=period)
    assert whole.status_code == 200
    assert len(re.findall(r'<tr class="form-row">', whole.text)) == untagged


# ------------------------------------------------------------------ exports


def make(client: TestClient, number: int, *, token: str | None = "") -> Any:
    """Press "Make the package" (``token=None``: a form without its CSRF token)."""
    if token == "":
        token = csrf(client.get("/exports").text)
    data = {} if token is None else {"csrf_token": token}
    return client.post(f"/exports/{number}/make", data=data)


def granted(olga: TestClient, lena: TestClient, leo: TestClient) -> int:
    number = ask_export(olga)
    assert decide(lena, number, "approve")[0] == decide(leo, number, "approve")[0] == 303
    return number


def events(ledger: Ledger, action: str) -> list[AuditEvent]:
    with ledger.read() as s:
        q = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(s.scalars(q))


def ids(found: list[AuditEvent]) -> list[int]:
    return [e.id for e in found]


PACKAGES = "packages"  # web_config's [web] exports, under the test's tmp_path


def kept_dirs(config: Config) -> list[Path]:
    assert not (config.store.root.parent / "web-exports").exists()  # not the default place
    root = config.web.exports
    assert root is not None and root.name == PACKAGES
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def test_a_granted_export_is_made_by_one_post_and_its_zip_downloaded_without_registering_more(
    sign_in: Callable[[str], TestClient], web_ledger: Ledger, web_config: Config,
    file_ids: list[int], tmp_path: Path,
) -> None:  # fmt: skip
    olga, lena, leo = sign_in("olga"), sign_in("lena"), sign_in("leo")
    number = ask_export(olga)
    assert make(olga, number).status_code == 403  # not yet granted
    assert decide(lena, number, "approve")[0] == decide(leo, number, "approve")[0] == 303

    # Before it is made there is nothing to download, and asking twice makes nothing.
    for _ in range(2):
        none_yet = olga.get(f"/exports/{number}/file")
        assert none_yet.status_code == 404
        assert "make it first" in none_yet.text
    page = olga.get("/exports").text
    assert f'action="/exports/{number}/make"' in page and "Make the package" in page
    assert f'href="/exports/{number}/file"' not in page
    # A form without its CSRF token, and someone other than the grantee, are refused.
    assert make(olga, number, token=None).status_code == 403
    theirs = make(lena, number)
    assert theirs.status_code == 404 and f"lena has no export request {number}" in theirs.text
    assert events(web_ledger, "file.export") == [] and kept_dirs(web_config) == []

    made = make(olga, number)
    assert made.status_code == 303
    assert made.headers["location"] == f"/exports?packaged={number}"
    exported = events(web_ledger, "file.export")
    assert [int(e.subject_id) for e in exported] == file_ids[:1]
    details = json.loads(exported[0].details)
    assert (details["grant"], details["by"], details["export_case"]) == (number, "olga", "K-1")
    (kept,) = kept_dirs(web_config)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((kept / f"export-{number}.zip").stat().st_mode) == 0o600

    page = olga.get(made.headers["location"]).text
    assert 'id="export-packaged"' in page
    assert f'href="/exports/{number}/file"' in page
    shown = re.search(r'<code class="sha256">([0-9a-f]{64})</code>', page)
    assert shown is not None

    # A reload, a prefetch, a retry: every GET reads the same registered package.
    first, second = olga.get(f"/exports/{number}/file"), olga.get(f"/exports/{number}/file")
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == "application/zip"
    assert f'filename="export-{number}.zip"' in first.headers["content-disposition"]
    assert first.content == second.content
    assert hashlib.sha256(first.content).hexdigest() == shown.group(1)
    assert f'data-bytes="{len(first.content)}"' in page
    head = olga.head(f"/exports/{number}/file")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(first.content)
    part = olga.get(f"/exports/{number}/file", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == first.content[:100]
    assert olga.get(f"/exports/{number}/download").status_code in (404, 405)  # the old GET
    assert lena.get(f"/exports/{number}/file").status_code == 404  # not hers
    assert ids(events(web_ledger, "file.export")) == ids(exported)  # nothing registered again
    downloads = events(web_ledger, "export.downloaded")
    assert [(e.actor, e.subject_id) for e in downloads] == [("olga", str(number))] * 3
    assert json.loads(downloads[0].details)["export_id"] == details["export_id"]

    with zipfile.ZipFile(io.BytesIO(first.content)) as zf:
        zf.extractall(tmp_path / "unzipped")
    bag = bagit.Bag(str(tmp_path / "unzipped" / f"export-{number}"))
    bag.validate()
    assert bag.info["Extracted-By"] == "olga"
    assert bag.info["Approved-By"] == "lena, leo"
    assert bag.info["Access-Grant"] == str(number)
    assert bag.info["Case-Number"] == "K-1"
    assert len(bag.payload_entries()) == 1
    assert (tmp_path / "unzipped" / f"export-{number}" / "recording-form.html").is_file()


def test_each_make_under_a_grant_in_force_registers_one_export_and_keeps_only_the_newest(
    sign_in: Callable[[str], TestClient], web_ledger: Ledger, web_config: Config
) -> None:
    """A grant is used as often as it is in force until it expires (as by ``dockd export``);
    each package made is one export in the register, and the web keeps the newest."""
    olga = sign_in("olga")
    number = granted(olga, sign_in("lena"), sign_in("leo"))
    assert make(olga, number).status_code == 303
    (first,) = kept_dirs(web_config)
    assert make(olga, number).status_code == 303
    exported = events(web_ledger, "file.export")
    assert len({json.loads(e.details)["export_id"] for e in exported}) == 2
    assert len(exported) == 2
    (second,) = kept_dirs(web_config)
    assert second != first
    got = olga.get(f"/exports/{number}/file")
    assert got.status_code == 200 and len(events(web_ledger, "file.export")) == 2


def test_an_expired_export_grant_makes_nothing_and_its_package_is_no_longer_handed_out(
    sign_in: Callable[[str], TestClient], web_ledger: Ledger, web_config: Config,
    clock: FixedClock,
) -> None:  # fmt: skip
    olga = sign_in("olga")
    number = granted(olga, sign_in("lena"), sign_in("leo"))
    assert make(olga, number).status_code == 303
    assert len(kept_dirs(web_config)) == 1
    clock.advance(timedelta(hours=168, minutes=1))  # [access] grant_hours.export
    olga = sign_in("olga")  # her session idled out meanwhile
    assert f'data-request-id="{number}" data-state="expired"' in olga.get("/exports").text
    refused = make(olga, number)
    assert refused.status_code == 403 and "expired" in refused.text
    gone = olga.get(f"/exports/{number}/file")
    assert gone.status_code == 403 and "no longer handed out" in gone.text
    assert kept_dirs(web_config) == []  # the zip did not outlive its grant
    assert len(events(web_ledger, "file.export")) == 1  # the one made in time
    expired = events(web_ledger, "access.expired")
    assert [(e.actor, e.subject_id) for e in expired] == [("olga", str(number))]


def test_an_export_request_without_a_reason_or_of_an_unknown_case_is_refused(
    sign_in: Callable[[str], TestClient],
) -> None:
    olga = sign_in("olga")
    token = csrf(olga.get("/exports").text)
    for data in ({"case": "K-1", "reason": " "}, {"case": "NOPE", "reason": "why"},
                 {"files": "1, x", "reason": "why"}):  # fmt: skip
        answer = olga.post("/exports/request", data={"csrf_token": token, **data})
        assert answer.status_code == 400
        assert 'id="export-error"' in answer.text
    aud = sign_in("aud")
    answer = aud.post("/exports/request", data={"csrf_token": csrf(aud.get("/exports").text),
                                                 "case": "K-1", "reason": "why"})  # fmt: skip
    assert answer.status_code == 403


# ------------------------------------------------------------------ station


def _dock_one(status_file: Path, device: str) -> None:
    """The daemon's board writes what one bay shows: a recorder copying 1 of 3 files."""
    bays = (BayConfig(name="Bay 1", id_path="pci-0000:00:14.0-usb-0:1:1.0"),)
    ticks = itertools.count(0.0, 1.0)  # a second between updates: each is written
    board = StatusBoard(
        bays, path=status_file, station="st-test", tz=ZoneInfo("Asia/Shanghai"),
        mono=lambda: next(ticks),
    )  # fmt: skip
    board.start()
    event = BlockEvent(
        "add", "/devices/x/sdx1", "/dev/sdx1", "sdx1", "block", "partition",
        {"ID_FS_TYPE": "vfat", "ID_PATH": "pci-0000:00:14.0-usb-0:1:1.0"},
    )  # fmt: skip
    board.seen(1, event)
    board.identified(1, device, "Zhang Wei", 7)
    board.copying(1, 3, 3000)
    board.file_done(1)


def test_the_station_page_shows_the_docks_the_daemon_wrote_and_polls_them(
    sign_in: Callable[[str], TestClient],
    status_file: Path,
    rec: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RUNTIME_ENV, str(status_file.parent))
    dora = sign_in("dora")
    first = dora.get("/station")
    assert first.status_code == 200
    assert 'id="docks-problem"' in first.text  # nothing written yet: said so
    assert 'hx-get="/station/docks"' in first.text
    assert '<tr class="check error" data-check="daemon">' in first.text

    _dock_one(status_file, rec.device_number)
    daemon = FileLock(status_file.parent / LOCK_NAME)
    assert daemon.try_acquire("dockd run")  # as `dockd run` holds it, beside its board
    try:
        page = dora.get("/station").text
        part = dora.get("/station/docks", headers={"HX-Request": "true"})
    finally:
        daemon.release()
    assert 'data-bay="Bay 1"' in page and rec.device_number in page and "Zhang Wei" in page
    assert '<tr class="check ok" data-check="ledger">' in page
    assert '<tr class="check ok" data-check="daemon">' in page  # the board's process: this one
    assert 'id="alerts"' in page

    assert part.status_code == 200
    assert "<html" not in part.text  # the part alone, swapped in place
    assert 'class="bay state-copying"' in part.text, part.text
    assert '<td class="progress">1/3 (0%)</td>' in part.text
    assert "Live" in part.text

    olga = sign_in("olga")
    assert olga.get("/station").status_code == 403
    assert olga.get("/station/docks").status_code == 403
    aud = sign_in("aud")
    seen = aud.get("/station")
    assert seen.status_code == 200 and 'id="sweeps"' in seen.text
    assert 'id="docks"' not in seen.text  # `dockd status` is not an auditor's
