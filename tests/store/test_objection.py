"""Objection by purpose (Art. 21) and restriction of processing (Art. 18) in the store
(issue 19, item 2): the data stays, the models stop (or start again) using it, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

from forget.knn import KNNRegressor
from forget.naive_bayes import GaussianNB
from store import ModelStore
from store.errors import (
    InvalidPurposeError,
    NotRestrictedError,
    UnknownPurposeError,
    UnknownSubjectError,
)
from tests.store.helpers import FEATURES, VICTIM, hedgecut, linear, people


@pytest.fixture
def st(tmp_path: Path):
    """``ads`` (linear) and ``ads_forest`` for marketing, ``score`` (linear) for credit,
    ``plain`` (kNN) with no purpose, ``nb`` (naive Bayes) for credit."""
    with ModelStore.open(tmp_path / "store") as s:
        s.ingest("people", people(), subject_column="subject_id")
        train = {"dataset": "people", "features": FEATURES}
        s.train("ads", estimator=linear(), label="score", purpose="marketing", **train)
        s.train("ads_forest", estimator=hedgecut(), label="label", purpose="marketing", **train)
        s.train("score", estimator=linear(), label="score", purpose="credit", **train)
        s.train("plain", estimator=KNNRegressor(n_neighbors=3), label="score", **train)
        s.train("nb", estimator=GaussianNB(), label="label", purpose="credit", **train)
        yield s


def _victim_rows(st: ModelStore) -> set[int]:
    (doc,) = st.access(VICTIM)["datasets"]
    return set(doc["row_ids"])


def _holds(st: ModelStore, model: str, rows: set[int], version: int = 1) -> bool:
    return bool(rows & set(st.training_row_ids(model, version).tolist()))


def _refit_equal(st: ModelStore, model: str, version: int = 1) -> None:
    """The in-memory model predicts what a fresh fit on its training rows predicts."""
    ids, X, y = st.training_data(model, version)
    est = st.estimator(model, version)
    ref = type(est)(**est.get_params()).fit(X, y, row_ids=ids)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-12, atol=1e-12)


def _entries(st: ModelStore, kind: str) -> list[dict]:
    rows = st._db.all("SELECT payload_json FROM audit_log WHERE kind = ? ORDER BY seq", [kind])
    return [json.loads(p) for (p,) in rows]


def test_an_objection_touches_only_the_purpose_and_keeps_the_data(st: ModelStore) -> None:
    mine = _victim_rows(st)
    r = st.object_to(VICTIM, "marketing", by="dpo")
    assert (r.purpose, r.rows, r.repeat, r.objected_by) == ("marketing", 2, False, "dpo")
    assert {(s.model, s.action) for s in r.models} == {
        ("ads", "exact_unlearning"),
        ("ads_forest", "exact_unlearning"),
    }
    assert not _holds(st, "ads", mine) and not _holds(st, "ads_forest", mine)
    assert _holds(st, "score", mine) and _holds(st, "plain", mine) and _holds(st, "nb", mine)
    assert st.find_subject(VICTIM) == {"people": 2}  # the data stays
    _refit_equal(st, "ads")
    assert st.get_model("ads").revision == 1 and st.get_model("score").revision == 0
    # later training for the purpose leaves the rows out; for another purpose, not
    again = st.train(
        "ads", dataset="people", estimator=linear(), label="score", features=FEATURES,
        purpose="marketing",
    )  # fmt: skip
    assert again.rows_withheld == 2 and not _holds(st, "ads", mine, again.version)
    other = st.train(
        "score", dataset="people", estimator=linear(), label="score", features=FEATURES,
        purpose="credit",
    )  # fmt: skip
    assert other.rows_withheld == 0 and _holds(st, "score", mine, other.version)
    (entry,) = _entries(st, "subject.objected")
    assert entry["subject_key"] == st.subject_key(VICTIM) and entry["rows"] == 2
    assert {m["model"] for m in entry["models"]} == {"ads", "ads_forest"}
    raw = st._db.all("SELECT payload_json FROM audit_log")
    assert not any(VICTIM in p for (p,) in raw)
    assert st.verify_audit_log().ok


def test_a_repeated_objection_is_answered_with_the_first(st: ModelStore) -> None:
    first = st.object_to(VICTIM, "marketing")
    seq = st.audit_head().seq
    again = st.object_to(VICTIM, "marketing")
    assert again.repeat and again.objection_id == first.objection_id and again.models == ()
    assert st.audit_head().seq == seq  # nothing written
    assert st.get_model("ads").revision == 1


def test_bad_objections_are_refused_and_change_nothing(st: ModelStore) -> None:
    seq = st.audit_head().seq
    with pytest.raises(UnknownPurposeError, match=r"'marketting'.*known purposes: \['credit'"):
        st.object_to(VICTIM, "marketting")
    with pytest.raises(InvalidPurposeError, match="lower-case"):
        st.object_to(VICTIM, "Marketing!")
    with pytest.raises(UnknownSubjectError) as err:
        st.object_to("nobody-here", "marketing")
    assert "nobody-here" not in str(err.value)
    assert st.audit_head().seq == seq
    assert st.get_model("ads").revision == 0


def test_a_declared_purpose_takes_objections_before_any_model(st: ModelStore) -> None:
    assert st.declare_purpose("profiling", by="dpo") is True
    assert st.declare_purpose("profiling") is False
    assert "profiling" in st.purposes() and "marketing" in st.purposes()
    r = st.object_to(VICTIM, "profiling")
    assert r.models == () and r.rows == 2
    v = st.train(
        "prof", dataset="people", estimator=linear(), label="score", features=FEATURES,
        purpose="profiling",
    )  # fmt: skip
    assert v.rows_withheld == 2 and not _holds(st, "prof", _victim_rows(st))


def test_unspecified_models_are_untouched_by_any_objection(st: ModelStore) -> None:
    mine = _victim_rows(st)
    st.object_to(VICTIM, "marketing")
    st.object_to(VICTIM, "credit")
    assert _holds(st, "plain", mine) and st.get_model("plain").purpose is None
    assert not _holds(st, "score", mine) and not _holds(st, "nb", mine)


def test_a_restriction_and_its_lift(st: ModelStore) -> None:
    mine = _victim_rows(st)
    before = {m: st.estimator(m, 1).to_bytes() for m in ("score", "plain", "nb")}
    r = st.restrict(VICTIM, by="dpo")
    assert (r.status, r.rows, r.repeat) == ("restricted", 2, False)
    assert {s.model for s in r.models} == {"ads", "ads_forest", "score", "plain", "nb"}
    assert all(not _holds(st, m, mine) for m in ("ads", "ads_forest", "score", "plain", "nb"))
    assert st.find_subject(VICTIM) == {"people": 2}
    assert st.restrict(VICTIM).repeat
    v = st.train("fresh", dataset="people", estimator=linear(), label="score", features=FEATURES)
    assert v.rows_withheld == 2
    lifted = st.lift_restriction(VICTIM, by="dpo")
    assert (lifted.status, lifted.lifted_by) == ("lifted", "dpo")
    actions = {s.model: s.action for s in lifted.models}
    assert actions == {
        "ads": "learn",
        "score": "learn",
        "plain": "learn",
        "nb": "learn",
        "ads_forest": "pending_retrain",
    }
    # purge=True: the forest was retrained on its training rows, the victim's among them
    assert st.get_model("ads_forest").status == "ready"
    for m in ("ads", "ads_forest", "score", "plain", "nb"):
        assert _holds(st, m, mine), m
        _refit_equal(st, m)
    # learning back exactly: the same state as before the restriction, up to row order
    for m in ("score", "plain", "nb"):
        est = st.estimator(m, 1)
        assert sorted(est.row_ids_.tolist()) == sorted(
            type(est).from_bytes(before[m]).row_ids_.tolist()
        )
    assert not _holds(st, "fresh", mine)  # trained while restricted: keeps its rows
    with pytest.raises(NotRestrictedError, match="not restricted"):
        st.lift_restriction(VICTIM)
    kinds = [k for (k,) in st._db.all("SELECT kind FROM audit_log ORDER BY seq")]
    assert "subject.restricted" in kinds and "subject.restriction_lifted" in kinds
    (lift,) = _entries(st, "subject.restriction_lifted")
    assert lift["rows"] == 10 and lift["subject_key"] == st.subject_key(VICTIM)
    assert st.verify_audit_log().ok


def test_lifting_keeps_an_objection(st: ModelStore) -> None:
    mine = _victim_rows(st)
    st.restrict(VICTIM)
    st.object_to(VICTIM, "marketing")
    lifted = st.lift_restriction(VICTIM)
    assert {s.model for s in lifted.models} == {"score", "plain", "nb"}
    assert not _holds(st, "ads", mine) and not _holds(st, "ads_forest", mine)
    assert _holds(st, "score", mine)


def test_an_erasure_while_restricted_leaves_nothing_to_give_back(st: ModelStore) -> None:
    st.restrict(VICTIM)
    st.erase(VICTIM, legal_ground="art17-1-b")
    assert st._db.all("SELECT count(*) FROM restricted_rows") == [(0,)]
    lifted = st.lift_restriction(VICTIM)
    assert lifted.models == ()
    assert st.verify_audit_log().ok


def test_bad_restrictions_are_refused(st: ModelStore) -> None:
    with pytest.raises(UnknownSubjectError):
        st.restrict("nobody-here")
    with pytest.raises(NotRestrictedError):
        st.lift_restriction(VICTIM)


def test_access_lists_objections_and_restrictions(st: ModelStore) -> None:
    st.object_to(VICTIM, "marketing", by="dpo")
    st.restrict(VICTIM)
    doc = st.access(VICTIM)
    assert [(o["purpose"], o["objected_by"]) for o in doc["objections"]] == [("marketing", "dpo")]
    assert [r["status"] for r in doc["restrictions"]] == ["restricted"]
    assert doc["models"] == []  # every version set the rows aside
    assert doc["counts"]["objections"] == 1 and doc["counts"]["restrictions"] == 1
    from api.html import access_report

    page = access_report(doc)
    assert "objects to marketing" in page and "processing restricted" in page
    assert doc["objections"][0]["objection_id"] in page


def test_steps_survive_a_reopen(tmp_path: Path) -> None:
    """The lift's learn entries replay from the dataset at open (no checkpoint in between)."""
    directory = tmp_path / "s"
    with ModelStore.open(directory) as s:
        s.ingest("people", people(), subject_column="subject_id")
        s.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
        s.train(
            "plain", dataset="people", estimator=KNNRegressor(n_neighbors=3), label="score",
            features=FEATURES,
        )  # fmt: skip
        s.restrict(VICTIM)
        s.lift_restriction(VICTIM)
        s.restrict("subj-003")
        expected = {m: s.estimator(m, 1).predict(np.eye(3)) for m in ("score", "plain")}
        s._closed = True  # a crash: no checkpoint, no purge
        s._db.close()
    with ModelStore.open(directory) as s:
        for m in ("score", "plain"):
            np.testing.assert_array_equal(s.estimator(m, 1).predict(np.eye(3)), expected[m])
            _refit_equal(s, m)
        assert s.verify_audit_log().ok


