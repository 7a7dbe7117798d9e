"""A LightGBM binary model as decision tables, scored by a compiled kernel: ``Booster.predict``'s bits, faster.

A tree with ``k`` splits sends a row to the leaf fixed by which of its ``k`` split tests the row
passes. The kernel takes a block of rows, runs each split's test over the whole block (one
feature column, no branches, so the compiler vectorises it), packs each row's ``k`` answers into
a ``k``-bit mask and reads the leaf from a ``2^k`` table made once per model. LightGBM walks each
row down each tree instead: a chain of branches that depend on the data.

The tests follow LightGBM's ``tree.h``: a value with ``|x| <= 1e-35`` (``kZeroThreshold``, a
float) is zero, as LightGBM's dense-row reader drops it; a missing value (NaN) goes where the
split's missing type sends it (``None``: read as zero, ``Zero``: with zero to the default side,
``NaN``: to the default side); a category is the value truncated toward zero (so -0.5 is
category 0), and NaN, negative or unknown codes go right. Leaf values are added in tree order from zero, as
``GBDT::PredictRaw`` adds them, and the sigmoid is LightGBM's, so the probabilities are the same
bits as ``Booster.predict`` (the tests compare them on every kind of value).

Used for binary models without linear trees whose trees have at most :data:`MAX_SPLITS` splits
(leadml's default 7-leaf trees have 6), on batches of at least :data:`MIN_ROWS` rows; anything
else is scored by ``Booster.predict`` itself (:func:`booster_probability` chooses).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from leadml.core.kernels import NUMBA_LOCK, load_kernels

MAX_SPLITS = 12  # a 4,096-entry table per tree at most; larger trees are left to LightGBM
MIN_ROWS = 20_000  # below this, loading the compiled kernel (about 0.4 s, once a process) does not pay off
ONE_THREAD_ROWS = 1_000  # below this, LightGBM predicts on one thread: its threads' start costs more than the rows


def thread_options(n_rows: int) -> dict[str, int]:
    """``Booster.predict`` options for ``n_rows`` rows: one thread for a few rows, the booster's own otherwise.

    A row's prediction does not depend on the number of threads (the same bits); a parallel region
    for one row waits for every thread, which on a busy machine costs milliseconds (a served event).
    """
    return {"num_threads": 1} if n_rows < ONE_THREAD_ROWS else {}


ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, a float literal
_BLOCK = 256  # rows a block: the block's masks and sums stay in the first-level cache
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
_KERNELS = "leadml.modeling.lightgbm.compiled_kernel"


@dataclass(frozen=True, eq=False)
class CompiledTrees:
    """A binary LightGBM model's splits and per-tree leaf tables, as flat arrays."""

    n_features: int
    sigmoid: float
    tree_splits: np.ndarray  # (n_trees + 1,) first split of each tree
    feature: np.ndarray
    threshold: np.ndarray
    categorical: np.ndarray
    zero_left: np.ndarray  # where a zero goes
    nan_left: np.ndarray  # where a missing value goes
    cat_offsets: np.ndarray  # (n_splits + 1,) offsets into cat_left
    cat_left: np.ndarray  # per categorical split: whether category code c goes left
    table_offsets: np.ndarray  # (n_trees,) offset of each tree's table in leaf_of_mask
    leaf_of_mask: np.ndarray  # per tree: mask of the splits a row goes left at -> its leaf
    leaf_value: np.ndarray


def goes_left(split: dict) -> np.ndarray:
    """Of a categorical split in LightGBM's model dump: whether category code ``c`` goes left, per ``c``."""
    codes = [int(code) for code in str(split["threshold"]).split("||")]
    lookup = np.zeros(max(codes) + 1, dtype=np.bool_)
    lookup[codes] = True
    return lookup


def stacked(lookups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, values)``: per-split look-ups in one flat array, split ``j``'s at ``offsets[j]:offsets[j + 1]``."""
    offsets = np.concatenate([[0], np.cumsum([len(lookup) for lookup in lookups])]).astype(np.int64)
    return offsets, (np.concatenate(lookups) if lookups else np.zeros(0, np.bool_))


def splits_in_order(root: dict) -> list[dict]:
    """The tree's splits, depth first from the root (bit ``j`` of a mask is the ``j``-th)."""
    order, stack = [], [root]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            order.append(node)
            stack += [node["right_child"], node["left_child"]]
    return order


def _leaf_table(root: dict, splits: list[dict], first_leaf: int) -> np.ndarray:
    """For every mask of the tree's split answers (bit set: goes left), the leaf the row reaches."""
    bit = {id(node): j for j, node in enumerate(splits)}
    masks = np.arange(1 << len(splits))
    leaves = np.empty(len(masks), dtype=np.int64)

    def fill(node: dict, rows: np.ndarray) -> None:
        if "split_index" not in node:
            leaves[rows] = first_leaf + _leaf_index(node)
            return
        left = ((rows >> bit[id(node)]) & 1) == 1
        fill(node["left_child"], rows[left])
        fill(node["right_child"], rows[~left])

    fill(root, masks)
    return leaves


def _leaves(node: dict) -> list[dict]:
    if "split_index" not in node:
        return [node]
    return _leaves(node["left_child"]) + _leaves(node["right_child"])


def _leaf_index(leaf: dict) -> int:
    return int(leaf.get("leaf_index", 0))  # a tree of one leaf dumps no index


