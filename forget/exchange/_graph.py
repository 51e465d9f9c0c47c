"""A small builder for ONNX graphs: nodes, constants and names, in a fixed order.

Everything is named by a counter, so the same model gives the same graph, and the same
bytes, every time (the registry records a digest of them). ``onnx`` is imported on first
use, never with the package (it is the optional ``exchange`` extra): ``exportable`` and the
doctests of modules that merely import this one work without it.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

# ONNX element types (TensorProto.DataType; fixed by the format)
FLOAT, INT64, STRING, BOOL, DOUBLE = 1, 7, 8, 9, 11
OPSET = 21  # the default domain: onnxruntime >= 1.20 implements all it is used for here
ML_OPSET = 5  # ai.onnx.ml: TreeEnsemble (onnxruntime >= 1.20)
IR_VERSION = 10  # what ONNX 1.16 (the first with ML opset 5) writes; onnxruntime reads it


def onnx() -> Any:
    """The ``onnx`` package, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("onnx")
    except ImportError as exc:
        raise ImportError("exporting to ONNX needs onnx: pip install 'forget[exchange]'") from exc


def elem_type(a: np.ndarray) -> int:
    """The ONNX element type of a label tensor (see :func:`label_values`)."""
    kinds = {"i": INT64, "f": DOUBLE, "b": BOOL}
    return kinds.get(a.dtype.kind, STRING)


def tensor(a: np.ndarray, name: str) -> Any:
    """A ``TensorProto`` holding ``a`` (strings as UTF-8 bytes)."""
    if a.dtype.kind in "OU":
        a = np.array([str(v).encode() for v in a.ravel()], dtype=object).reshape(a.shape)
    return onnx().numpy_helper.from_array(a, name)


def value_info(name: str, elem: int, shape: list[int | None]) -> Any:
    """The declared type of a graph input or output."""
    return onnx().helper.make_tensor_value_info(name, elem, shape)


class Graph:
    """Nodes and constants of one graph, added in order (see the module docstring)."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def _name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, value: Any, stem: str = "c") -> str:
        """A constant tensor (a graph initializer); returns its name."""
        name = self._name(stem)
        self.inits.append(tensor(np.asarray(value), name))
        return name

    def op(
        self, op_type: str, *inputs: str, out: str | None = None, domain: str = "", **attrs: Any
    ) -> str:
        """Add one node; returns the name of its (single) output."""
        name = out or self._name(op_type.lower())
        node = onnx().helper.make_node(
            op_type, list(inputs), [name], name=f"n{len(self.nodes)}", domain=domain, **attrs
        )
        self.nodes.append(node)
        return name

    def build(self, name: str, inputs: list[Any], outputs: list[Any]) -> Any:
        """The ``GraphProto``."""
        return onnx().helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)


def softmax_of(g: Graph, jll: str) -> str:
    """``exp(jll - logsumexp(jll))`` per row, as naive Bayes's ``predict_proba`` computes it."""
    axes = g.const(np.array([1], np.int64), "axes")
    top = g.op("ReduceMax", jll, axes, keepdims=1)
    shifted = g.op("Sub", jll, top)
    total = g.op("ReduceSum", g.op("Exp", shifted), axes, keepdims=1)
    lse = g.op("Add", top, g.op("Log", total))
    return g.op("Exp", g.op("Sub", jll, lse))


def label_of(g: Graph, index: str, classes: np.ndarray, out: str = "label") -> str:
    """``classes[index]``: the label of each row from its class position (int64)."""
    return g.op("Gather", g.const(label_values(classes), "classes"), index, out=out, axis=0)


def label_values(classes: np.ndarray) -> np.ndarray:
    """``classes_`` as a tensor ONNX can hold: int64, double, bool or strings."""
    c = np.asarray(classes)
    if c.dtype.kind in "iu":
        return c.astype(np.int64)
    if c.dtype.kind == "f":
        return c.astype(np.float64)
    if c.dtype.kind == "b":
        return c
    return np.array([str(v) for v in c], dtype=object)
