"""Routing by alias, split and pinned version, under alias moves and erasures (issue 22).

The property: whatever sequence of alias moves, removals, erasures and predictions, every
answer comes whole from one version — the one its route names, at that version's current
revision (so never from a revision that holds an erased subject) — a routing key sticks to
one version while its alias is unchanged, and an alias only ever routes to versions it names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from api.service import Service
from forget import HedgeCutClassifier
from store.errors import StoreError
from tests.store.helpers import FEATURES, people, populate

ALIASES = ("default", "champion", "canary")
ROWS = [dict(zip(FEATURES, (0.1 * k, -0.2 + k, 0.3 * k), strict=True)) for k in range(3)]
moves = st.one_of(
    st.tuples(st.sampled_from([1, 2]), st.none()),
    st.tuples(st.sampled_from([1, 2]), st.sampled_from([1, 2])),  # a shadow (may be refused)
    st.floats(0.05, 0.95).map(lambda w: ({1: w, 2: 1.0 - w}, None)),
)


class Routing(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.svc: Service | None = None

    @initialize(seed=st.integers(0, 5))
    def start(self, seed: int) -> None:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.svc = Service.open(Path(self.tmp.name) / "s", purge_interval=0, evidence_rate=0)
        rows = people(n_subjects=12, seed=seed)
        populate(self.svc.store, rows)
        est = HedgeCutClassifier(n_estimators=4, random_state=seed + 1)
        self.svc.store.train(
            "risk", dataset="people", estimator=est, label="label", features=FEATURES
        )
        self.subjects = sorted({r["subject_id"] for r in rows})
        self.aliases: dict[str, tuple[Any, Any]] = {}  # alias -> (target, shadow) as set
        self.sticky: dict[tuple[str, str], int] = {}  # (alias, key) -> version answered

    def teardown(self) -> None:
        if self.svc is not None:
            self.svc.close()
            self.tmp.cleanup()

    @rule(alias=st.sampled_from(ALIASES), to=moves)
    def move(self, alias: str, to: tuple[Any, Any]) -> None:
        assert self.svc is not None
        what, shadow = to
        try:
            self.svc.set_alias("risk", alias, what, shadow=shadow)
        except StoreError:  # a shadow that also answers: refused, nothing moved
            assert isinstance(what, int) and shadow == what
            return
        self.aliases[alias] = (what, shadow)
        self.sticky = {k: v for k, v in self.sticky.items() if k[0] != alias}

    @rule(alias=st.sampled_from(ALIASES))
    def remove(self, alias: str) -> None:
        assert self.svc is not None
        try:
            self.svc.delete_alias("risk", alias)
        except LookupError:
            assert alias not in self.aliases
            return
        del self.aliases[alias]
        self.sticky = {k: v for k, v in self.sticky.items() if k[0] != alias}

    @rule(i=st.integers(0, 11))
    def erase(self, i: int) -> None:
        assert self.svc is not None
        self.svc.erase(self.subjects[i % len(self.subjects)], "art17-1-b")

    @rule(
        how=st.sampled_from([None, *ALIASES, "v1", "v2"]),
        key=st.sampled_from([None, "alice", "bob", "carol"]),
        row=st.integers(0, 2),
    )
    def predict(self, how: str | None, key: str | None, row: int) -> None:
        assert self.svc is not None
        if how is not None and how.startswith("v"):
            res = self.svc.predict("risk", [ROWS[row]], version=int(how[1:]), key=key)
            assert res["version"] == int(how[1:]) and res["alias"] is None
        else:
            if how is not None and how != "default" and how not in self.aliases:
                with pytest.raises(LookupError):
                    self.svc.predict("risk", [ROWS[row]], alias=how, key=key)
                return
            res = self.svc.predict("risk", [ROWS[row]], alias=how, key=key)
            alias = how or "default"
            assert res["alias"] == alias
            if alias in self.aliases:
                what, _ = self.aliases[alias]
                named = set(what) if isinstance(what, dict) else {what}
                assert res["version"] in named
                if key is not None:
                    assert self.sticky.setdefault((alias, key), res["version"]) == res["version"]
            else:
                assert res["version"] == 2  # the newest ready version
        # whole from one version, at its current revision: never an erased subject's
        with self.svc.lock:  # the store is the service's (its shadow thread may read it)
            mv = self.svc.store.get_model("risk", res["version"])
            est = self.svc.store.estimator("risk", res["version"])
            assert res["revision"] == mv.revision
            x = np.array([[ROWS[row][f] for f in FEATURES]])
            assert res["probabilities"] == est._node_proba(x).tolist()


TestRouting = Routing.TestCase
TestRouting.settings = settings(
    max_examples=12,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
