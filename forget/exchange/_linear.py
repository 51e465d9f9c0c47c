"""Linear models and naive Bayes as plain ONNX graphs, in double precision.

Each graph computes what the model's own ``predict`` / ``predict_proba`` compute, operation
for operation, in float64 (onnxruntime implements ``MatMul``, ``Add``, ``Exp``, ``Log``,
``Sigmoid`` and the reductions for double). They agree to rounding, not bit for bit: a
matrix product or a sum over features may add its terms in another order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forget.exchange._graph import (
    DOUBLE,
    INT64,
    Graph,
    elem_type,
    label_of,
    label_values,
    softmax_of,
    value_info,
)


def _x(d: int) -> Any:
    return value_info("X", DOUBLE, [None, d])


def _classifier_outputs(classes: np.ndarray) -> list[Any]:
    return [
        value_info("label", elem_type(label_values(classes)), [None]),
        value_info("probabilities", DOUBLE, [None, classes.size]),
    ]


def linear_graph(model: Any, name: str) -> Any:
    """``LinearRegression``: ``X @ coef_ + intercept_``, output ``predictions`` (N,)."""
    g = Graph()
    coef = np.asarray(model.coef_, np.float64)
    xw = g.op("MatMul", "X", g.const(coef, "coef"))
    g.op("Add", xw, g.const(np.float64(model.intercept_), "intercept"), out="predictions")
    out = value_info("predictions", DOUBLE, [None])
    return g.build(name, [_x(coef.size)], [out])


def logistic_graph(model: Any, name: str) -> Any:
    """``LogisticRegression``: margins ``X @ coef_.T + intercept_``; for two classes
    ``[1 - σ(s), σ(s)]`` and the label ``s > 0``; for more, one-vs-rest ``σ(s_k)``
    normalised in log space (``log σ(s) = -(max(-s, 0) + log(1 + exp(-|s|)))``), the label the
    largest margin."""
    g = Graph()
    coef = np.asarray(model.coef_, np.float64)
    scores = g.op(
        "Add",
        g.op("MatMul", "X", g.const(np.ascontiguousarray(coef.T), "coef")),
        g.const(np.asarray(model.intercept_, np.float64), "intercept"),
    )
    classes = np.asarray(model.classes_)
    if coef.shape[0] == 1:
        s = g.op("Squeeze", scores, g.const(np.array([1], np.int64), "axes"))
        p = g.op("Sigmoid", s)
        q = g.op("Sub", g.const(np.float64(1.0)), p)
        axis = g.const(np.array([1], np.int64), "axes")
        cols = [g.op("Unsqueeze", v, axis) for v in (q, p)]
        g.op("Concat", *cols, axis=1, out="probabilities")
        positive = g.op("Greater", s, g.const(np.float64(0.0)))
        label_of(g, g.op("Cast", positive, to=INT64), classes)
    else:
        neg = g.op("Neg", scores)
        soft = g.op(
            "Add",
            g.op("Relu", neg),
            g.op(
                "Log",
                g.op(
                    "Add", g.const(np.float64(1.0)), g.op("Exp", g.op("Neg", g.op("Abs", scores)))
                ),
            ),
        )
        log_p = g.op("Neg", soft)
        axes = g.const(np.array([1], np.int64), "axes")
        e = g.op("Exp", g.op("Sub", log_p, g.op("ReduceMax", log_p, axes, keepdims=1)))
        g.op("Div", e, g.op("ReduceSum", e, axes, keepdims=1), out="probabilities")
        label_of(g, g.op("ArgMax", scores, axis=1, keepdims=0), classes)
    return g.build(name, [_x(coef.shape[1])], _classifier_outputs(classes))


def gaussian_nb_graph(model: Any, name: str) -> Any:
    """``GaussianNB``: the joint log-likelihood ``norm_k - ½ Σ_j (x_j - θ_kj)² / σ²_kj +
    log prior_k``, its argmax and its softmax, as ``GaussianNB._jll`` orders them."""
    g = Graph()
    theta = np.asarray(model.theta_, np.float64)
    var = np.asarray(model.var_, np.float64)
    norm = -0.5 * np.log(2.0 * np.pi * var).sum(axis=1)
    log_prior = model._log_prior(model.class_prior_)
    x3 = g.op("Unsqueeze", "X", g.const(np.array([1], np.int64), "axes"))  # (N, 1, d)
    diff = g.op("Sub", x3, g.const(theta, "theta"))  # (N, K, d)
    quad = g.op("Div", g.op("Mul", diff, diff), g.const(var, "var"))
    total = g.op("ReduceSum", quad, g.const(np.array([2], np.int64), "axes"), keepdims=0)
    jll = g.op(
        "Add",
        g.op("Sub", g.const(norm, "norm"), g.op("Mul", g.const(np.float64(0.5)), total)),
        g.const(log_prior, "log_prior"),
    )
    return _nb_outputs(g, jll, model, name, theta.shape[1])


def multinomial_nb_graph(model: Any, name: str) -> Any:
    """``MultinomialNB``: ``X @ feature_log_prob_.T + class_log_prior_``, argmax, softmax.
    Like the model, the graph expects counts; unlike it, it does not refuse negative ones."""
    g = Graph()
    flp = np.asarray(model.feature_log_prob_, np.float64)
    jll = g.op(
        "Add",
        g.op("MatMul", "X", g.const(np.ascontiguousarray(flp.T), "feature_log_prob")),
        g.const(np.asarray(model.class_log_prior_, np.float64), "class_log_prior"),
    )
    return _nb_outputs(g, jll, model, name, flp.shape[1])


def _nb_outputs(g: Graph, jll: str, model: Any, name: str, d: int) -> Any:
    g.op("Identity", softmax_of(g, jll), out="probabilities")
    label_of(g, g.op("ArgMax", jll, axis=1, keepdims=0), np.asarray(model.classes_))
    return g.build(name, [_x(d)], _classifier_outputs(np.asarray(model.classes_)))
