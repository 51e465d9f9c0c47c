"""A forest that defers big rebuilds (``HedgeCutClassifier(defer_rows=...)``, issue 16) inside
the store: an erasure whose rebuilds it deferred leaves those trees out (the version serves
the others, each the tree of a retrain without the rows), the report names the trees, and the
purge rebuilds them as a revision of its own; after it the version is the fit on the
remaining rows, bit for bit (predictions and artifact)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forget import HedgeCutClassifier
from store import ModelStore
from store.registry import READY
from tests.store.helpers import FEATURES, people

SUBJECTS = [f"subj-{s:03d}" for s in range(24)]
PROBE = np.random.default_rng(5).normal(size=(40, 3))
TRAIN = {"dataset": "people", "label": "label", "features": FEATURES}


def _refit(est: HedgeCutClassifier) -> HedgeCutClassifier:
    """The fit on the rows the model holds (the remaining rows), its cut-off domain pinned."""
    live = est._rows.live()
    params = est.get_params() | {"feature_bounds": est.feature_bounds_}
    X, y, ids = est._X[live], est.classes_[est._y[live]], est._rows.ids[live]
    return HedgeCutClassifier(**params).fit(X, y, row_ids=ids)


def test_deferred_trees_are_left_out_named_and_rebuilt_by_the_purge(tmp_path: Path) -> None:
    forest = HedgeCutClassifier(n_estimators=6, max_samples=1.0, defer_rows=4, random_state=3)
    with ModelStore.open(tmp_path / "s") as s:
        s.ingest("people", people(24, seed=2), subject_column="subject_id")
        s.train("hc", estimator=forest, **TRAIN)
        dropped = None
        for subject in SUBJECTS:
            r = s.erase(subject, legal_ground="art17-1-b", purge=False)
            (a,) = r.models
            assert a.action == "exact_unlearning" and r.status == "erased"
            est = s.estimator("hc", 1)
            if a.evidence.get("shards_dropped"):
                dropped = r
                break
        assert dropped is not None, "no erasure deferred a rebuild"
        (a,) = dropped.models
        trees = a.evidence["shards_dropped"]
        assert a.evidence["parts"] == "trees" and set(trees) <= set(est.pending_)
        assert s.get_model("hc").status == READY
        # served at once, from the other trees: those of a retrain without the rows
        ref = _refit(est)
        ref._served = ref._roots[np.array(est.served_)]  # the refit's forest, those trees alone
        np.testing.assert_array_equal(est.predict_proba(PROBE), ref.predict_proba(PROBE))
        assert (s.predict("hc", PROBE) == est.predict(PROBE)).all()
        (m,) = s.erasure_report(dropped.request_id)["models"]
        assert m["shards_dropped"] == trees and "leaving out tree" in m["action_text"]
        assert "shard" not in m["action_text"]
        done = s.purge()
        (retrained,) = done.shards_retrained
        assert list(retrained.shards) == trees
        est = s.estimator("hc", 1)
        assert est.pending_ == ()
        ref = _refit(est)
        np.testing.assert_array_equal(est.predict_proba(PROBE), ref.predict_proba(PROBE))
        steps = s.erasure_report(dropped.request_id)["models"]
        assert steps[-1]["action"] == "retrain_shards"
        assert "tree" in steps[-1]["evidence_text"] and "shard" not in steps[-1]["evidence_text"]
