"""The numba kernel of :mod:`leadml.modeling.lightgbm.treeshap` (imported only when a batch uses it).

Compiled on first use and cached on disk by numba (``cache=True``), so later processes load it
instead of compiling it again (about 2 s). Parallel over blocks of rows: callers hold
:data:`leadml.core.kernels.NUMBA_LOCK`.
"""

import numba
import numpy as np


@numba.njit(parallel=True, nogil=True, cache=True)
def contributions(X, out, tree_nodes, tree_leaves, node_feature, node_threshold, node_kind,
                  node_missing, node_default_left, node_cats, cat_left, leaf_slots, slot_feature,
                  slot_keep, leaf_edges, edge_node, edge_left, edge_slot, leaf_tables, table_h,
                  table_r, block):  # fmt: skip
    n = X.shape[0]
    n_trees = len(tree_nodes) - 1
    max_nodes = 1
    for t in range(n_trees):
        max_nodes = max(max_nodes, tree_nodes[t + 1] - tree_nodes[t])
    for b in numba.prange((n + block - 1) // block):
        stop = min(n, (b + 1) * block)
        left = np.empty((max_nodes, block), dtype=np.bool_)
        for t in range(n_trees):  # trees outside, rows inside: a tree's tables stay in cache
            first = tree_nodes[t]
            for j in range(first, tree_nodes[t + 1]):
                feature, threshold, missing = node_feature[j], node_threshold[j], node_missing[j]
                for i in range(b * block, stop):
                    x = X[i, feature]
                    if node_kind[j] == 1:  # categorical: NaN and negatives go right
                        go = False
                        if not np.isnan(x) and x >= 0:
                            code = int(x)
                            go = code < node_cats[j + 1] - node_cats[j] and cat_left[node_cats[j] + code]
                    else:
                        if np.isnan(x) and missing != 2:
                            x = 0.0
                        if (missing == 1 and abs(x) <= 1e-35) or (missing == 2 and np.isnan(x)):
                            go = node_default_left[j]
                        else:
                            go = x <= threshold
                    left[j - first, i - b * block] = go
            for leaf in range(tree_leaves[t], tree_leaves[t + 1]):
                d = leaf_slots[leaf + 1] - leaf_slots[leaf]
                s0, base = leaf_slots[leaf], leaf_tables[leaf]
                e0, e1 = leaf_edges[leaf], leaf_edges[leaf + 1]
                for i in range(b * block, stop):
                    held = (1 << d) - 1
                    for e in range(e0, e1):
                        held &= ~(np.int64(left[edge_node[e], i - b * block] != edge_left[e]) << edge_slot[e])
                    r_held = table_r[base + held]
                    lost = table_h[base + held] * r_held
                    for k in range(d):
                        inside = (held >> k) & 1
                        gain = slot_keep[s0 + k] * table_h[base + (held ^ (1 << k))] * r_held
                        out[i, slot_feature[s0 + k]] += inside * gain - (1 - inside) * lost
