"""Erasure reports as a page a data-protection officer prints and files.

:func:`erasure_report` renders the JSON of :func:`store.reports.erasure_report` through the
Jinja2 template ``api/templates/erasure_report.html``, autoescaped: every value of the report is
shown as text, never read as markup. The page has no scripts and no external resources. It
leads with the request's status and the audit chain's verification (a chain that fails is the
first thing on the page), then the request, what was erased where, each model's action and
evidence in words, the physical purge and the request's audit entries, and ends with a
sign-off block. Hashes in tables are shortened to their first and last 8 hex digits, the full
value in the element's ``title`` (and in the JSON report); the chain head, which a reader may
copy to compare later, is printed whole. A print stylesheet lays it out on A4, one page for a
request of a few models.

>>> page = erasure_report({"request_id": "er_00ff", "status": "no_data", "subject_key": "sk_1"})
>>> page.startswith("<!doctype html>"), "<title>Erasure report er_00ff</title>" in page
(True, True)
>>> "audit chain was not verified" in page
True
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import jinja2

TEMPLATE = "erasure_report.html"
_HEXLIKE = re.compile(r"(sk_)?[0-9a-f]{32,}")
_TONE = {"completed": "ok", "no_data": "info", "erased": "warn", "pending": "warn"}
_STATE_LABEL = {
    "passed": "check passed",
    "failed": "CHECK FAILED",
    "scheduled": "check scheduled",
    "not_checked": "not checked",
    "pending": "awaits retrain",
    "retrained": "retrained",
    "retired": "retired",
}
_STATE_TONE = {
    "passed": "ok",
    "retrained": "ok",
    "failed": "bad",
    "scheduled": "warn",
    "pending": "warn",
}
# what the page says once at the top, and so leaves out of each audit entry's details
_SAID_ABOVE = frozenset({"request_id", "subject_key"})
_VERSION_KEYS = frozenset({"model", "version", "revision"})
_EVENTS = {
    "erasure.committed": "erasure committed: rows deleted, models forgot",
    "erasure.model_action": "model action",
    "erasure.evidence_recorded": "retrain check recorded",
    "erasure.erased": "every model forgot",
    "erasure.purged": "physically purged",
    "erasure.completed": "request completed",
    "model.pending_retrain": "model set to await a retrain",
    "model.retrained": "model retrained",
    "model.retired": "model retired",
    "model.retrain_failed": "retrain failed",
}


@cache
def _environment() -> jinja2.Environment:
    # autoescape on for every template, whatever its name: values are text, never markup;
    # StrictUndefined makes a misspelt name in a template an error in the tests, not a blank
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("api", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short"] = short
    env.filters["when"] = when
    return env


def erasure_report(report: Mapping[str, Any]) -> str:
    """The HTML page of one erasure report (the JSON of :func:`store.reports.erasure_report`).

    Keys the report lacks show as a dash, and a report without ``audit_verification`` says
    that its chain was not verified.
    """
    return _environment().get_template(TEMPLATE).render(page=_page(report))


def _recipient(n: Mapping[str, Any]) -> dict[str, Any]:
    """One exported copy the erasure made stale (Art. 19), in words."""
    held = (
        f"{n.get('model')} v{n.get('version')}, revision {n.get('exported_revision')}, "
        f"exported {str(n.get('exported_at'))[:10]}"
    )
    if n.get("replaced_by"):
        done = f"replaced by revision {n.get('new_revision')} on {str(n.get('replaced_at'))[:10]}"
        return {"name": n.get("recipient"), "held": held, "state": done, "tone": "ok"}
    todo = f"to notify: re-export revision {n.get('new_revision')}"
    return {"name": n.get("recipient"), "held": held, "state": todo, "tone": "warn"}


def _page(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the template shows, worked out from the report: words, tones, shortened hashes."""
    status = str(report.get("status"))
    generated = report.get("generated_at")
    models = [_model(m) for m in report.get("models") or []]
    datasets = [
        {"name": d.get("dataset"), "rows": d.get("rows_deleted")}
        for d in report.get("datasets") or []
    ]
    purge = report.get("physical_purge") or {}
    entries = [_entry(e) for e in report.get("audit_entries") or []]
    return {
        "request_id": str(report.get("request_id")),
        "generated_at": generated,
        "status": {
            "code": status,
            "label": report.get("status_label") or status,
            "text": report.get("status_text") or "",
            "tone": _TONE.get(status, "warn"),
        },
        "brief": _brief(report, models, datasets, purge),
        "chain": _chain(report),
        "subject_key": report.get("subject_key"),
        "ground": _ground(report),
        "received_at": report.get("received_at"),
        "erased_at": None if status == "no_data" else report.get("erased_at"),
        "completed_at": report.get("completed_at"),
        "deadline": report.get("deadline_art12_3"),
        "deadline_text": _deadline(report, status, generated),
        "requested_by": report.get("requested_by") or "not recorded",
        "handled_by": report.get("handled_by") or "not recorded",
        "datasets": datasets,
        "rows_erased": report.get("rows_erased"),
        "models": models,
        "recipients": [_recipient(n) for n in report.get("recipients") or []],
        "evidence_policy": report.get("evidence_policy") or "",
        "purge": _purge(status, purge),
        "entries": entries,
        "entries_day": _one_day(entries),
    }


