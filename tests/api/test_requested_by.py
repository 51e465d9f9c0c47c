"""Who asked and who handled an erasure request: the API key's name over HTTP, recorded with
the request, in its audit entry, its JSON and HTML report (issue 14, item 6)."""

from __future__ import annotations

import hashlib
import socket

import pytest

import forget
from api.auth import ApiKeyConfigError, ApiKeys
from tests.api.conftest import DPO_TOKEN, TOKENS, Server, auth
from tests.store.helpers import VICTIM


def test_keys_may_be_named_and_unnamed_keys_get_a_fingerprint():
    keys = ApiKeys.from_json(
        '{"tok-plain": ["predict"], "tok-named": {"name": "dpo@acme", "scopes": ["erase"]}}'
    )
    assert keys.principal("Bearer tok-named") == ("dpo@acme", frozenset({"erase"}))
    name, scopes = keys.principal("Bearer tok-plain") or ("", frozenset())
    assert name == "key-" + hashlib.sha256(b"tok-plain").hexdigest()[:8]
    assert "tok-plain" not in name and scopes == frozenset({"predict"})
    assert keys.principal("Bearer nope") is None
    assert ApiKeys.unauthenticated().principal(None) == ("local-demo", frozenset({"admin"}))


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"tok-a": {"scopes": ["erase"]}}', "name"),
        ('{"tok-a": {"name": "a b", "scopes": ["erase"]}}', "1 to 64"),
        ('{"tok-a": {"name": "x" , "scopes": ["erase"], "role": 1}}', "fields"),
        ('{"tok-a": {"name": "x", "scopes": ["root"]}}', "unknown or empty scopes"),
        ('{"tok-a": {"name": "x", "scopes": ["erase"]}, "tok-b": {"name": "x", "scopes": []}}',
         "unknown or empty scopes"),
        ('{"tok-a": {"name": "x", "scopes": ["erase"]}, '
         '"tok-b": {"name": "x", "scopes": ["audit"]}}',
         "same name"),
    ],
)  # fmt: skip
def test_bad_named_keys_are_refused_with_a_message(text, says):
    with pytest.raises(ApiKeyConfigError, match=says):
        ApiKeys.from_json(text)


def test_an_http_erasure_records_the_key_name_and_the_handler(server: Server):
    c = server.client
    r = c.post(
        "/v1/erasure-requests",
        json={"subject_id": VICTIM, "legal_ground": "art17-1-b"},
        headers={"Authorization": f"Bearer {DPO_TOKEN}"},
    )
    assert r.status_code in (201, 202), r.text
    receipt = r.json()
    handler = f"forget {forget.__version__} (http) on {socket.gethostname()}"
    assert receipt["requested_by"] == "dpo-portal" and receipt["handled_by"] == handler
    rid = receipt["request_id"]
    got = c.get(f"/v1/erasure-requests/{rid}", headers=auth("audit")).json()
    assert got["requested_by"] == "dpo-portal" and got["handled_by"] == handler
    report = c.get(f"/v1/erasure-requests/{rid}/report", headers=auth("audit")).json()
    assert report["requested_by"] == "dpo-portal" and report["handled_by"].startswith(handler)
    page = c.get(
        f"/v1/erasure-requests/{rid}/report",
        headers=auth("audit") | {"Accept": "text/html"},
    ).text
    assert "dpo-portal" in page and handler in page and VICTIM not in page
    # an unnamed key is recorded by its fingerprint
    r = c.post(
        "/v1/erasure-requests",
        json={"subject_id": "nobody-0", "legal_ground": "art17-1-b"},
        headers=auth("erase"),
    )
    fingerprint = "key-" + hashlib.sha256(TOKENS["erase"].encode()).hexdigest()[:8]
    assert r.json()["requested_by"] == fingerprint
