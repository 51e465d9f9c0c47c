"""Aliases: promotion, rollback, canary splits and shadows, routing by request key."""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from store import ModelStore, UnknownModelError
from store.aliases import (
    AliasNotServableError,
    AliasTarget,
    InvalidAliasError,
    UnknownAliasError,
    UnservableTargetError,
    VersionInUseError,
    bucket,
)
from store.aliases import route as routed
from store.errors import ModelNotServableError, StoreReadOnlyError
from tests.store.helpers import FEATURES, VICTIM, budgeted, linear, people, populate


def _three_versions(st: ModelStore) -> None:
    populate(st)  # risk v1, score v1
    for _ in range(2):
        st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)


def _audit(st: ModelStore, kind: str) -> list[dict]:
    rows = st._db.all(
        "SELECT payload_json FROM audit_log WHERE kind = ? ORDER BY seq", [kind]
    )  # the log itself: what an auditor reads
    return [json.loads(p) for (p,) in rows]


def test_default_is_the_newest_ready_version_until_set(populated: ModelStore):
    st = populated
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    assert st.aliases("score") == {}
    assert st.resolve("score").version == 2 and st.resolve("score").alias == "default"
    st.set_alias("score", "default", 1, by="ops")
    assert st.resolve("score").version == 1
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    assert st.resolve("score").version == 1  # pinned: a new version does not take over
    st.delete_alias("score", "default", by="ops")
    assert st.resolve("score").version == 3


def test_promotion_and_rollback_are_audited_moves(st: ModelStore):
    _three_versions(st)
    st.set_alias("score", "champion", 1, by="alice")
    st.set_alias("score", "champion", 3, by="bob")  # promotion
    assert st.resolve("score", "champion").version == 3
    st.set_alias("score", "champion", 1, by="carol")  # rollback
    assert st.resolve("score", "champion").version == 1
    st.delete_alias("score", "champion", by="dave")
    moves = _audit(st, "model.alias_set")
    assert [(m["by"], m["from"], m["to"]["split"]) for m in moves] == [
        ("alice", None, {"1": 1.0}),
        ("bob", {"split": {"1": 1.0}, "shadow": None}, {"3": 1.0}),
        ("carol", {"split": {"3": 1.0}, "shadow": None}, {"1": 1.0}),
    ]
    (gone,) = _audit(st, "model.alias_deleted")
    assert gone["by"] == "dave" and gone["from"]["split"] == {"1": 1.0}
    assert st.verify_audit_log().ok
    with pytest.raises(UnknownAliasError, match="no alias 'champion'"):
        st.resolve("score", "champion")


def test_aliases_persist_across_reopen(store_dir: Path):
    with ModelStore.open(store_dir) as st:
        _three_versions(st)
        st.set_alias("score", "canary", {1: 0.75, "3": 0.25}, shadow=2, by="ops")
        routes = {k: st.resolve("score", "canary", key=k) for k in map(str, range(200))}
    with ModelStore.open(store_dir) as st:
        (target,) = st.aliases("score").values()
        assert target.split == ((1, 0.75), (3, 0.25)) and target.shadow == 2
        assert target.set_by == "ops"
        assert {k: st.resolve("score", "canary", key=k) for k in routes} == routes
    with ModelStore.open(store_dir, read_only=True) as st:
        assert st.aliases("score")["canary"].split == ((1, 0.75), (3, 0.25))
        with pytest.raises(StoreReadOnlyError):
            st.set_alias("score", "canary", 1)


def test_split_routes_by_key_and_shadow_rides_along(st: ModelStore):
    _three_versions(st)
    st.set_alias("score", "canary", {1: 0.9, 3: 0.1}, shadow=2)
    routes = [st.resolve("score", "canary", key=f"user-{i}") for i in range(2000)]
    counts = Counter(r.version for r in routes)
    assert set(counts) == {1, 3} and abs(counts[3] / 2000 - 0.1) < 0.05
    assert {r.shadow for r in routes} == {2}
    assert all(st.resolve("score", "canary", key=f"user-{i}") == routes[i] for i in range(50))
    assert st.resolve("score", "canary").version == 1  # no key: the heaviest
    assert st.resolve("score", "canary", key=b"user-7") == routes[7]  # bytes and str agree
    assert st.resolve("score", version=2).version == 2  # pinned
    assert st.resolve("score", version=2).alias is None