def short(value: object) -> str:
    """A long hash (or keyed pseudonym) as its first and last 8 digits; anything else as is.

    >>> short("ab" * 32), short("sk_" + "0" * 64), short("er_0123")
    ('abababab…abababab', 'sk_00000000…00000000', 'er_0123')
    """
    text = str(value)
    if not _HEXLIKE.fullmatch(text):
        return text
    head = 11 if text.startswith("sk_") else 8
    return f"{text[:head]}…{text[-8:]}"


def when(value: object) -> str:
    """A store timestamp to the second, in UTC; a dash for none.

    >>> when("2025-03-04T05:06:07.891011+00:00"), when(None), when("soon")
    ('2025-03-04 05:06:07 UTC', '—', 'soon')
    """
    if value is None:
        return "—"
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    zone = "UTC" if t.utcoffset() is not None and not t.utcoffset() else t.strftime("%z")
    return f"{t:%Y-%m-%d %H:%M:%S} {zone}".rstrip()


def _sentence(text: object) -> str:
    """``text`` with a capital first letter (the JSON's phrases start in lower case)."""
    out = "" if text is None else str(text)
    return out[:1].upper() + out[1:]


def _plural(n: object, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _model(m: Mapping[str, Any]) -> dict[str, Any]:
    state = str(m.get("evidence_state") or "not_checked")
    seconds = m.get("forget_seconds")
    return {
        "name": m.get("model"),
        "version": m.get("version"),
        "revision": m.get("new_revision"),
        "ms": f"{seconds * 1e3:.1f} ms" if isinstance(seconds, int | float) else None,
        "action_label": m.get("action_label") or m.get("action") or "—",
        "action_text": m.get("action_text") or "",
        "state": state,
        "state_label": _STATE_LABEL.get(state, state),
        "tone": _STATE_TONE.get(state, "muted"),
        "evidence_text": m.get("evidence_text") or _listed(m.get("evidence")),
    }


def _listed(value: object) -> str:
    """A payload or an evidence mapping as ``key: value`` pairs (hashes shortened)."""
    if isinstance(value, Mapping):
        pairs = sorted(value.items(), key=str)
        return "; ".join(f"{k}: {_listed(v)}" for k, v in pairs) if pairs else "none"
    if isinstance(value, list | tuple):
        return ", ".join(_listed(v) for v in value) if value else "none"
    return "—" if value is None else short(value)


_CHECKS = (("passed", "passed"), ("failed", "FAILED"), ("scheduled", "scheduled"))


def _brief(
    report: Mapping[str, Any],
    models: Sequence[Mapping[str, Any]],
    datasets: Sequence[Mapping[str, Any]],
    purge: Mapping[str, Any],
) -> list[str]:
    """The request in a few phrases, for the top of the page."""
    if not datasets:
        return ["nothing erased"]
    out = [f"{_plural(report.get('rows_erased', 0), 'row')} deleted from "
           f"{_plural(len(datasets), 'dataset')}"]  # fmt: skip
    final: dict[tuple[object, object], Mapping[str, Any]] = {}
    for m in models:  # a version's last action says where it ended (pending, then retrained)
        final[m["name"], m["version"]] = m
    if final:
        actions = Counter(str(m["action_label"]) for m in final.values())
        out.append(
            f"{_plural(len(final), 'model')}: "
            + ", ".join(f"{n} {a}" for a, n in sorted(actions.items()))
        )
    checks = Counter(str(m["state"]) for m in models)
    said = [f"{checks[k]} {w}" for k, w in _CHECKS if checks[k]]
    if said:
        out.append("retrain checks: " + ", ".join(said))
    elif models:
        out.append("no retrain check")
    if report.get("status") != "no_data":
        out.append("physically purged" if purge.get("purged_at") else "physical purge to follow")
    return out


def _chain(report: Mapping[str, Any]) -> dict[str, Any]:
    """The audit chain's verification: a title, a sentence, its problems, and its head(s)."""
    v = report.get("audit_verification")
    head = report.get("audit_chain_head") or {}
    newest = ("Chain head: entry", head.get("seq"), head.get("entry_hash"))
    if not isinstance(v, Mapping):
        return {
            "verified": None,
            "title": "The audit chain was not verified for this report",
            "text": "The report was built without checking the chain: run forget verify.",
            "problems": [],
            "heads": [newest],
            "note": "",
        }
    found = v.get("head") or head
    checked = (found.get("seq"), found.get("entry_hash"))
    if v.get("verified"):
        return {
            "verified": True,
            "title": "Audit chain verified",
            "text": _sentence(v.get("text")),
            "problems": [],
            "heads": [("Chain head: entry", *checked)],
            "note": v.get("note") or "",
        }
    heads = [("Verified up to entry", *checked)]
    if checked != newest[1:]:
        heads.append(("newest entry in the log", *newest[1:]))
    return {
        "verified": False,
        "title": "THE AUDIT CHAIN FAILED VERIFICATION: do not rely on this report",
        "text": "The entries of this report cannot be relied on: investigate before filing it.",
        "problems": [_sentence(p) for p in v.get("problems") or [v.get("text")]],
        "heads": heads,
        "note": v.get("note") or "",
    }


def _ground(report: Mapping[str, Any]) -> str:
    article = report.get("legal_ground_article") or report.get("legal_ground") or "—"
    words = report.get("legal_ground_text")
    return f"{article}: {words}" if words else str(article)


def _deadline(report: Mapping[str, Any], status: str, generated: object) -> str:
    """Whether the Art. 12(3) deadline was met, or how long is left (at the report's time)."""
    if status == "no_data":
        return "closed on receipt: there was nothing to erase"
    done = report.get("completed_at")
    try:
        deadline = datetime.fromisoformat(str(report.get("deadline_art12_3")))
        at = datetime.fromisoformat(str(done if done is not None else generated))
        early = at <= deadline
    except (ValueError, TypeError):  # not timestamps, or one naive and one not: no verdict
        return ""
    days = _plural(abs((deadline - at).days), "day")
    if done is None:
        return f"open: {days} left" if early else f"OVERDUE by {days}"
    if early:
        return f"met: completed {days} before the deadline"
    return f"MISSED: completed {days} after the deadline"


def _purge(status: str, purge: Mapping[str, Any]) -> dict[str, str]:
    at, method = purge.get("purged_at"), str(purge.get("method") or "")
    if status == "no_data":
        line, method = "Nothing to purge: the store held no data under this subject id.", ""
    elif at is None:
        line, method = "Not yet: the rows are deleted and forgotten; the bytes are purged next.", ""
    else:
        line = f"Purged {when(at)}."
    return {"line": line, "method": _sentence(method)}


def _entry(e: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(e.get("kind"))
    payload = e.get("payload")
    if isinstance(payload, Mapping):
        rest = {k: v for k, v in payload.items() if k not in _SAID_ABOVE}
        one_version = rest.keys() >= _VERSION_KEYS  # named as the models table names it
        details = [
            (str(k), _models(v) if k == "models" else _listed(v))
            for k, v in sorted(rest.items(), key=str)
            if not (one_version and k in _VERSION_KEYS)
        ]
        if one_version:
            named = f"{rest['model']} v{rest['version']} revision {rest['revision']}"
            details.insert(0, ("model", named))
    else:
        details = [("payload", _listed(payload))]
    return {
        "seq": e.get("seq"),
        "ts": e.get("ts"),
        "kind": kind,
        "event": _EVENTS.get(kind, kind),
        "details": details,
        "hash": e.get("entry_hash"),
        "verified": e.get("verified"),  # None: the chain was not checked
    }


def _one_day(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """The UTC day all entries fall on (the table then shows times only), or None."""
    try:
        stamps = [datetime.fromisoformat(str(e["ts"])) for e in entries]
    except ValueError:
        return None
    if not stamps or any(t.utcoffset() != timedelta(0) for t in stamps):
        return None
    days = {f"{t:%Y-%m-%d}" for t in stamps}
    return days.pop() if len(days) == 1 else None


def _models(value: object) -> str:
    """``erasure.committed``'s models, ``[name, version, revision, rows]`` each, in words."""
    if isinstance(value, list) and all(isinstance(m, list) and len(m) == 4 for m in value):
        return ", ".join(f"{m} v{v} revision {r} ({_plural(n, 'row')})" for m, v, r, n in value)
    return _listed(value)


# ---------------------------------------------------------------------- access (Art. 15)
ACCESS_TEMPLATE = "access_report.html"


def access_report(doc: Mapping[str, Any]) -> str:
    """The HTML page of a subject's access document (the JSON of :func:`store.access.access`),
    through ``api/templates/access_report.html``: the rows held (every column), the model
    versions trained on them, those that forgot them, the copies recipients hold, the
    erasure requests, and the objections and restrictions.

    >>> page = access_report({"subject_key": "sk_" + "0" * 64, "datasets": []})
    >>> "<title>Access report sk_00000000…00000000</title>" in page
    True
    """
    return _environment().get_template(ACCESS_TEMPLATE).render(page=_access_page(doc))


def _access_page(doc: Mapping[str, Any]) -> dict[str, Any]:
    datasets = [
        {
            "name": d.get("dataset"),
            "subject_column": d.get("subject_column"),
            "rows": d.get("rows", 0),
            "columns": [c.get("name") for c in d.get("columns") or []],
            "rows_shown": [
                (i, [_cell(r.get(c.get("name"))) for c in d.get("columns") or []])
                for i, r in zip(d.get("row_ids") or [], d.get("records") or [], strict=False)
            ],
        }
        for d in doc.get("datasets") or []
    ]
    models = [
        {
            "name": m.get("model"),
            "version": m.get("version"),
            "revision": m.get("revision"),
            "dataset": m.get("dataset"),
            "rows": m.get("rows"),
            "trained_at": m.get("trained_at"),
            "state": (
                "served (" + ", ".join(m.get("served_by") or []) + ")"
                if m.get("served")
                else str(m.get("status"))
            ),
            "tone": "warn" if m.get("served") else "muted",
        }
        for m in doc.get("models") or []
    ]
    copies = [
        {
            "recipient": e.get("recipient"),
            "held": f"{e.get('model')} v{e.get('version')}, revision {e.get('revision')}, "
            f"exported {str(e.get('exported_at'))[:10]}",
            "state": e.get("action") or "current: carries the subject's influence",
            "tone": "warn" if e.get("stale") else "info",
        }
        for e in doc.get("exports") or []
    ]
    requests = doc.get("erasure_requests") or []
    rows = sum(int(d["rows"]) for d in datasets)
    brief = [
        f"{_plural(rows, 'row')} in {_plural(len(datasets), 'dataset')}",
        f"{_plural(len(models), 'model version')} trained on them",
        f"{_plural(len(copies), 'exported copy')}".replace("copys", "copies"),
        f"{_plural(len(requests), 'erasure request')}",
    ]
    objections = list(doc.get("objections") or [])
    restrictions = list(doc.get("restrictions") or [])
    if objections:
        brief.append(f"{_plural(len(objections), 'objection')}")
    if any(r.get("status") == "restricted" for r in restrictions):
        brief.append("processing restricted")
    return {
        "subject_key": doc.get("subject_key"),
        "generated_at": doc.get("generated_at"),
        "label": "data held" if rows else "no data held",
        "tone": "warn" if rows else "ok",
        "brief": brief,
        "datasets": datasets,
        "models": models,
        "forgotten": list(doc.get("forgotten") or []),
        "exports": copies,
        "requests": requests,
        "objections": objections,
        "restrictions": restrictions,
    }


def _cell(value: object) -> str:
    """A dataset value as the page shows it: as written, a dash for null."""
    return "—" if value is None else str(value)
