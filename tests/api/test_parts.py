"""The API's parts on their own: tokens, metrics text, the HTML report, content negotiation."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import html
from api.auth import ApiKeyConfigError, ApiKeys, allows
from api.errors import _kind, status_of
from api.metrics import Metrics
from api.routes.erasure import _prefers_html
from store import errors as se


def test_tokens_and_scopes():
    keys = ApiKeys.from_mapping({"tok-a": ["predict"], "tok-b": ["admin"], "tok-c": ["audit"]})
    assert keys.scopes("Bearer tok-a") == {"predict"}
    assert keys.scopes("bearer   tok-b ") == {"admin"}
    for bad in (None, "", "tok-a", "Basic tok-a", "Bearer ", "Bearer tok-", "Bearer tok-aa"):
        assert keys.scopes(bad) is None
    assert allows(frozenset({"admin"}), "erase") and allows(frozenset({"erase"}), "erase")
    assert not allows(frozenset({"predict"}), "erase")
    # only hashes are kept
    assert "tok-a" not in repr(keys) and b"tok-a" not in b"".join(h for h, _ in keys.hashes)


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"ab": ["admin"]}', '{"tok-1": []}', '{"tok-1": ["sudo"]}', '{"tok-1": "admin"}'],
)
def test_bad_key_configs_are_refused(text: str):
    with pytest.raises(ApiKeyConfigError):
        ApiKeys.from_env({"FORGET_API_KEYS": text})


def test_missing_key_config_is_refused():
    with pytest.raises(ApiKeyConfigError, match="not set"):
        ApiKeys.from_env({})


def test_unauthenticated_keys_grant_admin():
    assert ApiKeys.unauthenticated().scopes(None) == {"admin"}


def test_metrics_text_format():
    m = Metrics()
    m.inc("http_requests_total", {"route": "/v1/x", "status": "200", "method": "GET"})
    m.inc("http_requests_total", {"route": "/v1/x", "status": "200", "method": "GET"})
    m.set("forget_model_revision", {"model": 'we"ird\nname', "version": "1"}, 3)
    for v in (0.0002, 0.003, 20.0):
        m.observe("http_request_duration_seconds", {"route": "/v1/x"}, v)
    text = m.render()
    assert 'http_requests_total{method="GET",route="/v1/x",status="200"} 2' in text
    assert 'forget_model_revision{model="we\\"ird\\nname",version="1"} 3' in text
    assert 'http_request_duration_seconds_bucket{le="0.0005",route="/v1/x"} 1' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",route="/v1/x"} 2' in text
    assert 'http_request_duration_seconds_bucket{le="+Inf",route="/v1/x"} 3' in text
    assert 'http_request_duration_seconds_count{route="/v1/x"} 3' in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    line = re.compile(r'^(#.*|[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? [0-9.e+-]+)$')
    assert all(line.match(x) for x in text.strip().splitlines())


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@given(st.text())
def test_the_html_report_escapes_every_value(value: str):
    report = {
        "request_id": value,
        "status": value,
        "subject_key": value,
        "datasets": [{"dataset": value, "rows_deleted": 1}],
        "models": [{"model": value, "evidence": {"k": value}}],
        "audit_entries": [{"seq": 1, "kind": value, "payload": {"x": value}}],
        "audit_chain_head": {"seq": 1, "entry_hash": value},
    }
    parser = _Tags()
    parser.feed(html.erasure_report(report))
    parser.close()
    # whatever the values hold, the page has only its own markup, and shows them as text
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "strong"}
    layout = {"code", "table", "tr", "th", "td", "thead", "tbody", "col", "colgroup", "dl", "dt"}
    layout |= {"dd", "div", "span", "ul", "li", "main", "header", "footer", "section"}
    assert parser.tags <= allowed | layout
    assert f"Erasure report {value}" in "".join(parser.text).replace("\r\n", "\n") or "\r" in value


@pytest.mark.parametrize(
    ("accept", "html_wanted"),
    [
        (None, False),
        ("application/json", False),
        ("*/*", False),
        ("text/html", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json, text/html", False),
    ],
)
def test_content_negotiation(accept: str | None, html_wanted: bool):
    assert _prefers_html(accept) is html_wanted


def test_errors_map_to_statuses_in_one_place():
    assert status_of(se.UnknownModelError("m")) == 404
    assert status_of(se.DatasetExistsError("d")) == 409
    assert status_of(se.InvalidLegalGroundError("x")) == 422
    assert status_of(se.StoreCorruptError("x")) == 500
    assert status_of(RuntimeError("x")) == 500
    assert _kind(se.UnknownModelError("m")) == "unknown_model"
    assert _kind(se.PredictInputError("m")) == "predict_input"
