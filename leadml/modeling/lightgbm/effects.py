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

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CompiledTrees", "compile_booster", "lightgbm_matrix", "tree_group_margin"]

ZERO = 1e-35  # LightGBM's kZeroThreshold
ROW_WALK_MAX = 8  # rows up to which tree_group_margin walks each row on plain floats (numpy costs more)


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
    expected: float  # the subtree's expected value over the training rows
    features_below: frozenset  # the features split on in this subtree


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
    share = _count(left) / total if total else 0.5
    left_node, right_node = _compile(left), _compile(right)
    feature = int(node["split_feature"])
    return _Node(
        feature=feature,
        threshold=float("nan") if categorical else float(node["threshold"]),
        categories=np.array([int(c) for c in str(node["threshold"]).split("||")]) if categorical else None,
        default_left=bool(node["default_left"]),
        missing=str(node["missing_type"]),
        left=left_node,
        right=right_node,
        left_share=share,
        expected=share * _expected(left_node) + (1 - share) * _expected(right_node),
        features_below=frozenset({feature}) | _below(left_node) | _below(right_node),
    )  # fmt: skip


def _expected(node) -> float:
    return node.expected if isinstance(node, _Node) else node


def _below(node) -> frozenset:
    return node.features_below if isinstance(node, _Node) else frozenset()


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


class _Columns:
    """The columns of ``X`` a walk reads, with their NaN masks and NaN-as-zero copies made once."""

    def __init__(self, X: np.ndarray):
        self.X = X
        self.nan: dict[int, np.ndarray] = {}
        self.zeroed: dict[int, np.ndarray] = {}
        self.index: dict[tuple[int, bool], tuple[np.ndarray, int]] = {}

    def column(self, j: int) -> np.ndarray:
        return self.X[:, j]

    def isnan(self, j: int) -> np.ndarray:
        if j not in self.nan:
            self.nan[j] = np.isnan(self.X[:, j])
        return self.nan[j]

    def category_index(self, j: int, nan_goes_right: bool) -> tuple[np.ndarray, int]:
        """Each row's category code as an index, and the index that always goes right (the last):
        negative codes go right; NaN goes right or reads as category 0 (LightGBM's rule)."""
        key = (j, nan_goes_right)
        if key not in self.index:
            x = self.X[:, j]
            nan = self.isnan(j)
            whole = np.floor(np.where(nan, 0.0, x))
            right = int(whole.max()) + 1 if len(whole) else 1
            index = np.where(whole < 0, right, whole).astype(np.int64)
            if nan_goes_right:
                index[nan] = right
            self.index[key] = (index, right)
        return self.index[key]

    def nan_as_zero(self, j: int) -> np.ndarray:
        if j not in self.zeroed:
            nan = self.isnan(j)
            self.zeroed[j] = np.where(nan, 0.0, self.X[:, j]) if nan.any() else self.X[:, j]
        return self.zeroed[j]


def _goes_left(node: _Node, columns: _Columns) -> np.ndarray:
    """LightGBM's decision at ``node`` for every row."""
    j = node.feature
    if node.categories is not None:  # NaN is category 0, unless NaN is the missing type (then right)
        index, right = columns.category_index(j, node.missing == "NaN")
        table = np.zeros(right + 1, dtype=bool)
        table[node.categories[node.categories < right]] = True
        return table[index]
    if node.missing == "NaN":
        left = columns.column(j) <= node.threshold  # NaN compares False
        nan = columns.isnan(j)
        return np.where(nan, node.default_left, left)
    x = columns.nan_as_zero(j)  # without NaN as a missing type, LightGBM reads NaN as 0
    left = x <= node.threshold
    if node.missing == "Zero":
        left = np.where(np.abs(x) <= ZERO, node.default_left, left)
    return left


def _walk(node, columns: _Columns, known: frozenset, weight: np.ndarray | None, scale: float, out: np.ndarray) -> float:
    """Add ``scale * weight * leaf`` of every leaf under ``node`` to ``out``; returns the part that
    applies to every row alike (when ``weight`` is None: all rows reach the node with ``scale``)."""
    if not isinstance(node, _Node) or node.features_below.isdisjoint(known):
        value = _expected(node)  # no split below reads a known feature: the subtree's expectation
        if weight is None:
            return scale * value
        out += (scale * value) * weight
        return 0.0
    if node.feature not in known:
        return (_walk(node.left, columns, known, weight, scale * node.left_share, out)
                + _walk(node.right, columns, known, weight, scale * (1 - node.left_share), out))  # fmt: skip
    left = _goes_left(node, columns)
    if weight is None:
        weight_left, weight_right = left.astype(np.float64), (~left).astype(np.float64)
    else:
        weight_left = np.where(left, weight, 0.0)
        weight_right = weight - weight_left
    return (_walk(node.left, columns, known, weight_left, scale, out)
            + _walk(node.right, columns, known, weight_right, scale, out))  # fmt: skip


