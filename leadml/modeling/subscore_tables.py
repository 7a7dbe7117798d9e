"""A group's effect (:func:`~leadml.modeling.lightgbm.effects.tree_group_margin`) by tables: the same bits, faster.

The walk of :mod:`leadml.modeling.lightgbm.effects` follows each row at the splits on a feature of
the group (the *known* splits) and takes both branches at the others, weighted by their training
shares. So what a tree adds to a row depends only on the row's answers at the tree's known splits:
for each mask of those answers the walk adds a fixed list of terms (``share * ... * leaf``), in a
fixed order, and the parts above any known split add a constant. The tables hold, per tree and
mask, that list, made once per model and group by running the walk's own arithmetic on the
nodes; a numba kernel (:mod:`leadml.modeling.subscore_kernel`) then tests each known split of a
row once and adds the terms of its mask, in the walk's order. The sums are the walk's sums, term
by term, so the effects (and the sub-scores ranked from them) are the same bits; the walk itself
runs numpy over every row at every node, several times the kernel's cost for a large model.

Each tree's lists are padded with +0.0 to its longest (a row's sum starts at +0.0 and never is
-0.0, so adding +0.0 changes no bit) and stored term position by term position: the kernel adds
one position of every row's list at a time, one look-up a row, without a length to test.

Used for trees with at most :data:`MAX_KNOWN` known splits, tables of at most :data:`MAX_TERMS`
terms, on batches of at least :data:`MIN_ROWS` rows, where numba can load the kernel;
:func:`group_margin` returns None otherwise and the caller walks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leadml.core.kernels import NUMBA_LOCK, load_kernels
from leadml.modeling.lightgbm.effects import ZERO, CompiledTrees

__all__ = ["KINDS", "MAX_KNOWN", "MAX_TERMS", "MIN_ROWS", "WORD_CODES", "GroupTables", "group_margin", "group_tables"]

MAX_KNOWN = 12  # known splits a tree: 4,096 masks at most
MAX_TERMS = 1 << 23  # padded terms of a group's tables (64 MB); more is left to the walk
WORD_CODES = 63  # a categorical split with at most this many known codes is tested on a 64-bit word of them
MIN_ROWS = 20_000  # below this the kernel's load (once a process) does not pay off
KINDS = {"NaN": 0, "None": 1, "Zero": 2, "categorical": 3}  # as the kernel tells the splits apart
_KERNELS = "leadml.modeling.subscore_kernel"
_BLOCK = 256  # rows a block: the block's masks and sums stay in the first-level cache


@dataclass(frozen=True, eq=False)
class GroupTables:
    """The known splits of every tree and, per tree and mask of their answers, the terms to add."""

    shared: float  # what every row gets alike (added last, as the walk adds it)
    tree_splits: np.ndarray  # (n_trees + 1,) first known split of each tree
    feature: np.ndarray
    threshold: np.ndarray
    kind: np.ndarray
    default_left: np.ndarray
    nan_right: np.ndarray  # a categorical split whose missing type is NaN: NaN goes right
    cat_offsets: np.ndarray
    cat_left: np.ndarray
    cat_words: np.ndarray  # a categorical split's look-up as the bits of an int64 (when it has <= word_codes codes)
    word_codes: int  # WORD_CODES when the tables were made
    cat_columns: np.ndarray  # the columns some split reads as categories (coded once a block)
    cat_slot: np.ndarray  # a categorical split's column among cat_columns (-1: not categorical)
    term_offsets: np.ndarray  # (n_trees,) first term of each tree
    widths: np.ndarray  # (n_trees,) terms of each mask of each tree (padded with +0.0 to the longest list)
    terms: np.ndarray  # term p of mask m of tree t at term_offsets[t] + p * 2 ** known_t + m


def _is_leaf(node) -> bool:
    return not hasattr(node, "left")


def _expected(node) -> float:
    return node if _is_leaf(node) else node.expected


def _known_nodes(node, known: frozenset) -> list:
    """The tree's splits on a known feature, depth first (bit ``j`` of a mask is the ``j``-th)."""
    if _is_leaf(node) or node.features_below.isdisjoint(known):
        return []
    mine = [node] if node.feature in known else []
    return mine + _known_nodes(node.left, known) + _known_nodes(node.right, known)


def _walk(node, known: frozenset, bits: dict[int, int], mask: int, weighted: bool, scale: float,
          terms: list[float]) -> float:  # fmt: skip
    """The walk of ``effects`` for a row whose known answers are ``mask``: its terms appended in order,
    the constant part returned (the same products and sums, in the same order)."""
    if _is_leaf(node) or node.features_below.isdisjoint(known):
        value = _expected(node)
        if not weighted:
            return scale * value
        terms.append(scale * value)  # the walk adds (scale * value) * 1.0 to the rows that reach it
        return 0.0
    if node.feature not in known:
        return (_walk(node.left, known, bits, mask, weighted, scale * node.left_share, terms)
                + _walk(node.right, known, bits, mask, weighted, scale * (1 - node.left_share), terms))  # fmt: skip
    goes_left = (mask >> bits[id(node)]) & 1
    # the walk visits both children with weights; the one the row does not take adds zeros
    _walk(node.left if goes_left else node.right, known, bits, mask, True, scale, terms)
    return 0.0 + 0.0


