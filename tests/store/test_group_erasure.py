"""Group commit: several erasure requests in one transaction are what they would be one by one.

The property: for any sequence of requests (subjects with rows, repeats of one, ids the store
never held) cut into groups anyhow, the store ends where one-request-at-a-time leaves it —
the same receipts (status, rows, datasets, per model its revision and action), the same
models (byte for byte), the same rows, the same audit entries in the same order, and a chain
that verifies. And a group that fails leaves nothing of any of its requests.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import ModelStore
from tests.store.helpers import people, populate

ROWS = people(n_subjects=14, seed=11)
SUBJECTS = sorted({r["subject_id"] for r in ROWS}) + ["nobody-1", "nobody-2"]


@cache
def _template() -> Path:
    """One populated store, built once; each test works on copies (same secret, so the same
    subject keys)."""
    directory = Path(tempfile.mkdtemp()) / "template"
    with ModelStore.open(directory, evidence_rate=0) as st_:
        populate(st_, ROWS)
    return directory


def _store(directory: Path) -> ModelStore:
    shutil.copytree(_template(), directory)
    return ModelStore.open(directory, evidence_rate=0)


def _summary(r: Any) -> tuple:
    return (
        r.status,
        r.rows_erased,
        dict(r.datasets),
        r.repeat,
        [(a.model, a.version, a.revision, a.action) for a in r.models],
    )


def _state(st_: ModelStore) -> tuple:
    models = tuple(
        (mv.name, mv.version, mv.status, st_.estimator(mv.name, mv.version).to_bytes())
        for mv in st_.list_models()
    )
    audit = [
        (kind, _scrub(json.loads(payload)))
        for kind, payload in st_._db.all("SELECT kind, payload_json FROM audit_log ORDER BY seq")
    ]
    _, X, y = st_.training_data("score", 1)
    return models, audit, X.tobytes(), y.tobytes()


def _scrub(payload: dict) -> dict:
    """An audit payload without what differs between two runs by design (request ids are
    random; timings)."""
    drop = {"request_id", "handled_by", "seconds", "forget_seconds"}
    return {k: v for k, v in payload.items() if k not in drop}


@settings(max_examples=12, deadline=None)
@given(
    picks=st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=10),
    cuts=st.lists(st.integers(1, 4), min_size=1, max_size=10),
)
def test_groups_of_requests_equal_the_requests_one_by_one(picks: list[str], cuts: list[int]):
    with tempfile.TemporaryDirectory() as tmp:
        one, many = _store(Path(tmp) / "one"), _store(Path(tmp) / "many")
        alone = [
            one.erase(s, legal_ground="art17-1-b", purge=False, requested_by="t") for s in picks
        ]
        grouped = []
        at = 0
        for size in cuts * len(picks):
            if at >= len(picks):
                break
            calls = [
                {"subject_id": s, "legal_ground": "art17-1-b", "requested_by": "t"}
                for s in picks[at : at + size]
            ]
            grouped += many.erase_many(calls)
            at += size
        assert [_summary(r) for r in grouped] == [_summary(r) for r in alone]
        for g, a in zip(grouped, alone, strict=True):  # a repeat names its group's request
            if a.repeat:
                assert g.request_id in {x.request_id for x in grouped if not x.repeat}
        assert _state(many) == _state(one)
        assert many.verify_audit_log().ok
        for st_ in (one, many):
            st_.purge()
        assert _state(many) == _state(one)
        one.close()
        many.close()


def test_a_group_that_fails_leaves_none_of_its_requests(tmp_path: Path):
    st_ = _store(tmp_path / "s")
    before = _state(st_)
    forgot_models = {mv.name: st_.estimator(mv.name, mv.version) for mv in st_.list_models()}

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    st_._registry.log = fail  # type: ignore[method-assign]
    calls = [{"subject_id": s, "legal_ground": "art17-1-b"} for s in SUBJECTS[:3]]
    with pytest.raises(OSError, match="disk full"):
        st_.erase_many(calls)
    del st_._registry.log
    assert _state(st_) == before  # rows, models (rebuilt from the log), audit
    assert all(
        st_.estimator(mv.name, mv.version) is not forgot_models[mv.name] for mv in st_.list_models()
    )
    receipts = st_.erase_many(calls)
    assert [r.rows_erased > 0 for r in receipts] == [True] * 3
    st_.close()


def test_a_bad_legal_ground_refuses_the_group_before_anything_runs(tmp_path: Path):
    st_ = _store(tmp_path / "s")
    before = _state(st_)
    with pytest.raises(ValueError, match="legal ground"):
        st_.erase_many(
            [
                {"subject_id": SUBJECTS[0], "legal_ground": "art17-1-b"},
                {"subject_id": SUBJECTS[1], "legal_ground": "because"},
            ]
        )
    assert _state(st_) == before
    st_.close()


def test_deleted_rows_come_back_per_request(tmp_path: Path):
    st_ = _store(tmp_path / "s")
    removed: list[dict] = []
    st_.erase_many(
        [
            {"subject_id": SUBJECTS[0], "legal_ground": "art17-1-b"},
            {"subject_id": SUBJECTS[0], "legal_ground": "art17-1-b"},
            {"subject_id": "nobody-1", "legal_ground": "art17-1-b"},
        ],
        removed=removed,
    )
    held = [r for r in ROWS if r["subject_id"] == SUBJECTS[0]]
    assert len(removed) == 3 and removed[1] == {} and removed[2] == {}
    rows = removed[0]["people"]
    assert rows.columns["subject_id"].tolist() == [SUBJECTS[0]] * len(held)
    assert rows.columns["a"].tolist() == [r["a"] for r in held]
    st_.close()
