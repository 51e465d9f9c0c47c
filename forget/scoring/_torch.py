"""The torch backend: the same three strategies as tensor programs (CUDA when available).

torch is imported on first use, never with the package. Each strategy mirrors its host
layout (``TreePool``, ``PerfectTrees``, ``GemmMatrices``) on the device; a refresh copies only
the changed trees' blocks, unless the host layout was reallocated (then it is uploaded again).

- TT: one index per (tree, row); ``max_depth`` gather steps ``v = child[2v + (x > cut-off)]``
  (leaves loop on themselves), as Hummingbird's TreeTraversal.
- PTT: one heap index per (tree, row), ``D`` steps ``h = 2h + 1 + (x > cut-off)``.
- GEMM: the five matrices with ``bmm``.

Leaf shares are gathered in float64 and added tree by tree in tree order (a loop, not
``sum``: reductions may reorder), so the results are bitwise the forest's, on CPU and CUDA.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np

from forget.scoring._ptt import PerfectTrees
from forget.scoring._tt import TreePool

_CHUNK = 1 << 21  # (tree, row) pairs per step: bounds the index tensors


def importable() -> bool:
    """torch is installed (found without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def cuda_available() -> bool:
    """torch is installed and sees a CUDA device (imports torch on the first call)."""
    if not importable():
        return False
    try:
        import torch
    except ImportError:  # installed but broken: stay on numba
        return False
    return bool(torch.cuda.is_available())


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the torch backend needs torch: pip install 'forget[gpu]' (torch==2.13.0)"
        ) from exc
    return torch


