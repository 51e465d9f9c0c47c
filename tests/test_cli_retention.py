"""``forget retention``: set, show, expire and remove a dataset's retention policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forget.cli import main
from store import ModelStore
from tests.store.helpers import FEATURES, VICTIM, linear, people


@pytest.fixture
def store(tmp_path: Path) -> str:
    """``people`` seen a day ago, the victim's rows three years ago; ridge ``score``."""
    now = datetime.now(UTC)
    rows = [
        r | {"seen": (now - timedelta(days=1100 if r["subject_id"] == VICTIM else 1)).isoformat()}
        for r in people()
    ]
    path = tmp_path / "store"
    with ModelStore.open(path) as st:
        st.ingest("people", rows, subject_column="subject_id")
        st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    return str(path)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_set_show_expire_rm(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "retention", "set", "--store", store, "people", "--time-column", "seen",
        "--period", "P2Y", "--by", "dpo",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["set_by"] == "dpo"
    code, out, _ = cli(capsys, "retention", "expire", "--store", store)
    assert code == 0 and "2 rows of people expired, completed" in out
    code, out, _ = cli(capsys, "retention", "expire", "--store", store)
    assert out.strip() == "nothing has expired"
    code, out, _ = cli(capsys, "retention", "show", "--store", store)
    doc = json.loads(out)
    assert [p["period"] for p in doc["policies"]] == ["P2Y"]
    assert [(e["dataset"], e["rows"], e["status"]) for e in doc["expiries"]] == [
        ("people", 2, "completed")
    ]
    with ModelStore.open(store) as st:
        assert st.find_subject(VICTIM) == {}
    assert cli(capsys, "retention", "rm", "--store", store, "people")[0] == 0
    assert json.loads(cli(capsys, "retention", "show", "--store", store)[1])["policies"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "people", "--time-column", "seen", "--period", "30d"), "not an ISO 8601 duration"),
        (("set", "people", "--time-column", "nope", "--period", "P1D"), "no column 'nope'"),
        (("set", "ghost", "--time-column", "seen", "--period", "P1D"), "no dataset named"),
        (("rm", "people"), "has no retention policy"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    store: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = cli(capsys, "retention", args[0], "--store", store, *args[1:])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and out == ""
    with ModelStore.open(store) as st:
        assert st.retention_policies() == []
