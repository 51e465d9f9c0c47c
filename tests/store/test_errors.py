"""Bad input gets a typed error and changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.linear_model import LinearRegression as SkLinear

import store
from store import (
    DatasetExistsError,
    EstimatorError,
    FeatureMismatchError,
    InvalidLegalGroundError,
    InvalidNameError,
    InvalidSubjectError,
    ModelStore,
    PredictInputError,
    SourceError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    SubjectColumnError,
    UnknownDatasetError,
    UnknownModelError,
    UnknownRequestError,
)
from tests.store.helpers import FEATURES, VICTIM, linear, people, populate, write_csv

REPO = Path(__file__).resolve().parents[2]


def snapshot(st: ModelStore) -> tuple:
    files = sorted(p.relative_to(st.directory).as_posix() for p in st.directory.rglob("*.npz"))
    return (st.audit_head(), [d.name for d in st.datasets()], st.list_models(), files)


def test_errors_are_store_errors_and_builtins() -> None:
    assert issubclass(UnknownDatasetError, StoreError) and issubclass(
        UnknownDatasetError, LookupError
    )
    assert issubclass(SubjectColumnError, ValueError) and issubclass(EstimatorError, TypeError)
    assert all(
        issubclass(getattr(store, n), StoreError) for n in store.__all__ if n.endswith("Error")
    )
    assert store.__all__ == sorted(store.__all__)


def test_bad_sources_change_nothing(tmp_path: Path, populated: ModelStore) -> None:
    st = populated
    before = snapshot(st)
    rows = people(4)
    no_subject = write_csv(
        tmp_path / "nosubj.csv", [{k: v for k, v in r.items() if k != "subject_id"} for r in rows]
    )
    with pytest.raises(SubjectColumnError, match="subject_id"):
        st.ingest("x", no_subject, subject_column="subject_id")
    nulls = write_csv(
        tmp_path / "nulls.csv",
        [{**r, "subject_id": "" if i == 2 else r["subject_id"]} for i, r in enumerate(rows)],
    )
    with pytest.raises(SubjectColumnError, match="1 empty"):
        st.ingest("x", nulls, subject_column="subject_id")
    with pytest.raises(SubjectColumnError):
        st.ingest("x", [{"subject_id": None, "a": 1.0}], subject_column="subject_id")
    with pytest.raises(SourceError, match="does not exist"):
        st.ingest("x", tmp_path / "missing.csv", subject_column="subject_id")
    with pytest.raises(SourceError, match="unsupported"):
        st.ingest("x", tmp_path / "data.xlsx", subject_column="subject_id")
    with pytest.raises(SourceError, match="reserved"):
        st.ingest("x", [{"subject_id": "s", "row_id": 1}], subject_column="subject_id")
    with pytest.raises(SourceError, match="mixes"):
        st.ingest(
            "x",
            [{"subject_id": "s", "a": 1.0}, {"subject_id": "t", "a": "z"}],
            subject_column="subject_id",
        )
    with pytest.raises(SourceError, match="different lengths"):
        st.ingest("x", {"subject_id": ["a", "b"], "v": [1]}, subject_column="subject_id")
    with pytest.raises(SourceError):
        st.ingest("x", 42, subject_column="subject_id")  # type: ignore[arg-type]
    with pytest.raises(DatasetExistsError):
        st.ingest("people", rows, subject_column="subject_id")
    with pytest.raises(InvalidNameError):
        st.ingest("People", rows, subject_column="subject_id")
    with pytest.raises(InvalidNameError):
        st.ingest('x"; DROP TABLE audit_log; --', rows, subject_column="subject_id")
    assert snapshot(st) == before


def test_bad_training_requests_change_nothing(populated: ModelStore) -> None:
    st = populated
    before = snapshot(st)
    cases = [
        (UnknownDatasetError, dict(dataset="nope", label="score", features=FEATURES)),
        (FeatureMismatchError, dict(dataset="people", label="score", features=["a", "zzz"])),
        (FeatureMismatchError, dict(dataset="people", label="nope", features=FEATURES)),
        (FeatureMismatchError, dict(dataset="people", label="score", features=[])),
        (FeatureMismatchError, dict(dataset="people", label="score", features="abc")),
        (FeatureMismatchError, dict(dataset="people", label="score", features=["a", "a"])),
        (FeatureMismatchError, dict(dataset="people", label="score", features=["a", "score"])),
        (FeatureMismatchError, dict(dataset="people", label="score", features=["a", "subject_id"])),
        (FeatureMismatchError, dict(dataset="people", label="subject_id", features=["a"])),
    ]
    for error, kwargs in cases:
        with pytest.raises(error):
            st.train("m", estimator=linear(), **kwargs)
    with pytest.raises(EstimatorError, match="Unlearnable"):
        st.train("m", dataset="people", estimator=SkLinear(), label="score", features=FEATURES)
    with pytest.raises(EstimatorError):
        st.train("m", dataset="people", estimator=type(linear()), label="score", features=FEATURES)
    with pytest.raises(InvalidNameError):
        st.train("bad-name", dataset="people", estimator=linear(), label="score", features=FEATURES)
    st.ingest("holes", {"sid": ["a", "b"], "v": [1.0, None], "t": [1.0, 2.0]}, subject_column="sid")
    with pytest.raises(FeatureMismatchError, match="nulls"):
        st.train("m", dataset="holes", estimator=linear(), label="t", features=["v"])
    st.ingest("texty", {"sid": ["a", "b"], "w": ["x", "y"], "t": [1.0, 2.0]}, subject_column="sid")
    with pytest.raises(FeatureMismatchError, match="not numeric"):
        st.train("m", dataset="texty", estimator=linear(), label="t", features=["w"])
    after = snapshot(st)
    assert after[2:] == before[2:]  # no model or artifact appeared


def test_bad_lookups_and_requests(populated: ModelStore) -> None:
    st = populated
    before = snapshot(st)
    with pytest.raises(UnknownModelError):
        st.predict("nope", [{"a": 1}])
    with pytest.raises(UnknownModelError):
        st.get_model("risk", 7)
    with pytest.raises(UnknownDatasetError):
        st.dataset("nope")
    with pytest.raises(UnknownRequestError):
        st.erasure_report("er_0000000000000000")
    with pytest.raises(PredictInputError, match="lack features"):
        st.predict("risk", [{"a": 1.0, "b": 2.0}])
    with pytest.raises(PredictInputError):
        st.predict("risk", [[1.0, 2.0]])
    with pytest.raises(PredictInputError):
        st.predict("risk", [{"a": "x", "b": 1, "c": 1}])
    with pytest.raises(InvalidLegalGroundError):
        st.erase(VICTIM, legal_ground="because")
    with pytest.raises(InvalidSubjectError):
        st.erase("", legal_ground="art17-1-b")
    assert snapshot(st) == before and st.find_subject(VICTIM) == {"people": 2}


def test_closed_store_refuses(store_dir: Path) -> None:
    st = ModelStore.open(store_dir)
    st.close()
    st.close()  # idempotent
    with pytest.raises(StoreClosedError):
        st.audit_head()


def test_second_opener_is_refused(populated: ModelStore) -> None:
    st = populated
    with pytest.raises(StoreLockedError, match="this process"):
        ModelStore.open(st.directory)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom store import ModelStore, StoreLockedError\n"
            "try:\n    ModelStore.open(sys.argv[1])\n"
            "except StoreLockedError as e:\n    print('locked:', e)\n    sys.exit(3)\n",
            str(st.directory),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 3, child.stderr
    assert "another process" in child.stdout
    assert st.verify_audit_log().ok and st.find_subject(VICTIM) == {"people": 2}


def test_missing_key_file_is_refused(store_dir: Path) -> None:
    with ModelStore.open(store_dir) as st:
        populate(st)
    (store_dir / "subject.key").unlink()
    with pytest.raises(StoreCorruptError, match="subject.key"):
        ModelStore.open(store_dir)
