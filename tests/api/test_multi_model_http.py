"""Multi-model requests over HTTP (issue 18, item 1): several models of one dataset score the
same rows in one request, each answer equal to the model's own, all from revisions current at
one moment — during an erasure storm too — and bad requests refused with a message."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from forget import KNNRegressor
from store import ModelStore
from tests.api.conftest import Server, auth, launch
from tests.store.helpers import FEATURES, hedgecut, linear, people

ROWS = [r | {"score": float(i)} for i, r in enumerate(people(40, seed=11))]  # unique targets
SUBJECTS = sorted({r["subject_id"] for r in ROWS})
PATH = "/v1/datasets/people/predict"


def _query(subjects: list[str]) -> list[dict[str, float]]:
    return [{f: r[f] for f in FEATURES} for r in ROWS if r["subject_id"] in subjects]


def _targets(subjects: list[str]) -> list[float]:
    return [r["score"] for r in ROWS if r["subject_id"] in subjects]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """people: risk (forest), score (ridge), near (1-NN on a, b, c), near_ab (1-NN on a, b);
    other: elsewhere (trained on another dataset)."""
    tmp = tmp_path_factory.mktemp("multi")
    with ModelStore.open(tmp / "store") as st:
        st.ingest("people", ROWS, subject_column="subject_id")
        st.ingest("other", people(5, seed=2), subject_column="subject_id")
        st.train("risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
        st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
        one = KNNRegressor(n_neighbors=1)
        st.train("near", dataset="people", estimator=one, label="score", features=FEATURES)
        st.train("near_ab", dataset="people", estimator=one, label="score", features=["a", "b"])
        st.train("elsewhere", dataset="other", estimator=linear(), label="score", features=FEATURES)
    srv = launch(tmp / "store", tmp / "server.log", "--purge-interval", "0.5")
    try:
        yield srv
    finally:
        srv.stop()


def _multi(server: Server, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = server.client.post(PATH, json=body, headers=auth("predict"))
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json()
    return out


def test_each_answer_is_the_models_own(server: Server) -> None:
    rows = _query(SUBJECTS[:3])
    got = _multi(server, {"rows": rows, "models": ["risk", "score", {"model": "near_ab"}]})
    assert got["dataset"] == "people"
    assert [a["model"] for a in got["answers"]] == ["risk", "score", "near_ab"]
    for answer in got["answers"]:
        name = answer["model"]
        features = ["a", "b"] if name == "near_ab" else FEATURES
        single = server.client.post(
            f"/v1/models/{name}/predict",
            json={"rows": [{f: r[f] for f in features} for r in rows]},
            headers=auth("predict"),
        ).json()
        for k in ("version", "revision", "predictions", "probabilities", "classes", "alias"):
            assert answer.get(k) == single.get(k), (name, k)
        assert answer["prediction_id"] and answer["prediction_id"] != single["prediction_id"]
    # the 1-NN models answer each row with its own target: the rows were read right
    assert got["answers"][2]["predictions"] == _targets(SUBJECTS[:3])


def test_aliases_and_pinned_versions_route_as_for_one_model(server: Server) -> None:
    r = server.client.put(
        "/v1/models/score/aliases/champion", json={"version": 1}, headers=auth("admin")
    )
    assert r.status_code == 200, r.text
    got = _multi(
        server,
        {
            "rows": _query(SUBJECTS[:1]),
            "models": ["score@champion", {"model": "risk", "version": 1}],
        },
    )
    assert [(a["model"], a["version"], a["alias"]) for a in got["answers"]] == [
        ("score", 1, "champion"),
        ("risk", 1, None),
    ]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"models": ["risk", "elsewhere"]}, 422, "trained on dataset 'other'"),
        ({"models": ["risk", "risk"]}, 422, "named twice"),
        ({"models": ["risk", "nope"]}, 404, "nope"),
        ({"models": ["risk@nope"]}, 404, "nope"),
        ({"models": [{"model": "risk", "version": 99}]}, 404, "99"),
        ({"models": [{"model": "risk", "alias": "x", "version": 1}]}, 422, "not both"),
        ({"models": ["Risk!"]}, 422, "pattern"),
        ({"models": []}, 422, "at least 1"),
        ({"models": ["near_ab"], "rows": [{"a": 1.0}]}, 422, "missing features ['b']"),
        ({"models": ["near_ab"], "rows": [{"a": 1.0, "b": 2.0, "c": 3.0}]}, 422, "unknown"),
        ({"models": ["risk"], "rows": [{"a": 1.0, "b": 2.0, "c": float("nan")}]}, 422, ""),
        ({"models": ["risk"], "subject_ids": ["x", "y"]}, 422, "subject_ids"),
        ({"models": ["risk"], "extra": 1}, 422, "extra"),
    ],
)
def test_bad_requests_are_refused_with_a_message(
    server: Server, body: dict[str, Any], status: int, needle: str
) -> None:
    body = {"rows": _query(SUBJECTS[:1])} | body
    r = server.client.post(
        PATH,
        content=json.dumps(body),  # NaN as JSON's NaN: refused by the parser
        headers=auth("predict") | {"Content-Type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert needle in r.text


def test_unknown_dataset_and_scopes(server: Server) -> None:
    body = {"rows": _query(SUBJECTS[:1]), "models": ["risk"]}
    r = server.client.post("/v1/datasets/nowhere/predict", json=body, headers=auth("predict"))
    assert r.status_code == 404 and "nowhere" in r.text
    assert server.client.post(PATH, json=body).status_code == 401
    assert server.client.post(PATH, json=body, headers=auth("erase")).status_code == 403
    r = server.client.post(
        PATH, content=b"{not json", headers=auth("predict") | {"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["message"]  # as the one-model predict


def test_answers_come_from_one_moment_during_an_erasure_storm(server: Server) -> None:
    """Two 1-NN models of the subjects' rows: each answers a row with its own target while it
    holds the row. In every multi-model answer, both hold it or neither does, and both
    have forgotten the same number of subjects (revisions move together)."""
    victims = SUBJECTS[10:30]
    rows, targets = _query(victims), _targets(victims)
    first = _multi(server, {"rows": rows, "models": ["near", "near_ab"]})["answers"]
    assert first[0]["predictions"] == first[1]["predictions"] == targets
    base = (first[0]["revision"], first[1]["revision"])
    done = threading.Event()

    def storm() -> None:
        try:
            for s in victims:
                r = server.client.post(
                    "/v1/erasure-requests", json={"subject_id": s}, headers=auth("erase")
                )
                assert r.status_code == 202, r.text
        finally:
            done.set()

    eraser = threading.Thread(target=storm)
    eraser.start()
    seen: set[int] = set()
    while not done.is_set() or not seen:
        near, near_ab = _multi(server, {"rows": rows, "models": ["near", "near_ab"]})["answers"]
        held = [p == t for p, t in zip(near["predictions"], targets, strict=True)]
        held_ab = [p == t for p, t in zip(near_ab["predictions"], targets, strict=True)]
        assert held == held_ab  # never one model with the rows and the other without
        moved = (near["revision"] - base[0], near_ab["revision"] - base[1])
        assert moved[0] == moved[1]  # the same erasures in both
        seen.add(moved[0])
    eraser.join()
    last = _multi(server, {"rows": rows, "models": ["near", "near_ab"]})["answers"]
    assert not any(p == t for p, t in zip(last[0]["predictions"], targets, strict=True))
    assert len(seen) > 1  # the storm was seen in progress, not only before and after
