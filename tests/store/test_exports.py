"""Exported copies and the recipients an erasure must reach (issue 17, Art. 19)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forget import KNNRegressor
from store import ModelStore
from store.exports import ExportError
from tests.store.helpers import FEATURES, VICTIM, people

ort = pytest.importorskip("onnxruntime")


def _exported(st: ModelStore) -> list[dict]:
    rows = st._db.all("SELECT payload_json FROM audit_log WHERE kind = 'model.exported'")
    return [json.loads(p) for (p,) in rows]


def _score(blob: bytes, X: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    kind = sess.get_inputs()[0].type
    return sess.run(None, {"X": X.astype(np.float32 if "float)" in kind else np.float64)})


def test_an_export_is_the_model_and_is_recorded_not_kept(populated: ModelStore, store_dir: Path):
    blob, rec = populated.export("risk", recipient="acme-scoring", by="dpo")
    X = np.array([[r[f] for f in FEATURES] for r in people()[:20]])
    mv, est = populated.serving("risk")
    label, proba = _score(blob, X)
    assert np.array_equal(proba, est.predict_proba(X))  # the forest's own numbers
    assert (rec.model, rec.version, rec.revision, rec.recipient) == ("risk", 1, 0, "acme-scoring")
    assert rec.size == len(blob) and rec.exported_by == "dpo"
    assert [e["export_id"] for e in _exported(populated)] == [rec.export_id]
    assert populated.verify_audit_log().ok
    # the store keeps the digest, never the bytes
    assert not [p for p in store_dir.rglob("*") if p.is_file() and blob[64:4096] in p.read_bytes()]


def test_an_erasure_names_the_recipients_until_a_fresh_copy_replaces_theirs(
    populated: ModelStore,
):
    _, old = populated.export("risk", recipient="acme-scoring")
    populated.export("score", recipient="bank-partner")
    assert not any(c["stale"] for c in populated.exports())
    receipt = populated.erase(VICTIM, legal_ground="art17-1-b")
    report = populated.erasure_report(receipt.request_id)
    notify = {(n["recipient"], n["model"]): n for n in report["recipients"]}
    assert set(notify) == {("acme-scoring", "risk"), ("bank-partner", "score")}
    assert notify[("acme-scoring", "risk")]["exported_revision"] == 0
    assert notify[("acme-scoring", "risk")]["new_revision"] == 1
    assert all(n["replaced_by"] is None for n in notify.values())
    stale = {c["recipient"]: c for c in populated.exports() if c["stale"]}
    assert set(stale) == {"acme-scoring", "bank-partner"}
    assert "re-export" in stale["acme-scoring"]["action"]
    summary = populated.summary_report()
    assert summary["recipients"]["outstanding_recipients"] == ["acme-scoring", "bank-partner"]

    _, fresh = populated.export("risk", recipient="acme-scoring")  # the replacement
    assert fresh.revision == 1
    report = populated.erasure_report(receipt.request_id)
    risk = next(n for n in report["recipients"] if n["model"] == "risk")
    assert risk["replaced_by"] == fresh.export_id and risk["export_id"] == old.export_id
    assert [c["recipient"] for c in populated.exports() if c["stale"]] == ["bank-partner"]
    assert populated.summary_report()["recipients"]["outstanding_recipients"] == ["bank-partner"]
    # a later erasure names only copies made before it
    later = populated.erase(people()[0]["subject_id"], legal_ground="art17-1-b")
    names = {n["recipient"] for n in populated.erasure_report(later.request_id)["recipients"]}
    assert names == {"acme-scoring", "bank-partner"}


def test_exports_that_cannot_be_made_are_refused_and_record_nothing(populated: ModelStore):
    populated.train(
        "near",
        dataset="people",
        estimator=KNNRegressor(n_neighbors=3),
        label="score",
        features=FEATURES,
    )
    with pytest.raises(ExportError, match="training rows"):
        populated.export("near", recipient="acme-scoring")
    for bad in ("", " lead", "a" * 101, "x\ny"):
        with pytest.raises(ExportError, match="recipient"):
            populated.export("risk", recipient=bad)
    with pytest.raises(ExportError, match="format"):
        populated.export("risk", recipient="acme", format="pmml")
    assert populated.exports() == []
    assert _exported(populated) == []


def test_a_deleted_version_leaves_its_copies_stale(populated: ModelStore):
    populated.export("risk", recipient="acme-scoring")
    populated.train(
        "risk", dataset="people", estimator=populated.serving("risk")[1], label="label",
        features=FEATURES,
    )  # fmt: skip
    populated.delete_version("risk", 1)
    (copy,) = populated.exports("risk")
    assert copy["stale"] and "deleted" in copy["action"]
