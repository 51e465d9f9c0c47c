"""The HTML erasure report: what it says, how it escapes, and how a real browser lays it out."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import html
from bench.report_screenshot import browser, build_report, pdf_pages, print_pdf
from store import ModelStore
from tests.store.helpers import VICTIM, populate

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = browser()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH (apt-get install chromium)"
)


_BLOCKS = frozenset({"p", "li", "dt", "dd", "th", "td", "h1", "h2", "tr", "div", "section"})


class Page(HTMLParser):
    """The tags, attributes and text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in _BLOCKS:  # as a browser shows them: apart
            self.chunks.append(" ")

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.chunks))

    def titles(self, cls: str) -> list[str]:
        return [str(a.get("title")) for _, a in self.tags if cls in (a.get("class") or "").split()]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A completed request of three models: two forgot exactly, one was retrained."""
    return build_report(tmp_path_factory.mktemp("report") / "store")


@pytest.fixture
def tampered(tmp_path: Path) -> Iterator[ModelStore]:
    """A store with one erasure, whose audit entry of it was then edited."""
    st = ModelStore.open(tmp_path / "store")
    try:
        populate(st)
        st.erase(VICTIM, legal_ground="art17-1-a")
        st._db.execute(
            "UPDATE audit_log SET payload_json = replace(payload_json, '\"rows\":2', "
            "'\"rows\":1') WHERE kind = 'erasure.committed'"
        )
        yield st
    finally:
        st.close()


def test_no_raw_subject_id_anywhere(report: dict[str, Any]) -> None:
    page = html.erasure_report(report)
    assert VICTIM not in page and VICTIM not in str(report)
    assert report["subject_key"] in page  # the pseudonym, whole, once


def test_the_chain_verification_and_its_head_are_stated(report: dict[str, Any]) -> None:
    page = Page(html.erasure_report(report))
    v = report["audit_verification"]
    assert v["verified"] is True and v["head"] == report["audit_chain_head"]
    assert "Audit chain verified" in page.text
    assert f"Chain head: entry {v['head']['seq']}, {v['head']['entry_hash']}" in page.text
    assert "FAILED" not in page.text


def test_a_chain_that_fails_is_the_first_thing_the_page_says(tampered: ModelStore) -> None:
    (rid,) = [q for (q,) in tampered._db.all("SELECT request_id FROM erasure_requests")]
    report = tampered.erasure_report(rid)
    text = Page(html.erasure_report(report)).text
    failed = text.index("THE AUDIT CHAIN FAILED VERIFICATION: do not rely on this report")
    assert failed < text.index("The request") and "Audit chain verified" not in text
    assert "is not the keyed hash of the entry" in text  # the problem, in the verifier's words
    # every entry of the request is at or after the edited one: each is marked
    assert text.count("not verified") == len(report["audit_entries"]) > 0


def test_every_model_action_and_its_evidence_in_words(report: dict[str, Any]) -> None:
    text = Page(html.erasure_report(report)).text
    actions = {m["action"] for m in report["models"]}
    assert actions == {"exact_unlearning", "pending_retrain", "retrain"}
    for m in report["models"]:
        assert f"{m['model']} v{m['version']}" in text
        assert f"{m['action_label']}: {m['action_text']}" in text
        assert m["evidence_text"] in text
    assert "retrain check passed: outputs identical to a retrain without the rows" in text
    assert "not served until retrained: deletion budget exhausted" in text
    assert "refitted from scratch on the" in text
    # no evidence as a JSON blob, no code names where words belong
    assert '{"' not in text and "'method'" not in text and "exact_unlearning:" not in text


def test_the_request_in_words(report: dict[str, Any]) -> None:
    text = Page(html.erasure_report(report)).text
    assert "Art. 17(1)(b): consent withdrawn" in text
    assert "completed" in text and report["status_text"] in text
    assert re.search(r"met: completed \d+ days before the deadline", text)
    assert "2 rows deleted from 1 dataset" in text and "Purged " in text
    assert "Requested by not given: filed through forget's Python API" in text
    assert "Handled by forget " in text and "(python)" in text
    assert "Reviewed and filed by" in text


def test_hashes_are_shortened_with_the_full_value_in_their_title(report: dict[str, Any]) -> None:
    source = html.erasure_report(report)
    page = Page(source)
    hashes = [e["entry_hash"] for e in report["audit_entries"]]
    assert page.titles("hash") == hashes
    head = report["audit_chain_head"]["entry_hash"]
    for h in hashes:
        assert html.short(h) in page.text and (h not in page.text or h == head)
    # long values wrap instead of widening their table, and tables have fixed layouts
    assert "overflow-wrap: anywhere" in source and "table-layout: fixed" in source


def test_the_print_stylesheet_sets_a4_pages() -> None:
    css = (ROOT / "api" / "templates" / "report.css").read_text()
    assert "@page { size: A4;" in css and "@media print" in css
    assert "break-inside: avoid" in css and "print-color-adjust: exact" in css


def test_no_data_says_nothing_was_erased(tmp_path: Path) -> None:
    with ModelStore.open(tmp_path / "store") as st:
        populate(st)
        r = st.erase("nobody-at-all", legal_ground="art17-1-a")
        text = Page(html.erasure_report(st.erasure_report(r.request_id))).text
    assert "no data found" in text and "held no data under this subject id" in text
    assert "Nothing to purge" in text and "nothing erased" in text and "nobody" not in text


def test_the_deadline_says_met_open_overdue_or_missed(tmp_path: Path) -> None:
    with ModelStore.open(tmp_path / "store") as st:
        populate(st)
        r = st.erase(VICTIM, legal_ground="art17-1-a", purge=False)

        def page() -> str:
            return Page(html.erasure_report(st.erasure_report(r.request_id))).text

        assert re.search(r"— open: \d+ days left", page())
        st._db.execute(
            "UPDATE erasure_requests SET received_at = '2020-03-01T00:00:00.000000+00:00'"
        )
        assert re.search(r"2020-04-01 00:00:00 UTC — OVERDUE by \d+ days", page())
        st.purge()
        assert re.search(r"— MISSED: completed \d+ days after the deadline", page())


def test_a_report_without_a_verification_says_it_was_not_verified() -> None:
    text = Page(html.erasure_report({"request_id": "er_1", "status": "completed"})).text
    assert "The audit chain was not verified for this report" in text


BENIGN = {
    "request_id": "er_0",
    "status": "completed",
    "subject_key": "sk_0",
    "datasets": [{"dataset": "d", "rows_deleted": 1}],
    "models": [{"model": "m", "evidence": {"k": "v"}, "evidence_text": "t"}],
    "audit_entries": [{"seq": 1, "kind": "k", "payload": {"x": "v"}, "entry_hash": "h"}],
    "audit_chain_head": {"seq": 1, "entry_hash": "h"},
    "audit_verification": {"verified": False, "problems": ["p"], "head": {"seq": 1}},
}


def _with(value: str) -> dict[str, Any]:
    return {
        "request_id": value,
        "status": value,
        "status_text": value,
        "subject_key": value,
        "legal_ground_text": value,
        "datasets": [{"dataset": value, "rows_deleted": value}],
        "models": [{"model": value, "evidence": {value: value}, "evidence_text": value}],
        "audit_entries": [
            {"seq": 1, "kind": value, "payload": {value: value}, "entry_hash": value}
        ],
        "audit_chain_head": {"seq": 1, "entry_hash": value},
        "audit_verification": {"verified": False, "problems": [value], "head": {"seq": 1}},
    }


@given(st.text() | st.sampled_from(["<script>alert(1)</script>", "\"'><b>", "{{ 7*7 }}"]))
def test_values_are_text_never_markup(value: str) -> None:
    """Whatever the values hold, the page has exactly the markup of a page of plain values,
    and shows each value as text."""
    page = Page(html.erasure_report(_with(value)))
    plain = Page(html.erasure_report(BENIGN))
    assert {t for t, _ in page.tags} == {t for t, _ in plain.tags}
    assert "script" not in {t for t, _ in page.tags}
    title = re.search(r"<title>(.*?)</title>", html.erasure_report(_with(value)), re.S)
    assert title is not None and unescape(title.group(1)) == f"Erasure report {value}"


def test_the_templates_ship_in_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["api"]
    shipped = sorted((ROOT / "api" / "templates").iterdir())
    assert shipped and all(
        any(fnmatch(str(p.relative_to(ROOT / "api")), pat) for pat in patterns) for p in shipped
    )
    assert any(dep.startswith("jinja2") for dep in project["project"]["dependencies"])


@needs_chromium
def test_a_small_request_prints_on_one_a4_page(report: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(html.erasure_report(report), encoding="utf-8")
    pdf = print_pdf(str(CHROMIUM), page, tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == 1
    assert b"/MediaBox [0 0 594.95996 841.91998]" in pdf  # A4, in points


# Appended to a copy of the page (the report itself has no scripts): measures, in the browser,
# whether anything is wider than the page and how tall the audit rows are.
_MEASURE = """<script>
const d = document.documentElement, rows = [...document.querySelectorAll('tr')];
const wide = [...document.querySelectorAll('body *')].filter(
  e => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > d.clientWidth + 1);