# ---------------------------------------------------------------------- the invariant
SUBJECTS = [VICTIM, "subj-002", "subj-007", "subj-011", "subj-020"]
PURPOSE_OF = {"ads": "marketing", "ads_forest": "marketing", "score": "credit", "plain": None}
STEP = st_.tuples(
    st_.sampled_from(["restrict", "lift", "object", "erase"]),
    st_.sampled_from(SUBJECTS),
    st_.sampled_from(["marketing", "credit"]),
)


@given(steps=st_.lists(STEP, min_size=1, max_size=7))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_model_holds_exactly_the_rows_its_purpose_may_use(steps, tmp_path_factory):
    """Any sequence of restrictions, lifts, objections and erasures: each version's training
    rows are the dataset's rows less erased, restricted and (for its purpose) objecting
    subjects', computed here from the steps alone, and its model predicts what a fresh fit on
    exactly those rows predicts (forest included: retrained by the store's purge)."""
    rows = people()
    subject_of = {i + 1: r["subject_id"] for i, r in enumerate(rows)}  # ingest numbers from 1
    erased: set[str] = set()
    restricted: set[str] = set()
    objected: dict[str, set[str]] = {}
    with ModelStore.open(tmp_path_factory.mktemp("inv") / "store") as s:
        s.ingest("people", rows, subject_column="subject_id")
        train = {"dataset": "people", "features": FEATURES}
        s.train("ads", estimator=linear(), label="score", purpose="marketing", **train)
        s.train("ads_forest", estimator=hedgecut(), label="label", purpose="marketing", **train)
        s.train("score", estimator=linear(), label="score", purpose="credit", **train)
        s.train("plain", estimator=KNNRegressor(n_neighbors=3), label="score", **train)
        (victim,) = s.access(VICTIM)["datasets"]
        assert {subject_of[i] for i in victim["row_ids"]} == {VICTIM}
        for op, subject, purpose in steps:
            # the records stay after an erasure: a repeat answers with them; anything new
            # about an erased subject finds no rows
            if op == "erase":
                s.erase(subject, legal_ground="art17-1-b")
                erased.add(subject)
            elif op == "restrict":
                if subject in erased and subject not in restricted:
                    with pytest.raises(UnknownSubjectError):
                        s.restrict(subject)
                else:
                    assert s.restrict(subject).repeat == (subject in restricted)
                    restricted.add(subject)
            elif op == "lift":
                if subject in restricted:
                    s.lift_restriction(subject)
                    restricted.discard(subject)
                else:
                    with pytest.raises(NotRestrictedError):
                        s.lift_restriction(subject)
            else:
                known = purpose in objected.get(subject, set())
                if subject in erased and not known:
                    with pytest.raises(UnknownSubjectError):
                        s.object_to(subject, purpose)
                else:
                    assert s.object_to(subject, purpose).repeat == known
                    objected.setdefault(subject, set()).add(purpose)
            for model, own in PURPOSE_OF.items():
                expected = {
                    i
                    for i, who in subject_of.items()
                    if who not in erased
                    and who not in restricted
                    and (own is None or own not in objected.get(who, set()))
                }
                assert set(s.training_row_ids(model, 1).tolist()) == expected, (model, op)
                assert s.get_model(model, 1).status == "ready"
                ids = np.array(sorted(expected))
                label = "label" if model == "ads_forest" else "score"
                X = np.array([[rows[i - 1][f] for f in FEATURES] for i in ids])
                y = np.array([rows[i - 1][label] for i in ids])
                est = s.estimator(model, 1)
                ref = type(est)(**est.get_params()).fit(X, y, row_ids=ids)
                probe = np.array([[r[f] for f in FEATURES] for r in rows])
                np.testing.assert_allclose(est.predict(probe), ref.predict(probe), atol=1e-9)
        assert s.verify_audit_log().ok