def _row_goes_left(node: _Node, x: float) -> bool:
    """LightGBM's decision at ``node`` for one value: :func:`_goes_left`'s rules, on a Python float."""
    nan = x != x
    if node.categories is not None:  # NaN is category 0, unless NaN is the missing type (then right)
        if nan:
            return node.missing != "NaN" and 0 in node.categories.tolist()
        whole = math.floor(x)
        return whole >= 0 and whole in node.categories.tolist()  # a negative code goes right
    if node.missing == "NaN":
        return node.default_left if nan else x <= node.threshold
    value = 0.0 if nan else x  # without NaN as a missing type, LightGBM reads NaN as 0
    if node.missing == "Zero" and abs(value) <= ZERO:
        return node.default_left
    return value <= node.threshold


def _pruned(node, known: frozenset):
    """A tree for the walk of one group: a subtree splitting on no known feature becomes its expectation
    (a float); a split becomes ``(on a known feature, node, left, right, left share, right share)``."""
    if not isinstance(node, _Node) or node.features_below.isdisjoint(known):
        return _expected(node)
    left, right = _pruned(node.left, known), _pruned(node.right, known)
    return node.feature in known, node, left, right, node.left_share, 1 - node.left_share


def _unweighted(tree, scale: float, entries: list) -> float:
    """:func:`_walk` where no known split lies above (``weight`` None): the part every row gets alike,
    the same products and sums; each known split reached is put in ``entries`` with its scale, in the
    walk's order (the walk weights the rows from there on)."""
    if type(tree) is float:
        return scale * tree
    on_known, _, left, right, left_share, right_share = tree
    if not on_known:
        return _unweighted(left, scale * left_share, entries) + _unweighted(right, scale * right_share, entries)
    entries.append((scale, tree))
    return 0.0 + 0.0  # the walk's two weighted children return 0.0 each


@dataclass(frozen=True)
class _RowPlan:
    """The walk of one group, its row-independent part done: what every row gets (``shared``, the
    walk's sum over the trees) and the known splits where the row's own terms start, in order."""

    shared: float
    entries: tuple[tuple[float, tuple], ...]


_PLANS: dict[tuple[int, frozenset], tuple[CompiledTrees, _RowPlan]] = {}  # (id(compiled), known) -> plan


def _row_plan(compiled: CompiledTrees, known: frozenset) -> _RowPlan:
    """The :class:`_RowPlan` of a group, made once per compiled model and group (a few are kept)."""
    key = (id(compiled), known)
    cached = _PLANS.get(key)
    if cached is not None and cached[0] is compiled:
        return cached[1]
    entries: list[tuple[float, tuple]] = []
    shared = 0.0
    for tree in compiled.trees:
        shared += _unweighted(_pruned(tree, known), 1.0, entries)
    if len(_PLANS) >= 16:  # a served model has two or three groups
        _PLANS.clear()
    plan = _RowPlan(shared, tuple(entries))
    _PLANS[key] = (compiled, plan)
    return plan


def _weighted(tree, row: list[float], scale: float, terms: list[float]) -> None:
    """:func:`_walk` below a known split for one row: the terms it adds to the row, appended in its order.
    Where the walk weights the branch the row does not take by 0, its terms are zeros, which leave the
    row's sum as it is (never -0.0: it starts at +0.0), so that branch is skipped."""
    if type(tree) is float:
        terms.append(scale * tree)  # the walk adds (scale * value) * 1.0
        return
    on_known, node, left, right, left_share, right_share = tree
    if on_known:
        _weighted(left if _row_goes_left(node, row[node.feature]) else right, row, scale, terms)
    else:
        _weighted(left, row, scale * left_share, terms)
        _weighted(right, row, scale * right_share, terms)


def _row_margins(compiled: CompiledTrees, X: np.ndarray, known: frozenset) -> np.ndarray:
    """:func:`tree_group_margin` row by row on plain floats: the walk's sums term by term, in its order."""
    plan = _row_plan(compiled, known)
    out = np.zeros(len(X), dtype=np.float64)
    for i, row in enumerate(X.tolist()):
        terms: list[float] = []
        for scale, tree in plan.entries:
            _weighted(tree, row, scale, terms)
        total = 0.0
        for term in terms:  # one by one, as ``out +=`` adds them (sum() may compensate)
            total += term
        out[i] = total
    return out + plan.shared


def tree_group_margin(compiled: CompiledTrees, X: np.ndarray, features: Sequence[int]) -> np.ndarray:
    """Per row, the expected margin given only the values of ``features`` (column positions of ``X``).

    Up to :data:`ROW_WALK_MAX` float64 rows are walked one at a time on Python floats, where numpy's
    per-node cost would dominate; the bits are the same (``tests/test_decisions_small.py``).

    Example: with ``features`` = all columns this is the raw margin; with none, the expected margin.
    """
    known = frozenset(int(j) for j in features)
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype == np.float64 and len(X) <= ROW_WALK_MAX:
        return _row_margins(compiled, X, known)
    out = np.zeros(len(X), dtype=np.float64)
    columns = _Columns(X)
    shared = 0.0
    for tree in compiled.trees:
        shared += _walk(tree, columns, known, None, 1.0, out)
    return out + shared