document.body.setAttribute('data-measured', JSON.stringify({
  overflow: d.scrollWidth > d.clientWidth, wide: wide.map(e => e.tagName),
  row: Math.max(...rows.map(r => r.getBoundingClientRect().height)), rows: rows.length}));
</script>"""


@needs_chromium
@pytest.mark.parametrize("width", [794, 600])  # an A4 sheet's CSS width; a narrow window
def test_nothing_overflows_and_audit_rows_stay_short(
    report: dict[str, Any], tmp_path: Path, width: int
) -> None:
    import json
    import subprocess

    page = tmp_path / "report.html"
    page.write_text(html.erasure_report(report).replace("</body>", _MEASURE + "</body>"))
    dom = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},1100",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found is not None, dom[-2000:]
    measured = json.loads(unescape(found.group(1)))
    assert measured["rows"] > len(report["audit_entries"])
    assert not measured["overflow"] and measured["wide"] == [], measured
    assert measured["row"] < 90, measured  # px: a hash no longer makes a row ~600 px tall


def test_the_bench_script_writes_the_page_and_with_chromium_its_images(tmp_path: Path) -> None:
    from bench import report_screenshot

    out = report_screenshot.main(["--out-dir", str(tmp_path)])
    assert Path(out["html"]).read_text(encoding="utf-8").startswith("<!doctype html>")
    if CHROMIUM is None:
        assert out["png"] is None and out["pdf"] is None
    else:
        assert Path(out["png"]).read_bytes().startswith(b"\x89PNG") and out["pdf_pages"] == 1
