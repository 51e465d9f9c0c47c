"""Bundled public data sets (see ``README.md`` beside this file for sources and terms).

>>> from forget.datasets import load_adult
>>> ds = load_adult()
>>> ds.X.shape, ds.y.mean().round(3)
((30162, 14), np.float64(0.249))
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["Dataset", "load_adult", "load_shopping", "train_test_split"]

_ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country",
)  # fmt: skip
_ADULT_CATEGORICAL = frozenset(
    {"workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
     "native-country"}
)  # fmt: skip
_SHOPPING_CATEGORICAL = frozenset({"Month", "VisitorType", "Weekend"})


@dataclass(frozen=True)
class Dataset:
    """Numeric features, integer labels, and what the numbers mean.

    ``categories[name]`` lists the category names of a categorical feature, in code order
    (feature value ``i`` means ``categories[name][i]``).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]


def _read(filename: str, delimiter: str, header: bool) -> list[list[str]]:
    text = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    rows = [[c.strip() for c in r] for r in csv.reader(text.splitlines(), delimiter=delimiter) if r]
    return rows[1:] if header else rows


def _encode(
    rows: list[list[str]], names: tuple[str, ...], categorical: frozenset[str]
) -> tuple[np.ndarray, dict[str, tuple[str, ...]]]:
    X = np.empty((len(rows), len(names)), dtype=np.float64)
    cats: dict[str, tuple[str, ...]] = {}
    for j, name in enumerate(names):
        col = [r[j] for r in rows]
        if name in categorical:
            levels = tuple(sorted(set(col)))
            code = {v: i for i, v in enumerate(levels)}
            X[:, j] = [code[v] for v in col]
            cats[name] = levels
        else:
            X[:, j] = np.array(col, dtype=np.float64)
    return X, cats


def load_adult() -> Dataset:
    """UCI Adult (census income), rows with missing values dropped: 30,162 rows, 14 features.

    Label 1 means income ``>50K``. Categorical features are integer codes.
    """
    rows = [r for r in _read("adult.csv", ",", header=False) if "?" not in r]
    X, cats = _encode([r[:14] for r in rows], _ADULT_COLUMNS, _ADULT_CATEGORICAL)
    y = np.array([r[14] == ">50K" for r in rows], dtype=np.int64)
    return Dataset("adult", X, y, _ADULT_COLUMNS, ("<=50K", ">50K"), cats)


def load_shopping() -> Dataset:
    """UCI Online Shoppers Purchasing Intention: 12,330 rows, 17 features, label ``Revenue``."""
    rows = _read("shopping.csv", ",", header=True)
    header = tuple(
        resources.files(__name__).joinpath("shopping.csv").read_text().splitlines()[0].split(",")
    )
    names = header[:-1]
    X, cats = _encode([r[:-1] for r in rows], names, _SHOPPING_CATEGORICAL)
    y = np.array([r[-1] == "TRUE" for r in rows], dtype=np.int64)
    return Dataset("shopping", X, y, names, ("FALSE", "TRUE"), cats)


def train_test_split(
    ds: Dataset, test_size: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded shuffle split (the 80/20 split HedgeCut's experiments use)."""
    order = np.random.default_rng(seed).permutation(ds.X.shape[0])
    n_test = round(test_size * order.size)
    test, train = order[:n_test], order[n_test:]
    return ds.X[train], ds.X[test], ds.y[train], ds.y[test]
