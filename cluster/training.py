"""Training a HedgeCut forest's trees on Ray: the forest a single-process fit gives, spread out.

A tree is a pure function of the fit's shared inputs and its index (every random choice is
keyed by seed, tree and node path), so trees can be fitted anywhere and assembled in order:
:class:`RayTreeFitter` puts the inputs in Ray's object store once, fits chunks of trees as
one-CPU tasks and returns the trees in tree order. :func:`on_ray` installs it for a block::

    with on_ray():  # joins this process's Ray connection, or starts one
        store.train("risk", dataset="people", estimator=HedgeCutClassifier(), ...)

Only the trees of a fit move; validation, the feature bounds and the assembly of the forest
stay in this process, so the model (and its ``to_bytes()`` artifact) is byte-identical to the
one a fit without Ray builds with the same parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

from cluster.errors import RayMissingError, import_ray
from forget.hedgecut import ForestInputs, Tree, fit_trees, tree_fitter

__all__ = ["CHUNKS_PER_CPU", "RayTreeFitter", "on_ray"]

CHUNKS_PER_CPU = 3  # a few tasks per CPU: a slow worker delays the fit by a small chunk only


def _ray() -> Any:
    try:
        return import_ray()
    except RayMissingError as exc:
        raise RayMissingError("training on Ray needs Ray: pip install 'forget[ray]'") from exc


def _chunked(trees: Sequence[int], n: int) -> list[Sequence[int]]:
    """``trees`` cut into ``n`` contiguous runs (fewer when there are fewer trees), in order."""
    n = max(1, min(n, len(trees)))
    q, r = divmod(len(trees), n)
    cuts = [i * q + min(i, r) for i in range(n + 1)]
    return [trees[a:b] for a, b in pairwise(cuts)]


class RayTreeFitter:
    """A :data:`forget.hedgecut.TreeFitter` that fits trees as Ray tasks (one CPU each).

    Parameters
    ----------
    chunks : tasks per fit; ``None`` takes :data:`CHUNKS_PER_CPU` per CPU of the Ray cluster.
        Never more than one task per tree.

    Needs a Ray connection (:func:`on_ray` makes one; otherwise Ray starts a local one on the
    first call). A task's error is raised here, in the process that fits.
    """

    def __init__(self, chunks: int | None = None) -> None:
        if chunks is not None and chunks < 1:
            raise ValueError(f"chunks must be a positive int or None, got {chunks!r}")
        self.chunks = chunks

    def __repr__(self) -> str:
        return f"RayTreeFitter(chunks={self.chunks!r})"

    def __call__(self, inputs: ForestInputs, trees: Sequence[int]) -> list[Tree]:
        if len(trees) == 0:
            return []
        ray = _ray()
        shared = ray.put(inputs)  # once: every task reads the same copy (zero-copy on a node)
        n = self.chunks or CHUNKS_PER_CPU * max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1)(fit_trees)
        parts = ray.get([task.remote(shared, part) for part in _chunked(trees, n)])
        return [tree for part in parts for tree in part]


@contextmanager
def on_ray(address: str | None = None, chunks: int | None = None) -> Iterator[RayTreeFitter]:
    """Fit the trees of every HedgeCut forest fitted in this block on Ray.

    Uses this process's Ray connection if it has one; otherwise ``ray.init(address)`` (``None``:
    ``RAY_ADDRESS``, the latest local cluster, or a new local one), shut down again when the
    block ends. Raises :class:`~cluster.errors.RayMissingError` without the ``ray`` extra.
    """
    fitter = RayTreeFitter(chunks)
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        with tree_fitter(fitter):
            yield fitter
    finally:
        if started:
            ray.shutdown()