def _split_fields(node) -> tuple[int, float, int, bool, bool, np.ndarray]:
    """One known split as the kernel reads it: feature, threshold, kind, default side, NaN right, lookup."""
    if node.categories is not None:
        codes = node.categories[node.categories >= 0]
        lookup = np.zeros(int(codes.max()) + 1 if len(codes) else 0, dtype=np.bool_)
        lookup[codes] = True
        return node.feature, 0.0, KINDS["categorical"], node.default_left, node.missing == "NaN", lookup
    return node.feature, node.threshold, KINDS[node.missing], node.default_left, False, np.zeros(0, np.bool_)


def group_tables(compiled: CompiledTrees, features: Sequence[int]) -> GroupTables | None:
    """The tables of the group ``features`` (column positions); None when a tree has more than
    :data:`MAX_KNOWN` known splits or the padded terms are more than :data:`MAX_TERMS`."""
    known = frozenset(int(j) for j in features)
    shared = 0.0
    splits: list[tuple] = []
    tree_splits, term_offsets, widths, padded = [0], [], [], []
    size = 0
    for tree in compiled.trees:
        nodes = _known_nodes(tree, known)
        if len(nodes) > MAX_KNOWN:
            return None
        bits = {id(node): j for j, node in enumerate(nodes)}
        lists = []
        for mask in range(1 << len(nodes)):
            found: list[float] = []
            constant = _walk(tree, known, bits, mask, False, 1.0, found)
            lists.append(found)
        shared += constant  # the same for every mask: the walk's return for this tree
        table = _padded(lists)
        term_offsets.append(size)
        widths.append(table.shape[0])
        padded.append(table.ravel())
        size += table.size
        if size > MAX_TERMS:
            return None
        splits += [_split_fields(node) for node in nodes]
        tree_splits.append(len(splits))
    return _tables(shared, splits, tree_splits, term_offsets, widths, padded)


def _padded(lists: list[list[float]]) -> np.ndarray:
    """Per mask its terms, as a (longest list, masks) array: term ``p`` of mask ``m`` at ``[p, m]``, +0.0 past
    the end of a shorter list."""
    table = np.zeros((max(len(terms) for terms in lists), len(lists)), np.float64)
    for m, terms in enumerate(lists):
        table[: len(terms), m] = terms
    return table


def _tables(shared: float, splits: list[tuple], tree_splits: list[int], term_offsets: list[int], widths: list[int],
            padded: list[np.ndarray]) -> GroupTables:  # fmt: skip
    """The :class:`GroupTables` of the splits and padded terms :func:`group_tables` gathered."""
    lookups = [s[5] for s in splits]
    cat_offsets = np.concatenate([[0], np.cumsum([len(lookup) for lookup in lookups])]).astype(np.int64)
    kind = np.array([s[2] for s in splits], np.int64)
    feature = np.array([s[0] for s in splits], np.int64)
    categorical = kind == KINDS["categorical"]
    cat_columns = np.unique(feature[categorical])
    cat_slot = np.where(categorical, np.searchsorted(cat_columns, feature), -1).astype(np.int64)
    return GroupTables(
        shared=shared, tree_splits=np.array(tree_splits, np.int64), feature=feature,
        threshold=np.array([s[1] for s in splits], np.float64), kind=kind,
        default_left=np.array([s[3] for s in splits], np.bool_), nan_right=np.array([s[4] for s in splits], np.bool_),
        cat_offsets=cat_offsets,
        cat_left=np.concatenate([*lookups, np.zeros(1, np.bool_)]),  # one more: the kernel reads before it masks
        cat_words=np.array([_word(lookup) for lookup in lookups], np.int64), word_codes=WORD_CODES,
        cat_columns=cat_columns.astype(np.int64),
        cat_slot=cat_slot, term_offsets=np.array(term_offsets, np.int64), widths=np.array(widths, np.int64),
        terms=np.concatenate(padded) if padded else np.zeros(0, np.float64),
    )  # fmt: skip


def _word(lookup: np.ndarray) -> int:
    """A look-up of at most :data:`WORD_CODES` codes as the bits of an int64 (bit ``c``: code ``c`` goes left); 0
    for a longer one, which the kernel reads as it is."""
    if len(lookup) > WORD_CODES:
        return 0
    return sum(1 << c for c in np.flatnonzero(lookup).tolist())


def group_margin(tables: GroupTables | None, X: np.ndarray) -> np.ndarray | None:
    """``tree_group_margin`` of the rows of ``X`` by the tables; None when they or the kernel do not apply
    (the caller walks then)."""
    if tables is None or len(X) < MIN_ROWS:
        return None
    kernels = load_kernels(_KERNELS)
    if kernels is None:
        return None
    rows = np.asarray(X, dtype=np.float64)
    out = np.empty(len(rows))
    t = tables
    with NUMBA_LOCK:
        kernels.group_kernel(rows, out, t.tree_splits, t.feature, t.threshold, t.kind, t.default_left, t.nan_right,
                             t.cat_offsets, t.cat_left, t.cat_words, t.word_codes, t.cat_columns, t.cat_slot,
                             t.term_offsets, t.widths, t.terms, _BLOCK, ZERO)  # fmt: skip
    return out + t.shared
