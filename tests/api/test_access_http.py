"""The right of access over real HTTP: ``GET``/``POST /v1/subjects/access`` (issue 19)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from api.app import create_app
from api.auth import ApiKeys
from api.server import BackgroundServer
from api.service import Service
from store import ModelStore
from tests.api.conftest import TOKENS, Server, auth
from tests.store.helpers import VICTIM, populate

PATH = "/v1/subjects/access"
HEADER = "Forget-Subject-Id"


class _Tables(HTMLParser):
    """The text of each table cell, by the id of the section the table sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.cells: dict[str, list[str]] = {}
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.section = dict(attrs).get("id")
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.section is not None:
            self.cells.setdefault(self.section, []).append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_access_by_header_and_by_body_answer_the_same(server: Server) -> None:
    c = server.client
    r = c.get(PATH, headers=auth("audit") | {HEADER: VICTIM})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    doc = r.json()
    (ds,) = doc["datasets"]
    assert ds["dataset"] == "people" and ds["rows"] == 2
    assert {rec["subject_id"] for rec in ds["records"]} == {VICTIM}
    assert {(m["model"], m["served"]) for m in doc["models"]} == {("risk", True), ("score", True)}
    posted = c.post(PATH, json={"subject_id": VICTIM}, headers=auth("audit")).json()
    assert posted["datasets"] == doc["datasets"] and posted["models"] == doc["models"]

    page = c.get(PATH, headers=auth("audit") | {HEADER: VICTIM, "Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    same = c.post(
        PATH, params={"format": "html"}, json={"subject_id": VICTIM}, headers=auth("audit")
    )
    assert same.headers["content-type"].startswith("text/html")
    tables = _Tables()
    tables.feed(page.text)
    assert VICTIM in tables.cells["datasets"] and "7341.918273645" in tables.cells["datasets"]
    models = " ".join(tables.cells["models"])
    assert "risk v1" in models and "score v1" in models and "served (default)" in models
    assert "No erasure request names this subject." in page.text

    # after an erasure: no rows, no model trained on them, the request
    rid = c.post(
        "/v1/erasure-requests",
        json={"subject_id": VICTIM, "legal_ground": "art17-1-b"},
        headers=auth("erase"),
    ).json()["request_id"]
    after = c.post(PATH, json={"subject_id": VICTIM}, headers=auth("audit")).json()
    assert after["datasets"] == [] and after["models"] == []
    assert [q["request_id"] for q in after["erasure_requests"]] == [rid]
    assert {f["model"] for f in after["forgotten"]} == {"risk", "score"}
    page = c.post(
        PATH, params={"format": "html"}, json={"subject_id": VICTIM}, headers=auth("audit")
    )
    tables = _Tables()
    tables.feed(page.text)
    assert rid in tables.cells["forgotten"] and rid in tables.cells["requests"]
    assert "No dataset holds rows of this subject." in page.text and VICTIM not in page.text
    assert c.get("/v1/audit/verify", headers=auth("audit")).json()["ok"]


def test_only_audit_scopes_may_ask(shared_server: Server) -> None:
    c = shared_server.client
    for scope in ("predict", "erase"):
        r = c.get(PATH, headers=auth(scope) | {HEADER: VICTIM})
        assert r.status_code == 403 and VICTIM not in r.text, r.text
    assert c.post(PATH, json={"subject_id": VICTIM}).status_code == 401
    assert c.get(PATH, headers=auth("admin") | {HEADER: VICTIM}).status_code == 200


def test_bad_input_is_a_4xx_with_a_message(shared_server: Server) -> None:
    c = shared_server.client
    a = auth("audit")
    cases = [
        (c.get(PATH, headers=a), 422, "forget-subject-id"),  # no header
        (c.get(PATH, headers=a | {HEADER: "nobody-4d2a"}), 404, "no data"),
        (c.post(PATH, json={"subject_id": "nobody-4d2a"}, headers=a), 404, "no data"),
        (c.post(PATH, json={"subject_id": ""}, headers=a), 422, "subject_id"),
        (c.post(PATH, json={"subject_id": 17}, headers=a), 422, "subject_id"),
        (c.post(PATH, json={"subject_id": None}, headers=a), 422, "subject_id"),
        (c.post(PATH, json={}, headers=a), 422, "subject_id"),
        (c.post(PATH, json={"subject_id": VICTIM, "x": 1}, headers=a), 422, "x"),
        (
            c.post(
                PATH, content=b'{"subject_id": ', headers=a | {"content-type": "application/json"}
            ),
            400,
            "not valid JSON",
        ),
        (c.get(PATH, params={"subject_id": VICTIM}, headers=a | {HEADER: VICTIM}), 400, "URL"),
        (c.get(PATH, params={"format": "pdf"}, headers=a | {HEADER: VICTIM}), 422, "format"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, (status, r.text)
        message = r.json()["error"]["message"]
        assert words.lower() in message.lower(), message
        assert VICTIM not in r.text and "nobody-4d2a" not in r.text
    assert c.post(PATH, json={"subject_id": "nobody-4d2a"}, headers=a).json()["error"]["type"] == (
        "unknown_subject"
    )


def test_the_raw_id_is_never_logged(server: Server) -> None:
    c = server.client
    pasted = "alice.access-5e1c@example.org"
    c.get(PATH, headers=auth("audit") | {HEADER: VICTIM})
    c.post(PATH, json={"subject_id": VICTIM}, headers=auth("audit"))
    c.get(PATH, headers=auth("audit") | {HEADER: pasted})
    r = c.get(PATH, params={"subject_id": pasted}, headers=auth("audit"))  # refused, not logged
    assert r.status_code == 400
    time.sleep(0.2)  # the access log line is written after the answer
    log = server.log.read_text()
    assert "GET /v1/subjects/access" in log and "POST /v1/subjects/access" in log
    assert "subject_id={redacted}" in log
    assert VICTIM not in log and pasted not in log and quote(pasted) not in log
    assert VICTIM not in c.get("/metrics").text


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("httpx", "httpcore")):  # the test's client, not the server
            self.lines.append(self.format(record))


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[httpx.Client, _Lines]]:
    """A server in this process whose every log line, at every level, is kept."""
    with ModelStore.open(tmp_path / "store") as st:
        populate(st)
    service = Service.open(tmp_path / "store", purge_interval=0, evidence_rate=0)
    keys = ApiKeys.from_mapping({tok: [scope] for scope, tok in TOKENS.items()})
    bg = BackgroundServer(create_app(service, keys))
    names = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "forget.api", "fastapi")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    handler = _Lines()
    for lg in loggers:
        lg.setLevel(logging.DEBUG)  # after uvicorn configured them (in its Config)
        lg.addHandler(handler)
    try:
        with bg as url, httpx.Client(base_url=url, timeout=30) as client:
            yield client, handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def test_no_log_line_at_any_level_holds_the_id(logged: tuple[httpx.Client, _Lines]) -> None:
    c, handler = logged
    pasted = "bob.access-77a0@example.org"
    assert c.get(PATH, headers=auth("audit") | {HEADER: VICTIM}).status_code == 200
    assert c.post(PATH, json={"subject_id": VICTIM}, headers=auth("audit")).status_code == 200
    assert c.post(PATH, json={"subject_id": pasted}, headers=auth("audit")).status_code == 404
    assert c.get(PATH, params={"subject_id": pasted}, headers=auth("audit")).status_code == 400
    assert c.post(PATH, json={"subject_id": 5}, headers=auth("audit")).status_code == 422
    time.sleep(0.2)
    text = "\n".join(handler.lines)
    assert "access request for subject sk_" in text  # the service logs the pseudonym
    assert text.count("/v1/subjects/access") >= 5  # and the access log each request
    assert VICTIM not in text and pasted not in text and quote(pasted) not in text, text