def test_growing_a_canary_only_moves_callers_into_it(st: ModelStore):
    _three_versions(st)
    keys = [f"k{i}" for i in range(3000)]
    st.set_alias("score", "canary", {1: 0.9, 3: 0.1})
    before = {k: st.resolve("score", "canary", key=k).version for k in keys}
    st.set_alias("score", "canary", {1: 0.5, 3: 0.5})
    after = {k: st.resolve("score", "canary", key=k).version for k in keys}
    assert all(after[k] == 3 for k in keys if before[k] == 3)
    assert sum(v == 3 for v in after.values()) > sum(v == 3 for v in before.values())


@pytest.mark.parametrize(
    ("target", "shadow", "match"),
    [
        ({1: 0.5, 2: 0.4}, None, "sum to 1"),
        ({1: 1.5, 2: -0.5}, None, "must be > 0"),
        ({1: 1.0, 2: 0.0}, None, "must be > 0"),
        ({1: math.nan}, None, "must be a number"),
        ({1: True}, None, "must be a number"),
        ({}, None, "at least one version"),
        ({1: 0.5, "1": 0.5}, None, "twice"),
        ("one", None, "positive integer"),
        (0, None, "positive integer"),
        ({1: 0.5, 2: 0.5}, 2, "both answer and shadow"),
    ],
)
def test_bad_targets_are_refused_and_change_nothing(st: ModelStore, target, shadow, match):
    _three_versions(st)
    st.set_alias("score", "canary", 3)
    with pytest.raises(InvalidAliasError, match=match):
        st.set_alias("score", "canary", target, shadow=shadow)
    assert st.aliases("score")["canary"].split == ((3, 1.0),)
    assert len(_audit(st, "model.alias_set")) == 1


def test_unknown_names_and_bad_alias_names(populated: ModelStore):
    st = populated
    with pytest.raises(UnknownModelError, match="no model 'nope'"):
        st.set_alias("nope", "champion", 1)
    with pytest.raises(UnknownModelError, match="no model 'nope'"):
        st.resolve("nope")
    with pytest.raises(UnknownModelError, match="no model 'nope'"):
        st.aliases("nope")
    with pytest.raises(UnknownModelError, match=r"'score' v9"):
        st.set_alias("score", "champion", 9)
    with pytest.raises(UnknownModelError, match=r"'score' v9"):
        st.set_alias("score", "champion", 1, shadow=9)
    with pytest.raises(UnknownModelError, match=r"'score' v9"):
        st.resolve("score", version=9)
    with pytest.raises(UnknownAliasError, match="no alias 'gold'"):
        st.delete_alias("score", "gold")
    with pytest.raises(UnknownAliasError):
        st.resolve("score", "gold")
    for bad in ("Champion", "1st", "a-b", "x" * 40, "", None):
        with pytest.raises(InvalidAliasError, match="alias name"):
            st.set_alias("score", bad, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidAliasError, match="not both"):
        st.resolve("score", "default", version=1)


def _pending_store(st: ModelStore) -> None:
    """``bud`` v1, v2 (budgeted: an erasure sends them to pending_retrain), ``score`` v1."""
    populate(st)
    for _ in range(2):
        st.train("bud", dataset="people", estimator=budgeted(), label="label", features=FEATURES)


