"""Helpers for the store tests: small synthetic people data, models, and a byte scanner."""

from __future__ import annotations

import csv
import io
import struct
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from forget import HedgeCutClassifier
from forget.base import ForgetResult
from forget.linear import LinearRegression
from forget.logistic import LogisticRegression
from store import ModelStore

FEATURES = ["a", "b", "c"]
VICTIM = "zq-victim-6d1f2b"
# Values no other row has, to look for in the store's bytes after erasure.
VICTIM_VALUES = (7341.918273645, -2718.28182846, 1618.0339887)
BOUNDS = [[-10.0, 10.0]] * 3  # fixed cut-off ranges, so a refit elsewhere draws the same cuts


def people(n_subjects: int = 30, seed: int = 0) -> list[dict]:
    """1–3 rows per made-up subject; the victim (2 rows) comes in the middle."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for s in range(n_subjects):
        for _ in range(int(rng.integers(1, 4))):
            a, b, c = (float(v) for v in rng.normal(size=3).round(6))
            rows.append(
                {
                    "subject_id": f"subj-{s:03d}",
                    "a": a,
                    "b": b,
                    "c": c,
                    "label": int(a + b > 0),
                    "score": round(2.0 * a - b + 0.5 * c + 0.1 * float(rng.normal()), 6),
                }
            )
        if s == n_subjects // 2:
            for k in range(2):
                a, b, c = (v + k for v in VICTIM_VALUES)
                rows.append(
                    {"subject_id": VICTIM, "a": a, "b": b, "c": c, "label": 1, "score": 3.0 + k}
                )
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def hedgecut() -> HedgeCutClassifier:
    return HedgeCutClassifier(n_estimators=5, random_state=0, feature_bounds=BOUNDS, classes=[0, 1])


def linear() -> LinearRegression:
    return LinearRegression(alpha=0.1)


class BudgetedLogistic(LogisticRegression):
    """Logistic regression that asks for a retrain once its deletion budget is spent.

    ``forget.logistic.LogisticRegression`` refits itself in place when a deletion would exceed
    ``removal_budget``; this one reports ``needs_retrain`` instead, as a model whose refit is
    too costly to do inline would: the store then marks the version pending and retrains it.
    """

    def forget(self, row_ids: Any) -> ForgetResult:
        result = super().forget(row_ids)
        return replace(result, needs_retrain=bool(result.details.get("refit")))


def budgeted(budget: float = 1e-12) -> BudgetedLogistic:
    return BudgetedLogistic(lam=1e-2, removal_budget=budget, classes=[0, 1])


def populate(st: ModelStore, rows: list[dict] | None = None) -> None:
    st.ingest("people", rows if rows is not None else people(), subject_column="subject_id")
    st.train("risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)


def needles(raw_id: str = VICTIM, values=VICTIM_VALUES) -> dict[str, bytes]:
    """Byte patterns that betray the victim: the id, and each value as text, float64, float32."""
    out = {"raw id": raw_id.encode()}
    for k in range(2):
        for v in (x + k for x in values):
            out[f"{v!r} text"] = repr(v).encode()
            out[f"{v!r} f64"] = struct.pack("<d", v)
            out[f"{v!r} f32"] = struct.pack("<f", v)
    return out


def scan(directory: Path, patterns: dict[str, bytes]) -> list[str]:
    """Every (file, pattern) hit under ``directory``; npz members are scanned decompressed."""
    hits = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        blobs = {str(path): path.read_bytes()}
        if path.suffix == ".npz" or zipfile.is_zipfile(io.BytesIO(blobs[str(path)])):
            with zipfile.ZipFile(path) as z:
                blobs.update({f"{path}:{n}": z.read(n) for n in z.namelist()})
        for where, blob in blobs.items():
            hits += [f"{where}: {name}" for name, pat in patterns.items() if pat in blob]
    return hits
