"""After a rehearsal on a twin, a model's own calls compile nothing: the first erasure a server
answers costs what the hundredth does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import numpy as np
from forget.warm import compiled_signatures, rehearse
from tests.forget.test_conformance import MODELS, make_data

from forget import KNNClassifier

cases = [(name, make, task, kind, 300) for name, (make, task, kind) in sorted(MODELS.items())]
# "auto" picks the KD-tree from 2,000 rows: its twin must search the way the model does
cases.append(("knn, indexed", lambda: KNNClassifier(5), "classify", "real", 2500))
for name, make, task, kind, n in cases:
    X, y, ids = make_data(3, n, 4, task, kind)
    model = make().fit(X, y, row_ids=ids)
    rehearse(model)
    before = compiled_signatures()
    model.predict(X[:1]); model.predict(X)
    if hasattr(model, "predict_proba"):
        model.predict_proba(X[:1])
    model.forget([int(ids[0])])
    if hasattr(model, "refresh_compiled"):  # as a server does after each erasure
        model.refresh_compiled()
    model.forget([int(i) for i in ids[1:60]])
    model.to_bytes()
    if hasattr(model, "compact"):
        model.compact()
    after = compiled_signatures()
    print(name, before, after)
    assert after == before, f"{name}: its own calls compiled {after - before} kernels"
print("ok")
"""


def test_rehearsal_leaves_nothing_to_compile():
    # a process of its own: kernels other tests compiled would hide what rehearse missed
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr


SERVICE = """
import sys
from api.service import Service
from forget.warm import compiled_signatures
from store import ModelStore
from tests.store.helpers import VICTIM, populate

directory = sys.argv[1]
with ModelStore.open(directory) as st:
    populate(st)
svc = Service.open(directory, purge_interval=0, evidence_rate=0)
svc.warm()
before = compiled_signatures()
svc.erase(VICTIM, "art17-1-b")
svc.purge()
after = compiled_signatures()
svc.close()
assert after == before, f"the first erasure compiled {after - before} kernels"
print("ok")
"""


def test_a_warmed_service_compiles_nothing_at_its_first_erasure(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", SERVICE, str(tmp_path / "store")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr


LEAVES = """
import numpy as np
from forget import HedgeCutClassifier
from forget.scoring import _kernels as S

X = np.random.default_rng(0).normal(size=(400, 3))
model = HedgeCutClassifier(n_estimators=5, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
assert not S.set_leaves.signatures
model.predict_proba(X[:1])  # compiles the forest: and loads the leaf rewrite's kernel
assert S.set_leaves.signatures, "the leaf rewrite would load its kernel at the first erasure"
print("ok")
"""


def test_compiling_a_forest_loads_the_leaf_rewrite_kernel_before_any_deletion():
    # a server's first erasure that leaves its trees' shapes must not load a kernel (~10 ms)
    res = subprocess.run(
        [sys.executable, "-c", LEAVES], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr


def test_a_warmed_service_reads_nothing_more_at_its_first_erasure(tmp_path, monkeypatch):
    """The dataset catalog and the audit head are cached at warm-up: the first erasure runs
    the statements every later one runs, no more."""
    from api.service import Service
    from store import ModelStore
    from store.db import Database
    from tests.store.helpers import VICTIM, populate

    with ModelStore.open(tmp_path / "s") as st:  # as a server meets it: a store just opened
        populate(st)
    svc = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0)
    try:
        svc.warm()
        statements: list[str] = []
        real = Database.execute

        def counted(self, sql, params=None):
            statements.append(sql.split()[0])
            return real(self, sql, params)

        monkeypatch.setattr(Database, "execute", counted)
        svc.erase(VICTIM, "art17-1-b")
        first, statements[:] = list(statements), []
        svc.erase("subj-003", "art17-1-b")
        assert first == statements, (first, statements)
    finally:
        svc.close()
