"""Exact path-dependent TreeSHAP for LightGBM with per-leaf tables: the same values, fewer operations.

LightGBM's ``pred_contrib`` runs the classic TreeSHAP recursion for every row and tree, which
costs ``O(leaves * depth^2)`` per tree and row. The SHAP value of a leaf's game has a closed form
that needs only which of the leaf's path features the row satisfies, so it can be tabulated once
per model (the idea of the "v2" algorithm of Yang's Fast TreeSHAP):

For a leaf ``l`` with value ``v``, its path's distinct features ``P`` (``d = |P|``), the cover
share ``r_j`` of the path for feature ``j`` (product of child/parent counts over the splits on
``j``) and the set ``A`` of path features whose every split on the path the row follows, the
leaf adds to feature ``k`` of ``P``::

    k in A:      v * (1 - r_k) * H(A - {k}) * R(A)
    k not in A:  -v * H(A) * R(A)

with ``R(A) = prod(r_j for j in P - A)`` and ``H(B) = sum over S subset of B of
|S|! (d - |S| - 1)! / d! * prod(r_j for j in B - S)``. Tabulating ``v * H`` and ``R`` for every
subset of ``P`` (``2^d`` entries a leaf) turns each row's work into ``O(leaves * depth)``
look-ups. It is used for LightGBM models whose paths have at most :data:`MAX_PATH_FEATURES`
distinct features (leadml's default 7-leaf trees have at most 6), and only for batches large
enough to repay loading the numba kernel (compiled once an install); the values equal LightGBM's
to float rounding (the tests check 1e-9 against ``pred_contrib``).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadml.core.kernels import NUMBA_LOCK, load_kernels
from leadml.modeling.lightgbm.compiled import goes_left, stacked

_KERNELS = "leadml.modeling.lightgbm.treeshap_kernel"
MAX_PATH_FEATURES = 12  # 2^12 table entries a leaf at most; deeper trees use LightGBM's own routine
MIN_ROWS = 20_000  # below this, loading the numba kernel (compiled once an install) does not pay off

_NUMERIC, _CATEGORICAL = 0, 1
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


@dataclass(frozen=True, eq=False)
class TreeTables:
    """A LightGBM model flattened into arrays: its splits, and per leaf its path and SHAP tables."""

    n_features: int
    expected_value: float
    tree_nodes: np.ndarray  # (n_trees + 1,) first node of each tree
    tree_leaves: np.ndarray  # (n_trees + 1,) first leaf of each tree
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_kind: np.ndarray
    node_missing: np.ndarray
    node_default_left: np.ndarray
    node_cats: np.ndarray  # (n_nodes + 1,) offsets into cat_left
    cat_left: np.ndarray  # per categorical node: whether category code c goes left
    leaf_slots: np.ndarray  # (n_leaves + 1,) offsets into slot_feature / slot_keep
    slot_feature: np.ndarray
    slot_keep: np.ndarray  # 1 - r_k
    leaf_edges: np.ndarray  # (n_leaves + 1,) offsets into edge_node / edge_left / edge_slot
    edge_node: np.ndarray  # node index within its tree
    edge_left: np.ndarray
    edge_slot: np.ndarray
    leaf_tables: np.ndarray  # (n_leaves + 1,) offsets into table_h / table_r
    table_h: np.ndarray  # v * H(B) for every subset B of the leaf's path features
    table_r: np.ndarray  # R(B)


def _walk(node: dict, path: list, leaves: list, nodes: list) -> None:
    """Depth-first: record every split (in ``split_index`` order later) and every leaf's path."""
    if "leaf_index" in node:
        leaves.append((float(node["leaf_value"]), list(path)))
        return
    nodes.append(node)
    count = float(node["internal_count"])
    for side, child in ((True, node["left_child"]), (False, node["right_child"])):
        child_count = float(child["leaf_count"] if "leaf_index" in child else child["internal_count"])
        path.append((int(node["split_index"]), side, int(node["split_feature"]), child_count / count))
        _walk(child, path, leaves, nodes)
        path.pop()


