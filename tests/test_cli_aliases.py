"""``forget alias`` and ``forget versions``: aliases, version deletion and retention."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forget.cli import main
from store import ModelStore
from tests.store.helpers import FEATURES, linear, populate


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A store with ``score`` v1..v3 and ``risk`` v1."""
    path = tmp_path / "store"
    with ModelStore.open(path) as st:
        populate(st)
        for _ in range(2):
            st.train(
                "score", dataset="people", estimator=linear(), label="score", features=FEATURES
            )
    return str(path)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_alias_set_ls_rm(store: str, capsys: pytest.CaptureFixture[str]):
    code, out, _ = cli(capsys, "alias", "set", "--store", store, "score", "champion", "2",
                       "--by", "alice")  # fmt: skip
    assert code == 0 and json.loads(out)["split"] == {"2": 1.0}
    code, out, _ = cli(capsys, "alias", "set", "--store", store, "score", "canary", "2=0.9,3=0.1",
                       "--shadow", "1")  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert doc["split"] == {"2": 0.9, "3": 0.1} and doc["shadow"] == 1
    assert doc["set_by"].startswith("cli:")
    code, out, _ = cli(capsys, "alias", "ls", "--store", store, "score")
    doc = json.loads(out)
    assert code == 0 and sorted(doc["aliases"]) == ["canary", "champion"]
    assert doc["aliases"]["champion"]["set_by"] == "alice"
    assert "v3, answers" in doc["default"]
    code, out, _ = cli(capsys, "alias", "rm", "--store", store, "score", "champion")
    assert code == 0 and "removed" in out
    with ModelStore.open(store) as st:
        assert list(st.aliases("score")) == ["canary"]
        assert st.verify_audit_log().ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("alias", "set", "score", "champion", "9"), "no model 'score' v9"),
        (("alias", "set", "nope", "champion", "1"), "no model 'nope'"),
        (("alias", "set", "score", "champion", "1=0.5,2=0.4"), "must sum to 1"),
        (("alias", "set", "score", "champion", "1=1.5,2=-0.5"), "must be > 0"),
        (("alias", "set", "score", "Champion", "1"), "alias name 'Champion'"),
        (("alias", "rm", "score", "gold"), "no alias 'gold'"),
        (("alias", "ls", "nope"), "no model 'nope'"),
        (("versions", "rm", "score", "9"), "no model 'score' v9"),
        (("versions", "retention", "--keep-last", "0"), "N >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    store: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
):
    group, action, *rest = args
    code, out, err = cli(capsys, group, action, "--store", store, *rest)
    assert code == 2 and out == ""
    assert err.startswith(f"forget {group}: error: ") and message in err
    assert err.count("\n") == 1


def test_a_malformed_target_is_a_usage_error(store: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main(["alias", "set", "--store", store, "score", "champion", "1:0.5"])
    assert exc.value.code == 2
    assert "expected a version (3) or a split" in capsys.readouterr().err


def test_versions_rm_refused_while_aliased_then_done(
    store: str, capsys: pytest.CaptureFixture[str]
):
    assert cli(capsys, "alias", "set", "--store", store, "score", "champion", "2")[0] == 0
    code, _, err = cli(capsys, "versions", "rm", "--store", store, "score", "2")
    assert code == 2 and "routed to by aliases ['champion']" in err
    code, out, _ = cli(capsys, "versions", "rm", "--store", store, "score", "1", "--by", "ops")
    assert code == 0 and "model 'score' v1 deleted" in out
    with ModelStore.open(store) as st:
        assert [m.version for m in st.list_models() if m.name == "score"] == [2, 3]


def test_versions_retention(store: str, capsys: pytest.CaptureFixture[str]):
    code, out, _ = cli(capsys, "versions", "retention", "--store", store)
    assert code == 0 and json.loads(out) == {"keep_last": None, "deleted": []}
    code, out, _ = cli(capsys, "versions", "retention", "--store", store, "--keep-last", "1")
    assert code == 0
    assert json.loads(out) == {
        "keep_last": 1,
        "deleted": [{"model": "score", "version": 1}, {"model": "score", "version": 2}],
    }
    code, out, _ = cli(capsys, "versions", "retention", "--store", store, "--off")
    assert code == 0 and json.loads(out)["keep_last"] is None


def test_export_and_the_stale_copies_an_erasure_leaves(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    pytest.importorskip("onnxruntime")
    from tests.store.helpers import VICTIM

    out_file = tmp_path / "risk.onnx"
    code, out, _ = cli(capsys, "export", "--store", store, "risk", "-o", str(out_file),
                       "--recipient", "acme-scoring")  # fmt: skip
    assert code == 0 and "revision 0" in out and out_file.stat().st_size > 0
    code, out, _ = cli(capsys, "exports", "--store", store, "--stale")
    assert code == 0 and json.loads(out) == {"exports": []}
    assert cli(capsys, "erase", "--store", store, VICTIM)[0] == 0
    code, out, _ = cli(capsys, "exports", "--store", store, "--stale")
    (copy,) = json.loads(out)["exports"]
    assert copy["recipient"] == "acme-scoring" and copy["revision"] == 0
    code, _, err = cli(capsys, "export", "--store", store, "risk", "-o", str(out_file),
                       "--recipient", "bad\nname")  # fmt: skip
    assert code != 0 and "recipient" in err
