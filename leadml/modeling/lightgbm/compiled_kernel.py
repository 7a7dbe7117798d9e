"""The numba kernels of :mod:`leadml.modeling.lightgbm.compiled` (imported only when a batch uses them).

Compiled on first use and cached on disk by numba (``cache=True``), so a later process loads them
in a fraction of a second. ``raw_kernel`` is parallel over blocks of rows: callers hold
:data:`leadml.core.kernels.NUMBA_LOCK`.
"""

import math

import numba
import numpy as np


@numba.njit(parallel=True, nogil=True, cache=True)
def raw_kernel(X, out, tree_splits, feature, threshold, categorical, zero_left, nan_left, cat_offsets,
               cat_left, table_offsets, leaf_of_mask, leaf_value, block, zero):  # fmt: skip
    n = X.shape[0]
    for b in numba.prange((n + block - 1) // block):
        start = b * block
        stop = min(n, start + block)
        rows = stop - start
        mask = np.zeros(rows, np.int32)
        total = np.zeros(rows, np.float64)
        for t in range(len(tree_splits) - 1):
            mask[:] = 0
            first = tree_splits[t]
            for j in range(first, tree_splits[t + 1]):
                column = X[start:stop, feature[j]]
                bit = np.int32(1) << (j - first)
                if not categorical[j]:
                    limit = threshold[j]
                    to_zero, to_nan = np.int32(zero_left[j]), np.int32(nan_left[j])
                    for i in range(rows):  # no branches: each answer is an integer of comparisons
                        x = column[i]
                        nonzero = np.int32((x > zero) | (x < -zero))  # False for NaN
                        missing = np.int32(x != x)
                        below = np.int32(x <= limit)
                        left = (nonzero & below) | ((1 - nonzero) & (1 - missing) & to_zero) | (missing & to_nan)
                        mask[i] |= left * bit
                else:
                    c0 = cat_offsets[j]
                    known = cat_offsets[j + 1] - c0
                    for i in range(rows):
                        x = column[i]  # the code is x truncated toward zero, as a C++ int cast
                        if x > -1.0 and x < known and cat_left[c0 + int(x)]:  # NaN fails every comparison
                            mask[i] |= bit
            offset = table_offsets[t]
            for i in range(rows):
                total[i] += leaf_value[leaf_of_mask[offset + mask[i]]]
        out[start:stop] = total


@numba.njit(nogil=True, cache=True)
def sigmoid_kernel(raw, out, sigmoid):
    for i in range(len(raw)):  # the scalar libm exp LightGBM's ConvertOutput calls
        out[i] = 1.0 / (1.0 + math.exp(-sigmoid * raw[i]))
