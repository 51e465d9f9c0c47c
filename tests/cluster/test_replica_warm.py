"""A replica compiles its models' kernels when it loads them, not on its first erasure."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import numpy as np
from cluster.replica import _Model
from cluster.state import Snapshot
from forget import HedgeCutClassifier, KNNClassifier
from forget.warm import compiled_signatures

rng = np.random.default_rng(0)
X = rng.normal(size=(400, 4)); y = (X[:, 0] > 0).astype(int)
for est in (HedgeCutClassifier(n_estimators=5, random_state=0), KNNClassifier(n_neighbors=3)):
    est.fit(X, y, row_ids=np.arange(400))
    snap = Snapshot("m", 1, 0, f"{type(est).__module__}:{type(est).__qualname__}",
                    ("a", "b", "c", "d"), est.to_bytes())
    model = _Model.load(snap)
    before = compiled_signatures()
    model.forget([7])
    model.forget(list(range(20, 80)))
    model.score(X[:3].astype(np.float32))
    assert compiled_signatures() == before, (type(est).__name__, before, compiled_signatures())
print("ok")
"""


def test_a_loaded_model_compiles_nothing_on_its_first_erasure():
    # a fresh process: what an earlier test compiled must not hide a kernel left cold
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
