"""Physical erasure: after a request completes no file in the store holds the subject's bytes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from store import ModelStore
from tests.store.helpers import VICTIM, VICTIM_VALUES, needles, people, populate, scan, write_csv


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


# ---------------------------------------------------------------------- the attack
# Row ids far from every other number in the store, so that finding one means finding it.
BASE_ROW_ID = 730_000_000_001
# Where the subject's pseudonym belongs after erasure: the request, and the audit log's
# account of it. Anywhere else it would link the subject to something the store kept.
PSEUDONYM_HOMES = {
    ("main", "erasure_requests", "subject_key"),
    ("main", "audit_log", "payload_json"),
}


def attacked_store(store_dir: Path, tmp_path: Path) -> tuple[list[int], str]:
    """A store whose every table and file has seen the victim, then erased and purged: the
    victim's rows are in a CSV ingest and the first row of an appended batch; exact models,
    a model that needs a retrain, deferred evidence. Its row ids and pseudonym."""
    from store.data import fetch
    from tests.store.helpers import FEATURES, budgeted

    rows = people()
    victim = [r for r in rows if r["subject_id"] == VICTIM]
    others = [r for r in rows if r["subject_id"] != VICTIM]
    with ModelStore.open(store_dir) as st:
        st._db.execute(
            "UPDATE store_meta SET value = ? WHERE key = 'next_row_id'", [str(BASE_ROW_ID)]
        )
        st.ingest(
            "people",
            write_csv(tmp_path / "p.csv", others + victim[:1]),
            subject_column="subject_id",
        )
        st.append("people", victim[1:] + others[:3])  # the victim opens an appended batch
        populate_models(st)
        st.train("risky", dataset="people", estimator=budgeted(), label="label", features=FEATURES)
        ids, cols = fetch(st._db, "people", ["subject_id"])
        row_ids = [int(i) for i, s in zip(ids, cols["subject_id"], strict=True) if s == VICTIM]
        assert len(row_ids) == 2 and min(row_ids) > BASE_ROW_ID
        key = st.subject_key(VICTIM)
        r = st.erase(VICTIM, legal_ground="art17-1-b", evidence="deferred")
        assert r.status == "completed" and r.rows_erased == 2
        assert {a.action for a in st.erasure_request(r.request_id).models} >= {"retrain"}
        for name, version in (("risk", 1), ("score", 1), ("risky", 1)):
            assert not set(row_ids) & set(st.training_row_ids(name, version).tolist())
        assert st.verify_audit_log().ok
    return row_ids, key


def table_hits(db_file: Path, texts: dict[str, str], numbers: dict[str, float]) -> list[str]:
    """Every (table column, needle) where a value holds a needle: text anywhere in the value
    as text (lists and JSON included), numbers by equality; read from a fresh connection."""
    import duckdb

    hits = []
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        columns = con.execute(
            "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE NOT internal AND database_name = current_database() ORDER BY 1, 2, 3"
        ).fetchall()
        for schema, table, column, kind in columns:
            ref = f'"{schema}"."{table}"', f'"{column}"'
            for name, text in texts.items():
                (n,) = con.execute(
                    f"SELECT count(*) FROM {ref[0]} WHERE contains({ref[1]}::VARCHAR, ?)", [text]
                ).fetchall()[0]
                if n:
                    hits.append(f"{schema}.{table}.{column}: {name}")
            if kind in ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "HUGEINT"):
                for name, value in numbers.items():
                    (n,) = con.execute(
                        f"SELECT count(*) FROM {ref[0]} WHERE {ref[1]} = ?", [value]
                    ).fetchall()[0]
                    if n:
                        hits.append(f"{schema}.{table}.{column}: {name}")
    finally:
        con.close()
    return hits


def test_after_erase_and_purge_no_table_links_back_to_the_subject(
    tmp_path: Path, store_dir: Path
) -> None:
    """Every column of every table of the DuckDB file, read back: the raw id, the row ids
    (they are linkage: "row 730000000017 was trained on, then erased"), the unique values, and
    the pseudonym outside the request and its audit entries."""
    row_ids, key = attacked_store(store_dir, tmp_path)
    texts = {"raw id": VICTIM, "pseudonym": key} | {f"row id {i}": str(i) for i in row_ids}
    values = needles()
    texts |= {name: pat.decode() for name, pat in values.items() if name.endswith("text")}
    numbers = {f"row id {i}": float(i) for i in row_ids} | {
        f"value {v!r}": v for k in range(2) for v in (x + k for x in VICTIM_VALUES)
    }
    hits = table_hits(store_dir / "store.duckdb", texts, numbers)
    allowed = {f"{s}.{t}.{c}: pseudonym" for s, t, c in PSEUDONYM_HOMES}
    assert [h for h in hits if h not in allowed] == []
    assert allowed & set(hits)  # the scan does see what is there


def test_after_erase_and_purge_no_file_holds_the_subject_or_its_row_ids(
    tmp_path: Path, store_dir: Path
) -> None:
    """Raw bytes of every file in the store directory (npz members decompressed): the raw
    id, the values, the row ids as int64 and as text; the pseudonym only in the database."""
    import struct

    row_ids, key = attacked_store(store_dir, tmp_path)
    patterns = needles() | {"pseudonym": key.encode()}
    for i in row_ids:
        patterns |= {f"row id {i} i64": struct.pack("<q", i), f"row id {i} text": str(i).encode()}
    hits = scan(store_dir, patterns)
    assert [h for h in hits if not h.startswith(f"{store_dir / 'store.duckdb'}: pseudonym")] == []


def distinct_rows(st: ModelStore) -> list[int]:
    """Populate ``st`` with row ids no other number in it has (a match anywhere is the
    victim's); the victim's row ids."""
    from store.data import fetch

    st._db.execute("UPDATE store_meta SET value = ? WHERE key = 'next_row_id'", [str(BASE_ROW_ID)])
    st.ingest("people", people(), subject_column="subject_id")
    populate_models(st)
    ids, cols = fetch(st._db, "people", ["subject_id"])
    return [int(i) for i, s in zip(ids, cols["subject_id"], strict=True) if s == VICTIM]


def test_after_purge_the_models_memory_holds_no_trace(tmp_path: Path, store_dir: Path) -> None:
    """The served models in memory, after erase + purge: no row id or value of the subject is
    reachable, and the forest holds no slot vacated by the erased rows (the checkpoint compacts
    it to what a fit on the remaining rows holds)."""
    import numpy as np

    from forget._rows import GONE
    from forget.checks import _reachable

    with ModelStore.open(store_dir) as st:
        gone = distinct_rows(st)
        forest = st.estimator("risk", 1)
        assert GONE not in forest._rows.ids.tolist()
        st.erase(VICTIM, legal_ground="art17-1-b", purge=True)
        for name in ("risk", "score"):
            est = st.estimator(name, 1)
            for arr in _reachable(est):
                if arr.dtype.kind in "iu":
                    assert not np.isin(arr, gone).any(), name
                if arr.dtype.kind == "f":
                    assert not np.isin(arr.astype(np.float64), VICTIM_VALUES).any(), name
        assert st.estimator("risk", 1) is forest
        assert GONE not in forest._rows.ids.tolist()  # compacted: no vacated slot


def test_a_checkpoint_canonicalises_a_forest_once(populated: ModelStore, monkeypatch) -> None:
    """The purge compacts a forest and writes its artifact from the one canonical form (on
    300,000 rows each costs ~1-2.5 s): the artifact is the compacted model's own."""
    from forget.hedgecut import forest

    calls: list[int] = []
    canonical = forest._canon_from
    monkeypatch.setattr(
        forest, "_canon_from", lambda inputs: (calls.append(1), canonical(inputs))[1]
    )
    populated.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    populated.purge()
    assert len(calls) == 1
    mv, est = populated.serving("risk")
    reg = populated._registry
    rel, sha = reg.db.one(
        "SELECT checkpoint_path, checkpoint_sha256 FROM model_versions "
        "WHERE model = ? AND version = ?",
        [mv.name, mv.version],
    )
    assert reg.artifacts.read(rel, sha) == est.to_bytes()


def test_erasures_between_a_purges_copy_and_its_finish_are_replayed(store_dir: Path) -> None:
    """A server purges in three phases, erasures going on while the artifacts are built from
    copies of the models: those erasures' forgets are replayed onto the compacted copies, which
    the models in memory take. The models then equal a refit on the remaining rows, hold
    nothing of the rows the purge completed, and their checkpoints (at the copy's revision,
    later forgets replayed onto them) load to the same models; the erasures made meanwhile wait
    for the next purge."""
    import numpy as np

    from forget.checks import _reachable, outputs, refit_on_remaining

    st = ModelStore.open(store_dir)
    gone = distinct_rows(st)
    first = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    models = {name: st.estimator(name, 1) for name in ("risk", "score")}
    plan = st.purge_plan()
    during = [st.erase("subj-001", legal_ground="art17-1-b", purge=False)]
    plan.run()
    during.append(st.erase("subj-002", legal_ground="art17-1-b", purge=False))
    assert st.purge_since(plan) == 4  # two forgets of each model, replayed without a lock
    plan.catch_up()
    during.append(st.erase("subj-003", legal_ground="art17-1-b", purge=False))
    assert st.purge_since(plan) == 2  # only the last one's now: left to the finish
    during.append(st.erase("subj-004", legal_ground="art17-1-b", purge=False))  # the finish's
    result = st.purge_finish(plan)

    assert result.requests == (first.request_id,) and result.artifacts_written == 2
    assert st.erasure_request(first.request_id).status == "completed"
    assert {st.erasure_request(r.request_id).status for r in during} == {"erased"}
    assert scan(st.directory, needles()) == []  # the completed request's subject: nowhere
    for name, est in models.items():
        assert st.estimator(name, 1) is est  # the same objects took the compacted state
        mv = st.get_model(name, 1)
        row_ids, X, y = st._registry.training_data(mv)
        ref = refit_on_remaining(est, X, y, row_ids, [])
        np.testing.assert_allclose(outputs(est, X), outputs(ref, X), rtol=1e-9, atol=1e-12)
        for arr in _reachable(est):
            if arr.dtype.kind in "iu":
                assert not np.isin(arr, gone).any(), name
        ckpt = st._db.one(
            "SELECT checkpoint_revision FROM model_versions WHERE model = ? AND version = 1",
            [name],
        )
        assert ckpt == (first.models[0].revision,)  # the copy's; the later ones replay on it
        before = est.to_bytes()
        st._registry.reload([(name, 1)])  # artifact + forget_log, as at open
        assert st.estimator(name, 1).to_bytes() == before
    assert sorted(st.purge().requests) == sorted(r.request_id for r in during)
    assert {st.erasure_request(r.request_id).status for r in during} == {"completed"}
    st.close()


def test_a_purge_that_fails_to_copy_a_model_leaves_the_next_one_free(
    populated: ModelStore, monkeypatch
) -> None:
    """A copy that raises (after another model's copy was made) fails the purge, changing
    nothing; the next purge makes its copies and completes the request."""
    from store import registry

    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    with monkeypatch.context() as m:  # the ridge's copy, after the forest's ("risk" < "score")
        m.setattr(registry, "_Copied", lambda est: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            st.purge()
    assert st.erasure_request(r.request_id).status == "erased"
    assert st.purge().requests == (r.request_id,)
    assert scan(st.directory, needles()) == []