def test_erasure_sends_an_aliased_version_pending_and_resolve_says_so(st: ModelStore):
    _pending_store(st)
    st.set_alias("bud", "champion", 2)
    st.set_alias("bud", "canary", {1: 0.5, 2: 0.5})
    st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    assert {mv.status for mv in st.list_models() if mv.name == "bud"} == {"pending_retrain"}
    with pytest.raises(AliasNotServableError, match=r"'champion'.*v2.*awaits a retrain"):
        st.resolve("bud", "champion")
    with pytest.raises(ModelNotServableError, match="awaits a retrain"):
        st.resolve("bud", version=1)
    with pytest.raises(UnservableTargetError, match=r"v1: it awaits a retrain"):
        st.set_alias("bud", "champion", 1)  # rollback to a pending version: refused
    with pytest.raises(UnservableTargetError, match="pending_retrain"):
        st.set_alias("bud", "champion", 2)
    st.purge()  # retrains both: ready again, the aliases answer again
    assert st.resolve("bud", "champion").version == 2
    assert st.resolve("bud", "canary", key="k").version in (1, 2)


def test_a_pending_shadow_is_dropped_from_the_route(st: ModelStore):
    _pending_store(st)
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    st.ingest("more", people(seed=3), subject_column="subject_id")
    st.train("score", dataset="more", estimator=budgeted(), label="label", features=FEATURES)
    st.set_alias("score", "champion", 1, shadow=3)
    st.erase("subj-001", legal_ground="art17-1-b", purge=False)
    assert st.get_model("score", 3).status == "pending_retrain"
    assert st.get_model("score", 1).status == "ready"
    assert st.resolve("score", "champion") == st.resolve("score", "champion", key="a")
    assert st.resolve("score", "champion").shadow is None


def test_a_retired_version_cannot_be_promoted(st: ModelStore):
    one_subject = [
        {"subject_id": "only", "a": 0.1 * i, "b": -0.2 * i, "c": 0.3, "label": i % 2}
        for i in range(6)
    ]
    st.ingest("solo", one_subject, subject_column="subject_id")
    st.train("solo", dataset="solo", estimator=budgeted(), label="label", features=FEATURES)
    st.set_alias("solo", "champion", 1)
    st.erase("only", legal_ground="art17-1-b")  # no rows left: retired at the purge
    assert st.get_model("solo", 1).status == "retired"
    with pytest.raises(AliasNotServableError, match=r"v1, which is retired"):
        st.resolve("solo", "champion")
    with pytest.raises(UnservableTargetError, match="is retired"):
        st.set_alias("solo", "canary", 1)
    with pytest.raises(ModelNotServableError, match="no version of model 'solo' can serve"):
        st.resolve("solo")


def test_erasure_reaches_every_version_aliased_split_shadowed_or_idle(st: ModelStore):
    _three_versions(st)
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    st.set_alias("score", "champion", 1)
    st.set_alias("score", "canary", {1: 0.8, 2: 0.2}, shadow=3)  # v4 idle
    receipt = st.erase(VICTIM, legal_ground="art17-1-b")
    assert sorted((a.model, a.version) for a in receipt.models) == [
        ("risk", 1),
        ("score", 1),
        ("score", 2),
        ("score", 3),
        ("score", 4),
    ]
    assert all(a.action == "exact_unlearning" for a in receipt.models)
    assert st.find_subject(VICTIM) == {}
    assert st.verify_audit_log().ok


def test_a_deleted_version_never_resolves(st: ModelStore):
    _three_versions(st)
    st.set_alias("score", "canary", {1: 0.5, 3: 0.5})
    with pytest.raises(VersionInUseError):
        st.delete_version("score", 3)
    st.set_alias("score", "canary", 1)
    st.delete_version("score", 3)
    assert st.resolve("score").version == 2
    with pytest.raises(UnknownModelError):
        st.resolve("score", version=3)


@settings(max_examples=60, deadline=None)
@given(
    weights=hs.lists(hs.floats(0.05, 1.0), min_size=2, max_size=4),
    salt=hs.text(max_size=8),
)
def test_split_shares_converge_and_keys_stick(weights: list[float], salt: str):
    total = math.fsum(weights)
    split = tuple((v + 1, w / total) for v, w in enumerate(weights))
    target = AliasTarget(split, None, "t", None)
    keys = [f"{salt}:{i}" for i in range(10_000)]
    picks = [target.pick(k, "m", "canary") for k in keys]
    counts = Counter(picks)
    for version, share in split:
        assert abs(counts[version] / len(keys) - share) < 0.05
    assert picks[:100] == [target.pick(k, "m", "canary") for k in keys[:100]]
    assert 0 <= bucket("m", "canary", salt) < 1


