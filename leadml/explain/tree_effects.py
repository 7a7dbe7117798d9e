"""What a LightGBM model predicts from one group of features alone, the others averaged out.

For a set ``S`` of features, the effect of ``S`` on a lead is the tree model's expected margin when
only the lead's values of ``S`` are known: walking each tree, a split on a feature of ``S`` follows
the lead's value, and a split on any other feature takes both branches, weighted by the share of
training rows that went each way (LightGBM's ``internal_count``). This is the conditional
expectation path-dependent TreeSHAP is built on (Lundberg et al., 2020) and Friedman's "recursion"
partial dependence. It depends on the lead's values of ``S`` only, so changing a behaviour event
never moves the effect of the profile features. With ``S`` = every feature it is the margin itself;
with ``S`` empty, the model's expected margin.

The walk reproduces LightGBM's own split rules (missing values, zero-as-missing, categorical
bitsets); :func:`tree_group_margin` with every feature equals ``Booster.predict(raw_score=True)``,
which the tests check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CompiledTrees", "compile_booster", "lightgbm_matrix", "tree_group_margin"]

ZERO = 1e-35  # LightGBM's kZeroThreshold


@dataclass(frozen=True)
class _Node:
    feature: int
    threshold: float
    categories: np.ndarray | None  # category codes that go left (categorical splits)
    default_left: bool
    missing: str  # "None", "Zero" or "NaN"
    left: object
    right: object
    left_share: float  # training rows going left / rows reaching the node


@dataclass(frozen=True)
class CompiledTrees:
    """A booster's trees as plain objects: nodes (:class:`_Node`) and leaves (float values)."""

    trees: tuple
    feature_names: tuple[str, ...]
    pandas_categories: tuple  # the training levels of each categorical column, in column order

    def expected_margin(self) -> float:
        """The model's expected margin over the training rows (the effect of no feature)."""
        return float(sum(_expected(tree) for tree in self.trees))


def _count(node: dict) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])


def _compile(node: dict):
    if "split_index" not in node:
        return float(node["leaf_value"])
    left, right = node["left_child"], node["right_child"]
    total = _count(left) + _count(right)
    categorical = node["decision_type"] == "=="
    return _Node(
        feature=int(node["split_feature"]),
        threshold=float("nan") if categorical else float(node["threshold"]),
        categories=np.array([int(c) for c in str(node["threshold"]).split("||")]) if categorical else None,
        default_left=bool(node["default_left"]),
        missing=str(node["missing_type"]),
        left=_compile(left),
        right=_compile(right),
        left_share=_count(left) / total if total else 0.5,
    )  # fmt: skip


def _expected(node) -> float:
    if not isinstance(node, _Node):
        return node
    return node.left_share * _expected(node.left) + (1 - node.left_share) * _expected(node.right)


def compile_booster(booster, num_iteration: int | None = None) -> CompiledTrees:
    """The first ``num_iteration`` trees of a LightGBM booster (all when None), ready to walk."""
    dump = booster.dump_model(num_iteration=num_iteration)
    trees = tuple(_compile(tree["tree_structure"]) for tree in dump["tree_info"])
    categories = tuple(getattr(booster, "pandas_categorical", None) or ())
    return CompiledTrees(trees, tuple(dump["feature_names"]), categories)


def lightgbm_matrix(compiled: CompiledTrees, frame: pd.DataFrame) -> np.ndarray:
    """A feature frame in the booster's column order (``lightgbm_frame``) as the float matrix it sees.

    Categorical columns (pandas ``Categorical``, in column order) become their codes among the
    training levels LightGBM stored, as LightGBM does itself; unknown levels and missing are NaN.
    """
    if frame.shape[1] != len(compiled.feature_names):
        raise ValueError(f"the frame has {frame.shape[1]} columns, the booster {len(compiled.feature_names)}")
    out = np.empty((len(frame), len(compiled.feature_names)), dtype=np.float64)
    k = 0
    for j in range(frame.shape[1]):  # by position: LightGBM stores "Lead Origin" as "Lead_Origin"
        values = frame.iloc[:, j]
        if isinstance(values.dtype, pd.CategoricalDtype):
            levels = compiled.pandas_categories[k] if k < len(compiled.pandas_categories) else values.cat.categories
            k += 1
            codes = pd.Categorical(values.astype(object), categories=levels).codes.astype(np.float64)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        else:
            out[:, j] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _goes_left(node: _Node, x: np.ndarray) -> np.ndarray:
    """LightGBM's decision at ``node`` for the column ``x`` of every row."""
    nan = np.isnan(x)
    if node.categories is not None:
        if node.missing == "NaN":
            codes = np.where(nan, -1.0, x)  # NaN goes right
        else:
            codes = np.where(nan, 0.0, x)
        whole = np.floor(codes)
        return (codes >= 0) & np.isin(whole, node.categories)
    if node.missing != "NaN":
        x = np.where(nan, 0.0, x)
        nan = np.zeros_like(nan)
    if node.missing == "Zero":
        default = np.abs(x) <= ZERO
    elif node.missing == "NaN":
        default = nan
    else:
        default = None
    left = x <= node.threshold
    if default is not None:
        left = np.where(default, node.default_left, left)
    return left


def _walk(node, X: np.ndarray, known: np.ndarray, weight: np.ndarray | None, scale: float, out: np.ndarray) -> float:
    """Add ``scale * weight * leaf`` of every leaf under ``node`` to ``out``; returns the part that
    applies to every row alike (when ``weight`` is None: all rows reach the node with ``scale``)."""
    if not isinstance(node, _Node):
        if weight is None:
            return scale * node
        out += (scale * node) * weight
        return 0.0
    if not known[node.feature]:
        return (_walk(node.left, X, known, weight, scale * node.left_share, out)
                + _walk(node.right, X, known, weight, scale * (1 - node.left_share), out))  # fmt: skip
    left = _goes_left(node, X[:, node.feature])
    base = np.ones(len(X)) if weight is None else weight
    return (_walk(node.left, X, known, base * left, scale, out)
            + _walk(node.right, X, known, base * ~left, scale, out))  # fmt: skip


def tree_group_margin(compiled: CompiledTrees, X: np.ndarray, features: Sequence[int]) -> np.ndarray:
    """Per row, the expected margin given only the values of ``features`` (column positions of ``X``).

    Example: with ``features`` = all columns this is the raw margin; with none, the expected margin.
    """
    known = np.zeros(len(compiled.feature_names), dtype=bool)
    known[np.asarray(list(features), dtype=np.int64)] = True
    out = np.zeros(len(X), dtype=np.float64)
    shared = 0.0
    for tree in compiled.trees:
        shared += _walk(tree, X, known, None, 1.0, out)
    return out + shared
