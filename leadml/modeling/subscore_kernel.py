"""The numba kernel of :mod:`leadml.modeling.subscore_tables` (imported only when a batch uses it).

Compiled on first use and cached on disk by numba (``cache=True``). Parallel over blocks of rows:
callers hold :data:`leadml.core.kernels.NUMBA_LOCK`. Each known split is tested over a whole
block (one column, one kind of test, no branches on the data, as
:mod:`leadml.modeling.lightgbm.compiled_kernel` does); each row then adds its mask's terms.
"""

import numba
import numpy as np


@numba.njit(parallel=True, nogil=True, cache=True)
def group_kernel(X, out, tree_splits, feature, threshold, kind, default_left, nan_right, cat_offsets, cat_left,
                 table_offsets, term_offsets, terms, block, zero):  # fmt: skip
    """Per row: the terms each tree adds given the row's answers at its known splits, in order
    (kinds: :data:`leadml.modeling.subscore_tables.KINDS`)."""
    n = X.shape[0]
    for b in numba.prange((n + block - 1) // block):
        start = b * block
        stop = min(n, start + block)
        rows = stop - start
        mask = np.zeros(rows, np.int64)
        total = np.zeros(rows, np.float64)
        count = np.zeros(rows, np.int64)
        for t in range(len(tree_splits) - 1):
            mask[:] = 0
            first = tree_splits[t]
            for j in range(first, tree_splits[t + 1]):
                column = X[start:stop, feature[j]]
                bit = np.int64(1) << (j - first)
                k = kind[j]
                limit = threshold[j]
                default = np.int64(default_left[j])
                if k == 0:  # missing type NaN: NaN to the default side
                    for i in range(rows):
                        x = column[i]
                        missing = np.int64(x != x)
                        mask[i] |= ((missing * default) | ((1 - missing) & np.int64(x <= limit))) * bit
                elif k == 1:  # missing type None: NaN reads as zero
                    for i in range(rows):
                        x = column[i]
                        value = 0.0 if x != x else x
                        mask[i] |= np.int64(value <= limit) * bit
                elif k == 2:  # missing type Zero: zero (and NaN, read as zero) to the default side
                    for i in range(rows):
                        x = column[i]
                        value = 0.0 if x != x else x
                        small = np.int64(abs(value) <= zero)
                        mask[i] |= ((small * default) | ((1 - small) & np.int64(value <= limit))) * bit
                else:  # a category: the value floored; NaN is category 0 unless NaN is the missing type
                    c0 = cat_offsets[j]
                    known = cat_offsets[j + 1] - c0
                    keep_nan = np.int64(1 - nan_right[j])
                    for i in range(rows):
                        x = column[i]
                        missing = x != x
                        whole = np.floor(0.0 if missing else x)
                        inside = np.int64((whole >= 0.0) & (whole < known))
                        code = np.int64(whole) * inside  # 0 outside the look-up: read, then masked out
                        allowed = np.int64(1) - np.int64(missing) * (1 - keep_nan)
                        mask[i] |= (inside & allowed & np.int64(cat_left[c0 + code])) * bit
            offset = table_offsets[t]
            longest = 0
            for i in range(rows):  # mask -> the row's first term and the number of its terms
                slot = offset + mask[i]
                mask[i] = term_offsets[slot]
                count[i] = term_offsets[slot + 1] - mask[i]
                longest = max(longest, count[i])
            last = len(terms) - 1
            for p in range(longest):  # term by term: each row's sum in its order, the rows side by side
                for i in range(rows):  # a row with fewer terms adds +0.0, which changes no sum
                    term = terms[min(mask[i] + p, last)]
                    total[i] += term if p < count[i] else 0.0
        out[start:stop] = total