# ---------------------------------------------------------------------- property: routing
OPS = hs.lists(
    hs.one_of(
        hs.tuples(hs.just("train"), hs.booleans()),
        hs.tuples(
            hs.just("alias"),
            hs.sampled_from(["default", "champion", "canary"]),
            hs.lists(hs.integers(1, 6), min_size=1, max_size=3, unique=True),
            hs.one_of(hs.none(), hs.integers(1, 6)),
        ),  # fmt: skip
        hs.tuples(hs.just("unalias"), hs.sampled_from(["default", "champion", "canary"])),
        hs.tuples(hs.just("erase"), hs.integers(0, 29)),
        hs.tuples(hs.just("delete"), hs.integers(1, 6)),
        hs.tuples(hs.just("purge")),
    ),
    min_size=1,
    max_size=10,
)
KEYS = [f"caller-{i}" for i in range(40)]


def _check_routes(st: ModelStore, deleted: set[int], seen: dict) -> None:
    statuses = {mv.version: mv.status for mv in st.list_models() if mv.name == "m"}
    if not statuses:  # every version deleted: the model is gone
        with pytest.raises(UnknownModelError):
            st.resolve("m", key=KEYS[0])
        return
    aliases = st.aliases("m")
    for alias in {"default", *aliases}:
        target = aliases.get(alias)
        for key in KEYS:
            try:
                route = st.resolve("m", alias, key=key)
            except ModelNotServableError:
                if target is not None:  # the alias's pick awaits a retrain or is retired
                    assert statuses[target.pick(key, "m", alias)] != "ready"
                else:
                    assert "ready" not in statuses.values()
                continue
            assert route.version not in deleted and statuses[route.version] == "ready"
            assert route.shadow is None or statuses[route.shadow] == "ready"
            assert st.resolve("m", alias, key=key) == route
            assert routed("m", statuses, aliases, alias=alias, key=key) == route  # a server's copy
            if target is not None:
                sticky = seen.setdefault((alias, target.split), {})
                assert sticky.setdefault(key, route.version) == route.version


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
def test_resolve_never_routes_to_a_deleted_retired_or_pending_version(ops):
    with tempfile.TemporaryDirectory() as d, ModelStore.open(Path(d)) as st:
        st.ingest("people", people(), subject_column="subject_id")
        st.train("m", dataset="people", estimator=linear(), label="score", features=FEATURES)
        st.train("m", dataset="people", estimator=budgeted(), label="label", features=FEATURES)
        st.set_alias("m", "champion", 2)  # v2 goes pending at the first erasure
        deleted: set[int] = set()
        seen: dict = {}
        for op in ops:
            try:
                if op[0] == "train":
                    est = budgeted() if op[1] else linear()
                    label = "label" if op[1] else "score"
                    st.train("m", dataset="people", estimator=est, label=label, features=FEATURES)
                elif op[0] == "alias":
                    _, alias, versions, shadow = op
                    split = {v: 1 / len(versions) for v in versions}
                    split[versions[-1]] = 1 - sum(1 / len(versions) for _ in versions[1:])
                    st.set_alias("m", alias, split, shadow=shadow)
                elif op[0] == "unalias":
                    st.delete_alias("m", op[1])
                elif op[0] == "erase":
                    st.erase(f"subj-{op[1]:03d}", legal_ground="art17-1-b", purge=False)
                elif op[0] == "delete":
                    st.delete_version("m", op[1])
                    deleted.add(op[1])
                else:
                    st.purge()
            except (InvalidAliasError, UnservableTargetError, UnknownModelError):
                pass  # refused moves change nothing; the routes are checked all the same
            except (UnknownAliasError, VersionInUseError):
                pass
            _check_routes(st, deleted, seen)
        assert st.verify_audit_log().ok
