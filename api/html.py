"""Erasure reports as a page a data-protection officer reads in a browser.

Every value is escaped; the page has no scripts and no external resources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}code{font-size:.85rem;word-break:break-all}
.ok{color:#176117}.warn{color:#9a5b00}
"""


def _cell(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return f"<code>{escape(json.dumps(value, sort_keys=True, default=str))}</code>"
    return escape("—" if value is None else str(value))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _facts(pairs: Sequence[tuple[str, Any]]) -> str:
    return _table([{"item": k, "value": v} for k, v in pairs], ["item", "value"])


def erasure_report(report: Mapping[str, Any]) -> str:
    """The HTML page of one erasure report (the JSON of :func:`store.reports.erasure_report`)."""
    status = str(report.get("status"))
    css = "ok" if status == "completed" else "warn"
    head = report.get("audit_chain_head") or {}
    purge = report.get("physical_purge") or {}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Erasure report {escape(str(report.get('request_id')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Erasure report <code>{escape(str(report.get('request_id')))}</code></h1>",
        f"<p>Status: <strong class='{css}'>{escape(status)}</strong>: "
        f"{escape(str(report.get('status_text', '')))}</p>",
        "<h2>Request</h2>",
        _facts(
            [
                ("Subject (pseudonym)", report.get("subject_key")),
                ("Legal ground", report.get("legal_ground")),
                ("Ground in words", report.get("legal_ground_text")),
                ("Received", report.get("received_at")),
                ("Rows deleted, models forgot", report.get("erased_at")),
                ("Completed", report.get("completed_at")),
                ("Deadline, Art. 12(3)", report.get("deadline_art12_3")),
                ("Rows erased in all", report.get("rows_erased")),
            ]
        ),
        "<h2>Datasets</h2>",
        _table(report.get("datasets", []), ["dataset", "rows_deleted"]),
        "<h2>Models</h2>",
        _table(
            report.get("models", []),
            ["model", "version", "new_revision", "action_text", "guarantee", "evidence"],
        ),
        f"<p>{escape(str(report.get('evidence_policy', '')))}</p>",
        "<h2>Physical erasure</h2>",
        _facts([("Purged at", purge.get("purged_at")), ("Method", purge.get("method"))]),
        "<h2>Audit trail</h2>",
        _table(report.get("audit_entries", []), ["seq", "ts", "kind", "entry_hash", "payload"]),
        f"<p>Chain head: entry {escape(str(head.get('seq')))}, "
        f"<code>{escape(str(head.get('entry_hash')))}</code>. Keep it outside the store to "
        "prove later that no entry was removed.</p>",
        "</body></html>",
    ]
    return "".join(parts)
