"""The numba kernel of :mod:`leadml.modeling.subscore_tables` (imported only when a batch uses it).

Compiled on first use and cached on disk by numba (``cache=True``). Parallel over blocks of rows:
callers hold :data:`leadml.core.kernels.NUMBA_LOCK`. Each known split is tested over a whole
block (one column, one kind of test, no branches on the data, as
:mod:`leadml.modeling.lightgbm.compiled_kernel` does); a categorical column is turned into codes
once a block, and a split whose known codes fit a 64-bit word tests a row by a shift of that word.
Each row then adds its mask's terms, one term position of the tree at a time.
"""

import numba
import numpy as np

CODE_LIMIT = 2.0**62  # a floored category at or past this is outside every look-up (and exact as an int64)
NAN_CODE = -2  # a missing value's code in a block's codes; -1: a code outside every look-up


@numba.njit(nogil=True, cache=True)
def block_codes(X, start, stop, columns):
    """The codes of the rows ``start:stop`` in each categorical column: the value floored, -1 when
    negative or too large to be known, :data:`NAN_CODE` for a missing value."""
    rows = stop - start
    codes = np.empty((len(columns), rows), np.int64)
    for c in range(len(columns)):
        column = X[start:stop, columns[c]]
        for i in range(rows):
            x = column[i]
            missing = x != x
            whole = np.floor(0.0 if missing else x)
            inside = (whole >= 0.0) & (whole < CODE_LIMIT)
            code = np.int64(whole if inside else -1.0)
            codes[c, i] = NAN_CODE if missing else code
    return codes


@numba.njit(nogil=True, cache=True)
def categorical_bits(codes, mask, bit, known, nan_left, word, word_codes, cat_left, c0):
    """Set ``bit`` in ``mask`` for the rows a categorical split sends left: a known code whose entry
    is set (read off ``word`` when the split's ``known`` codes fit it, else off ``cat_left``), or a
    missing value when ``nan_left``."""
    missing_left = np.int64(nan_left)
    if known <= word_codes:
        for i in range(len(codes)):
            code = codes[i]
            inside = np.int64((code >= 0) & (code < known))
            left = (inside & ((word >> (code & 63)) & 1)) | (np.int64(code == NAN_CODE) & missing_left)
            mask[i] |= left * bit
    else:
        for i in range(len(codes)):
            code = codes[i]
            inside = np.int64((code >= 0) & (code < known))
            left = (inside & np.int64(cat_left[c0 + code * inside])) | (np.int64(code == NAN_CODE) & missing_left)
            mask[i] |= left * bit


@numba.njit(parallel=True, nogil=True, cache=True)
def group_kernel(X, out, tree_splits, feature, threshold, kind, default_left, nan_right, cat_offsets, cat_left,
                 cat_words, word_codes, cat_columns, cat_slot, term_offsets, widths, terms, block, zero):  # fmt: skip
    """Per row: the terms each tree adds given the row's answers at its known splits, in order
    (kinds: :data:`leadml.modeling.subscore_tables.KINDS`; the terms' layout: ``GroupTables``)."""
    n = X.shape[0]
    for b in numba.prange((n + block - 1) // block):
        start = b * block
        stop = min(n, start + block)
        rows = stop - start
        mask = np.zeros(rows, np.int64)
        total = np.zeros(rows, np.float64)
        codes = block_codes(X, start, stop, cat_columns)
        for t in range(len(tree_splits) - 1):
            mask[:] = 0
            first = tree_splits[t]
            for j in range(first, tree_splits[t + 1]):
                bit = np.int64(1) << (j - first)
                k = kind[j]
                limit = threshold[j]
                default = np.int64(default_left[j])
                if k == 3:  # a category: the value floored; NaN is category 0 unless NaN is the missing type
                    c0 = cat_offsets[j]
                    known = cat_offsets[j + 1] - c0
                    nan_left = known > 0 and not nan_right[j] and cat_left[c0]
                    categorical_bits(codes[cat_slot[j]], mask, bit, known, nan_left, cat_words[j], word_codes,
                                     cat_left, c0)  # fmt: skip
                    continue
                column = X[start:stop, feature[j]]
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
                else:  # missing type Zero: zero (and NaN, read as zero) to the default side
                    for i in range(rows):
                        x = column[i]
                        value = 0.0 if x != x else x
                        small = np.int64(abs(value) <= zero)
                        mask[i] |= ((small * default) | ((1 - small) & np.int64(value <= limit))) * bit
            base = term_offsets[t]
            size = np.int64(1) << (tree_splits[t + 1] - first)
            for p in range(widths[t]):  # term by term: each row's sum in its order, the rows side by side
                at = base + p * size  # a mask with fewer terms adds +0.0, which changes no sum
                for i in range(rows):
                    total[i] += terms[at + mask[i]]
        out[start:stop] = total
