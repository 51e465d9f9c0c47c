"""Erasure requests: repeats are idempotent, unknown subjects get a no-op receipt."""

from __future__ import annotations

from store import ModelStore
from tests.store.helpers import VICTIM


def test_repeat_returns_the_earlier_receipt(populated: ModelStore) -> None:
    st = populated
    first = st.erase(VICTIM, legal_ground="art17-1-b")
    head = st.audit_head()
    again = st.erase(VICTIM, legal_ground="art17-1-b")
    assert again.repeat and not first.repeat
    assert again.request_id == first.request_id and again.status == "completed"
    assert again.models == first.models and again.rows_erased == 2
    assert st.audit_head() == head  # nothing new happened
    assert [v.revision for v in st.list_models()] == [1, 1]


def test_repeat_while_purge_is_pending_completes_it(populated: ModelStore) -> None:
    st = populated
    first = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    again = st.erase(VICTIM, legal_ground="art17-1-b")
    assert again.request_id == first.request_id and again.repeat
    assert st.erasure_report(first.request_id)["status"] == "completed"


def test_unknown_subject_is_recorded_as_no_data(populated: ModelStore) -> None:
    """A typo must never read as an erasure: its own status, closed at once."""
    st = populated
    r = st.erase("never-seen", legal_ground="art17-1-a")
    assert (r.status, r.rows_erased, r.models, r.datasets, r.repeat) == (
        "no_data",
        0,
        (),
        {},
        False,
    )
    assert r.completed_at is not None
    report = st.erasure_report(r.request_id)
    assert report["models"] == [] and [e["kind"] for e in report["audit_entries"]] == [
        "erasure.committed"
    ]
    again = st.erase("never-seen", legal_ground="art17-1-a")
    assert again.repeat and again.request_id == r.request_id


def test_re_ingested_subject_is_erased_again(populated: ModelStore) -> None:
    st = populated
    first = st.erase(VICTIM, legal_ground="art17-1-b")
    st.ingest("later", [{"sid": VICTIM, "v": 1.0}], subject_column="sid")
    second = st.erase(VICTIM, legal_ground="art17-1-b")
    assert not second.repeat and second.request_id != first.request_id
    assert second.datasets == {"later": 1} and second.models == ()