class TorchScorer:
    """Device copies of the host layouts, and the tensor programs over them."""

    def __init__(self, device: str | None = None) -> None:
        self.torch = torch = _torch()
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self._mirrors: dict[str, tuple[object, int, dict[str, Any]]] = {}
        self._dirty: dict[str, set[int]] = {}

    @property
    def threads(self) -> int:
        """CPU threads a call uses (torch's intra-op pool on CPU; one on a GPU)."""
        return int(self.torch.get_num_threads()) if self.device.type == "cpu" else 1

    # ------------------------------------------------------------------ mirrors

    def changed(self, trees: set[int]) -> None:
        """Trees whose host blocks were rewritten since the last sync."""
        for dirty in self._dirty.values():
            dirty |= trees

    def _t(self, a: np.ndarray, copy: bool = True) -> Any:
        # a copy on CPU too: the mirror never aliases host arrays, as on a GPU
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device, copy=copy)

    def _sync(self, kind: str, layout: object, generation: int, pool: TreePool) -> dict[str, Any]:
        """The device tensors of ``layout``, refreshed for the trees changed since last time."""
        have = self._mirrors.get(kind)
        if have is None or have[0] is not layout or have[1] != generation:
            tensors = self._upload(kind, layout, pool)
            self._mirrors[kind] = (layout, generation, tensors)
            self._dirty[kind] = set()
            return tensors
        tensors = have[2]
        dirty = self._dirty[kind]
        if dirty:
            self._patch(kind, layout, pool, tensors, sorted(dirty))
            dirty.clear()
        return tensors

    def _upload(self, kind: str, layout: Any, pool: TreePool) -> dict[str, Any]:
        if kind == "tt":
            return self._tt_arrays(pool, slice(None)) | self._tt_meta(pool)
        if kind == "ptt":
            return {
                "feat": self._t(layout.pnode[:, 0].astype(np.int64)),
                "thr": self._t(layout.pnodef[:, 1]),
                "vals": self._t(layout.pvals),
            }
        return {
            name: self._t(getattr(layout, name))
            for name in ("A", "B", "C", "D", "E")  # gemm
        }

    def _tt_arrays(self, pool: TreePool, s: slice) -> dict[str, Any]:
        rec = pool.rec[s]
        return {
            "feat": self._t(rec[:, 0].astype(np.int64)),
            "thr": self._t(pool.recf[s, 1]),
            "child": self._t(rec[:, 2:4].astype(np.int64)),
            "vals": self._t(pool.vals[s]),
        }

    def _tt_meta(self, pool: TreePool) -> dict[str, Any]:
        return {"roots": self._t(pool.roots), "depth": pool.max_depth}

    def _patch(
        self, kind: str, layout: Any, pool: TreePool, tensors: dict[str, Any], trees: list[int]
    ) -> None:
        for t in trees:
            if kind == "tt":
                s = pool.span(t)
                for name, part in self._tt_arrays(pool, s).items():
                    tensors[name][s] = part
            elif kind == "ptt":
                ns, ls = layout.node_span(t), layout.leaf_span(t)
                tensors["feat"][ns] = self._t(layout.pnode[ns, 0].astype(np.int64))
                tensors["thr"][ns] = self._t(layout.pnodef[ns, 1])
                tensors["vals"][ls] = self._t(layout.pvals[ls])
            else:
                for name in ("A", "B", "C", "D", "E"):
                    tensors[name][t] = self._t(getattr(layout, name)[t])
        if kind == "tt":
            tensors.update(self._tt_meta(pool))

    # ------------------------------------------------------------------ scoring

    def proba(self, strategy: str, X: np.ndarray, pool: TreePool, layout: Any) -> np.ndarray:
        torch = self.torch
        m = self._sync(strategy, layout, layout.generation, pool)
        n, T, nc = X.shape[0], pool.n_trees, pool.n_classes
        step = max(1, _CHUNK // T)
        with torch.inference_mode():
            Xd = self._t(X, copy=False)
            acc = torch.zeros((n, nc + 1), dtype=torch.float64, device=self.device)
            for i0 in range(0, n, step):
                Xc = Xd[i0 : i0 + step]
                if strategy == "tt":
                    V = self._tt_values(Xc, m)
                elif strategy == "ptt":
                    V = self._ptt_values(Xc, m, layout)
                else:
                    V = self._gemm_values(Xc, m)
                part = acc[i0 : i0 + step]
                for t in range(T):  # tree order: the forest's summation, bit for bit
                    part += V[t]
            used = acc[:, nc : nc + 1]
            out = torch.where(used > 0, acc[:, :nc] / used, torch.full_like(used, 1.0 / nc))
            return out.cpu().numpy()

    def _tt_values(self, Xc: Any, m: dict[str, Any]) -> Any:
        torch = self.torch
        Xt = Xc.T.contiguous()  # (features, rows): gather along dim 0 by (tree, row)
        idx = m["roots"][:, None].expand(-1, Xc.shape[0]).contiguous()
        child = m["child"].reshape(-1)
        for _ in range(m["depth"]):
            go_right = torch.gather(Xt, 0, m["feat"][idx]) > m["thr"][idx]
            idx = child[2 * idx + go_right]
        return m["vals"][idx]

    def _ptt_values(self, Xc: Any, m: dict[str, Any], layout: PerfectTrees) -> Any:
        torch = self.torch
        D = layout.depth
        L = 1 << D
        T = layout.pvals.shape[0] >> D
        Xt = Xc.T.contiguous()
        tree = torch.arange(T, device=self.device)[:, None]
        h = torch.zeros((T, Xc.shape[0]), dtype=torch.int64, device=self.device)
        base = tree * (L - 1)
        for _ in range(D):
            g = base + h
            h = 2 * h + 1 + (torch.gather(Xt, 0, m["feat"][g]) > m["thr"][g])
        return m["vals"][tree * L + h - (L - 1)]

    def _gemm_values(self, Xc: Any, m: dict[str, Any]) -> Any:
        torch = self.torch
        A, B, C, D, E = m["A"], m["B"], m["C"], m["D"], m["E"]
        T, I = A.shape  # noqa: E741
        xa = Xc[:, A.reshape(-1)].reshape(Xc.shape[0], T, I).permute(1, 0, 2)
        cutoffs, lefts = B[:, None, :], D[:, None, :]
        p = torch.bmm((xa <= cutoffs).to(torch.float32), C)
        return torch.bmm((p == lefts).to(torch.float64), E)