def _subset_tables(value: float, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``v * H(B)`` and ``R(B)`` for every subset ``B`` of the path features (bit k = feature k)."""
    d = len(r)
    masks = np.arange(1 << d)
    bits = (masks[:, None] >> np.arange(d)) & 1  # (2^d, d)
    # elementary symmetric polynomials of the r_j in B: coefficients of prod(1 + r_j t)
    coef = np.zeros((1 << d, d + 1))
    coef[:, 0] = 1.0
    for k in range(d):
        inside = bits[:, k] == 1
        shifted = np.zeros_like(coef[inside])
        shifted[:, 1:] = coef[inside, :-1] * r[k]
        coef[inside] += shifted
    size = bits.sum(axis=1)
    weights = np.array([math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)])
    # H(B) = sum_s w(s) e_{|B| - s}(r_B), s = |S| from 0 to |B|
    h = np.zeros(1 << d)
    for s in range(d):
        degree = size - s
        ok = degree >= 0
        h[ok] += weights[s] * coef[ok, degree[ok]]
    r_table = np.prod(np.where(bits == 1, 1.0, r[None, :]), axis=1)
    return value * h, r_table


def build_tables(booster, num_iteration: int | None = None) -> TreeTables | None:
    """Flatten a binary LightGBM booster into :class:`TreeTables`; None when a path is too deep."""
    model = booster.dump_model(num_iteration=num_iteration)
    if model.get("num_tree_per_iteration", 1) != 1:
        return None
    kinds, missing, default_left, thresholds, features, cat_lists = [], [], [], [], [], []
    tree_nodes, tree_leaves = [0], [0]
    slots_feature, slots_keep, slot_offsets = [], [], [0]
    edges_node, edges_left, edges_slot, edge_offsets = [], [], [], [0]
    tables_h, tables_r, table_offsets = [], [], [0]
    expected = 0.0
    for tree in model["tree_info"]:
        root = tree["tree_structure"]
        if "leaf_index" in root:  # a single leaf: only the expected value
            expected += float(root["leaf_value"])
            tree_nodes.append(tree_nodes[-1])
            tree_leaves.append(tree_leaves[-1])
            continue
        splits: list[dict] = []
        leaves: list = []
        _walk(root, [], leaves, splits)
        splits.sort(key=lambda node: int(node["split_index"]))
        for node in splits:
            categorical = node["decision_type"] == "=="
            kinds.append(_CATEGORICAL if categorical else _NUMERIC)
            missing.append(_MISSING[node["missing_type"]])
            default_left.append(bool(node["default_left"]))
            features.append(int(node["split_feature"]))
            thresholds.append(0.0 if categorical else float(node["threshold"]))
            cat_lists.append(goes_left(node) if categorical else np.zeros(0, np.bool_))
        for value, path in leaves:
            order: dict[int, int] = {}
            share: list[float] = []
            for node, left, feature, ratio in path:
                if feature not in order:
                    order[feature] = len(order)
                    share.append(1.0)
                share[order[feature]] *= ratio
                edges_node.append(node)
                edges_left.append(left)
                edges_slot.append(order[feature])
            if len(order) > MAX_PATH_FEATURES:
                return None
            r = np.array(share)
            expected += value * float(np.prod(r))
            slots_feature += list(order)
            slots_keep += list(1.0 - r)
            slot_offsets.append(len(slots_feature))
            edge_offsets.append(len(edges_node))
            h, r_table = _subset_tables(value, r)
            tables_h.append(h)
            tables_r.append(r_table)
            table_offsets.append(table_offsets[-1] + len(h))
        tree_nodes.append(len(features))
        tree_leaves.append(len(slot_offsets) - 1)
    cat_offsets, cat_left = stacked(cat_lists)
    return TreeTables(
        n_features=int(model["max_feature_idx"]) + 1, expected_value=expected,
        tree_nodes=np.array(tree_nodes, np.int64), tree_leaves=np.array(tree_leaves, np.int64),
        node_feature=np.array(features, np.int64), node_threshold=np.array(thresholds, np.float64),
        node_kind=np.array(kinds, np.int8), node_missing=np.array(missing, np.int8),
        node_default_left=np.array(default_left, np.bool_), node_cats=cat_offsets,
        cat_left=cat_left,
        leaf_slots=np.array(slot_offsets, np.int64), slot_feature=np.array(slots_feature, np.int64),
        slot_keep=np.array(slots_keep, np.float64), leaf_edges=np.array(edge_offsets, np.int64),
        edge_node=np.array(edges_node, np.int64), edge_left=np.array(edges_left, np.bool_),
        edge_slot=np.array(edges_slot, np.int64), leaf_tables=np.array(table_offsets, np.int64),
        table_h=np.concatenate(tables_h) if tables_h else np.zeros(0),
        table_r=np.concatenate(tables_r) if tables_r else np.zeros(0),
    )  # fmt: skip


def lightgbm_matrix(booster, frame: pd.DataFrame) -> np.ndarray:
    """The float64 matrix LightGBM predicts on: categories as the training codes (NaN when unseen)."""
    categories = iter(booster.pandas_categorical or [])
    columns = []
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.set_categories(next(categories)).cat.codes.to_numpy()
            columns.append(np.where(codes < 0, np.nan, codes.astype(np.float64)))
        else:
            columns.append(column.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.ascontiguousarray(np.column_stack(columns)) if columns else np.zeros((len(frame), 0))


_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # booster -> {num_iteration: tables}


def tree_contributions(tables: TreeTables, X: np.ndarray, *, block: int = 256) -> np.ndarray:
    """``(n, n_features + 1)`` SHAP values of the raw score, the expected value in the last column.

    The same layout as LightGBM's ``predict(..., pred_contrib=True)``.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.shape[1] != tables.n_features:
        raise ValueError(f"X has {X.shape[1]} columns, the model {tables.n_features}")
    out = np.zeros((X.shape[0], tables.n_features + 1))
    out[:, -1] = tables.expected_value
    kernels = load_kernels(_KERNELS)
    if kernels is None:
        raise RuntimeError("the tabulated TreeSHAP kernel cannot be loaded here (see the warning logged)")
    t = tables
    with NUMBA_LOCK:
        kernels.contributions(X, out, t.tree_nodes, t.tree_leaves, t.node_feature, t.node_threshold, t.node_kind,
                  t.node_missing, t.node_default_left, t.node_cats, t.cat_left, t.leaf_slots,
                  t.slot_feature, t.slot_keep, t.leaf_edges, t.edge_node, t.edge_left, t.edge_slot,
                  t.leaf_tables, t.table_h, t.table_r, block)  # fmt: skip
    return out


def lightgbm_contributions(booster, frame: pd.DataFrame, num_iteration: int | None = None) -> np.ndarray | None:
    """LightGBM's ``pred_contrib`` output computed from :class:`TreeTables`, or None when they do not apply.

    None (the caller then asks LightGBM) when numba cannot load the kernel (no writable cache
    folder), the model is not a single-output booster, a path has more than
    :data:`MAX_PATH_FEATURES` distinct features, or the frame's categorical columns do not match
    the training ones. The tables are built once per booster.
    """
    categorical = sum(isinstance(dtype, pd.CategoricalDtype) for dtype in frame.dtypes)
    if load_kernels(_KERNELS) is None or categorical != len(booster.pandas_categorical or []):
        return None
    cached = _TABLES.setdefault(booster, {})
    key = (num_iteration, booster.num_trees())  # a booster trained further gets new tables
    if key not in cached:
        cached[key] = build_tables(booster, num_iteration)
    tables = cached[key]
    if tables is None or frame.shape[1] != tables.n_features:
        return None
    return tree_contributions(tables, lightgbm_matrix(booster, frame))
