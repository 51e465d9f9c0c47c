"""Physical erasure: after a request completes no file in the store holds the subject's bytes."""

from __future__ import annotations

import time
from pathlib import Path

from store import ModelStore
from tests.store.helpers import VICTIM, needles, people, populate, scan, write_csv


def test_scanner_sees_the_victim_before_erasure(st: ModelStore) -> None:
    populate(st)
    st.close()  # everything checkpointed into the files
    hits = scan(st.directory, needles())
    assert any("raw id" in h for h in hits), hits
    assert any(".npz:" in h and "f32" in h for h in hits), hits  # forest keeps float32 rows
    assert any(".npz:" in h and "f64" in h for h in hits), hits  # linear keeps float64 rows


def test_no_file_keeps_the_subject_after_erase(tmp_path: Path, store_dir: Path) -> None:
    with ModelStore.open(store_dir) as st:
        st.ingest("people", write_csv(tmp_path / "p.csv", people()), subject_column="subject_id")
        populate_models(st)
        st.ingest("extra", people(8, seed=3), subject_column="subject_id")
        r = st.erase(VICTIM, legal_ground="art17-1-b")
        assert r.status == "completed"
        assert scan(store_dir, needles()) == []  # while the store is still open
        assert not list(store_dir.glob("*.wal")) and not list(store_dir.glob("*.compact"))
    assert scan(store_dir, needles()) == []


def populate_models(st: ModelStore) -> None:
    from tests.store.helpers import FEATURES, hedgecut, linear

    st.train("risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)


def test_purge_deferred_to_purge_or_close(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    assert r.status == "erased" and r.completed_at is None
    assert st.erasure_report(r.request_id)["physical_purge"]["purged_at"] is None
    result = st.purge()
    assert result.requests == (r.request_id,) and result.compacted
    assert result.artifacts_written == 2
    assert st.erasure_report(r.request_id)["status"] == "completed"
    assert scan(st.directory, needles()) == []
    assert st.purge().requests == ()  # nothing waits now


def test_close_purges_what_waits(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    st.close()
    assert scan(st.directory, needles()) == []
    with ModelStore.open(st.directory) as again:
        assert again.erasure_report(r.request_id)["status"] == "completed"


def test_measure_erase_and_purge(populated: ModelStore, capsys) -> None:
    st = populated
    t0 = time.perf_counter()
    st.erase("subj-001", legal_ground="art17-1-b", purge=False)
    erase_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    st.purge()
    purge_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    st.erase("subj-002", legal_ground="art17-1-b", purge=True)
    both_s = time.perf_counter() - t0
    with capsys.disabled():
        print(
            f"\n[store] erase {erase_s * 1e3:.1f} ms, purge {purge_s * 1e3:.1f} ms, "
            f"erase+purge {both_s * 1e3:.1f} ms"
        )
    assert erase_s < 30 and purge_s < 30