def compile_trees(booster, num_iteration: int | None = None) -> CompiledTrees | None:
    """Flatten a binary LightGBM booster into :class:`CompiledTrees`; None when the kernel does not apply."""
    model = booster.dump_model(num_iteration=num_iteration)
    objective = str(model.get("objective", ""))
    if model.get("num_tree_per_iteration", 1) != 1 or not objective.startswith("binary") or model.get("average_output"):
        return None
    sigmoid = 1.0
    for word in objective.split()[1:]:
        if word.startswith("sigmoid:"):
            sigmoid = float(word.split(":", 1)[1])
    leaf_values: list[float] = []
    tree_splits, table_offsets, tables = [0], [], []
    feature, threshold, categorical, zero_left, nan_left, cat_lists = [], [], [], [], [], []
    table_size = 0
    for tree in model["tree_info"]:
        root = tree["tree_structure"]
        if any(leaf.get("leaf_coeff") for leaf in _leaves(root)):  # a linear tree
            return None
        splits = splits_in_order(root)
        if len(splits) > MAX_SPLITS:
            return None
        for node in splits:
            is_categorical = node["decision_type"] == "=="
            limit = 0.0 if is_categorical else float(node["threshold"])
            missing, default_left = _MISSING[node["missing_type"]], bool(node["default_left"])
            feature.append(int(node["split_feature"]))
            threshold.append(limit)
            categorical.append(is_categorical)
            zero_left.append(default_left if missing == _MISSING["Zero"] else limit >= 0.0)
            nan_left.append(limit >= 0.0 if missing == _MISSING["None"] else default_left)
            cat_lists.append(goes_left(node) if is_categorical else np.zeros(0, np.bool_))
        table = _leaf_table(root, splits, len(leaf_values))
        leaf_values += [float(leaf["leaf_value"]) for leaf in sorted(_leaves(root), key=_leaf_index)]
        tree_splits.append(len(feature))
        table_offsets.append(table_size)
        tables.append(table)
        table_size += len(table)
    cat_offsets, cat_left = stacked(cat_lists)
    return CompiledTrees(
        n_features=int(model["max_feature_idx"]) + 1, sigmoid=sigmoid,
        tree_splits=np.array(tree_splits, np.int64), feature=np.array(feature, np.int64),
        threshold=np.array(threshold, np.float64), categorical=np.array(categorical, np.bool_),
        zero_left=np.array(zero_left, np.bool_), nan_left=np.array(nan_left, np.bool_),
        cat_offsets=cat_offsets, cat_left=cat_left,
        table_offsets=np.array(table_offsets, np.int64),
        leaf_of_mask=np.concatenate(tables) if tables else np.zeros(0, np.int64),
        leaf_value=np.array(leaf_values, np.float64),
    )  # fmt: skip


def raw_scores(trees: CompiledTrees, X: np.ndarray) -> np.ndarray:
    """The raw score (log-odds) of every row of the float64 matrix ``X``, as ``predict(raw_score=True)``."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != trees.n_features:
        raise ValueError(f"X has shape {X.shape}, the model takes {trees.n_features} columns")
    kernels = load_kernels(_KERNELS)
    if kernels is None:
        raise RuntimeError("the compiled trees' kernel cannot be loaded here (see the warning logged)")
    out = np.empty(len(X))
    t = trees
    with NUMBA_LOCK:
        kernels.raw_kernel(X, out, t.tree_splits, t.feature, t.threshold, t.categorical, t.zero_left, t.nan_left,
                    t.cat_offsets, t.cat_left, t.table_offsets, t.leaf_of_mask, t.leaf_value, _BLOCK,
                    ZERO_THRESHOLD)  # fmt: skip
    return out


def probabilities(trees: CompiledTrees, X: np.ndarray) -> np.ndarray:
    """The probability of every row of ``X``, as ``Booster.predict`` gives it."""
    raw = raw_scores(trees, X)
    out = np.empty_like(raw)
    kernels = load_kernels(_KERNELS)
    assert kernels is not None  # raw_scores has just loaded it (or raised)
    kernels.sigmoid_kernel(raw, out, trees.sigmoid)
    return out


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # booster -> {key: CompiledTrees | None}


def compiled_for(booster, num_iteration: int | None = None) -> CompiledTrees | None:
    """:func:`compile_trees` of ``booster``, made once per booster and number of trees."""
    cached = _COMPILED.setdefault(booster, {})
    key = (num_iteration, booster.num_trees())  # a booster trained further gets new tables
    if key not in cached:
        cached[key] = compile_trees(booster, num_iteration)
    return cached[key]


def booster_probability(booster, X: np.ndarray, num_iteration: int | None = None) -> np.ndarray:
    """``booster.predict(X, num_iteration=...)`` for a binary model: by the kernel when it applies.

    The two give the same bits; the kernel is chosen for batches of :data:`MIN_ROWS` rows or more
    when :func:`compile_trees` accepts the model and numba can load the kernel.
    """
    large = len(X) >= MIN_ROWS and load_kernels(_KERNELS) is not None
    trees = compiled_for(booster, num_iteration) if large else None
    if trees is None or X.shape[1] != trees.n_features:
        return np.asarray(booster.predict(X, num_iteration=num_iteration, **thread_options(len(X))), dtype=np.float64)
    return probabilities(trees, X)
