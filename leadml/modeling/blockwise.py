"""The logistic regression's numeric preprocessing, a block of columns at a time, and its design matrix in one piece.

:class:`BlockwiseNumeric` is the ``Pipeline`` of :class:`~leadml.modeling.logistic.TailLog`,
``SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)`` and
``StandardScaler`` that the logistic model used before, with the same fitted steps, but it fits and
transforms ``BLOCK_COLUMNS`` columns at a time; :func:`design_matrix` writes its output straight into
the preallocated design matrix. The three steps one after the other made several float64 copies of
every numeric column, and the ColumnTransformer a stack of them (issue 19): the fit now holds about
one design matrix and a few blocks.

Why the numbers stay the same bit for bit: every statistic is a per-column reduction computed by the
same code on blocks laid out as the whole matrix was (the skewness by ``column_skewness``, the
median by ``SimpleImputer``, the mean and variance by ``StandardScaler``), the transform is
elementwise, and every array has the layout (row- or column-major) that the plain pipeline gave it,
so numpy sums each column in the same order. Tested against the previous pipeline in
``tests/modeling/test_logistic_memory.py``.

At prediction (issue 19) the design matrix is written a chunk of rows at a time, each step on a
chunk in cache (:meth:`BlockwiseNumeric.transform_into`), and the one-hot columns are looked up
from the encoder's output for the levels present (:func:`one_hot_into`): every step elementwise,
the log on contiguous arrays as before, so the same bits (``tests/modeling/test_logistic_transform_fast.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from leadml.modeling.model_inputs import signed_log1p

__all__ = [
    "BLOCK_COLUMNS",
    "BlockwiseNumeric",
    "DesignColumns",
    "column_blocks",
    "design_matrix",
    "float_block",
    "log_block",
    "one_hot_into",
    "placeholder_outputs",
    "signed_log1p_into",
]

# columns per block: 16 float64 columns of 1M rows are 128 MB
BLOCK_COLUMNS = 16


def column_blocks(n_columns: int, width: int = BLOCK_COLUMNS) -> list[slice]:
    """Consecutive slices of at most ``width`` columns (at least 2) covering ``n_columns``, none one column wide.

    A block of one column would be reduced by numpy in another order than the same column of a
    wider matrix (pairwise instead of row after row), so a last block of one joins the one before.

    Example:
        >>> [(s.start, s.stop) for s in column_blocks(33, 16)]
        [(0, 16), (16, 33)]
    """
    width = max(int(width), 2)
    starts = list(range(0, n_columns, width))
    if len(starts) > 1 and n_columns - starts[-1] == 1:
        starts.pop()
    stops = starts[1:] + [n_columns]
    return [slice(a, b) for a, b in zip(starts, stops)]


def float_block(X, columns: slice) -> np.ndarray:
    """Columns ``columns`` of a frame or 2-D array as a writable float64 array of their own.

    A frame's block comes out laid out as scikit-learn lays out the whole frame (column-major),
    so reductions over it give the bits they give over the whole.
    """
    part = X.iloc[:, columns] if hasattr(X, "iloc") else X[:, columns]
    values = check_array(part, dtype=np.float64, ensure_all_finite="allow-nan", ensure_min_samples=1)
    if np.may_share_memory(values, X) or not values.flags.writeable:
        values = values.copy(order="K")
    return values


def signed_log1p_into(values: np.ndarray) -> None:
    """``values[...] = signed_log1p(values)`` for a contiguous array, the log taken only where it changes something.

    ``signed_log1p(+0.0)`` is ``+0.0``, and most counts are 0: those entries (all bits 0) are left as
    they are, the others gathered into one contiguous array, which ``signed_log1p`` logs as it logged
    the whole array (the same loop, element by element), and written back.
    """
    if not (values.flags.c_contiguous or values.flags.f_contiguous):
        raise ValueError("signed_log1p_into: the values must be contiguous (a reshape would copy them)")
    flat = values.reshape(-1, order="C" if values.flags.c_contiguous else "F")
    changed = flat.view(np.int64) != 0
    flat[changed] = signed_log1p(flat[changed])


def log_block(values: np.ndarray, logged: np.ndarray) -> np.ndarray:
    """``values`` with the columns flagged in ``logged`` replaced by their signed log, in place."""
    if logged.any():
        values[:, logged] = signed_log1p(values[:, logged])
    return values


class BlockwiseNumeric(Pipeline):
    """TailLog, median imputation with missing flags, and standard scaling, fitted and applied by blocks of columns.

    The steps (``log``, ``impute``, ``scale``) are the scikit-learn estimators of the plain pipeline
    and end up with the same fitted attributes (``logged_``, ``statistics_``, ``indicator_``,
    ``mean_``, ``var_``, ``scale_``, ``n_samples_seen_``), so explanations and feature names read it
    as a ``Pipeline``. ``sample_weight`` (routed when metadata routing is on) weighs the rows in the
    tail test and the scaler, as the plain pipeline does with those requests set.
    """

    def fit(self, X, y=None, **params) -> BlockwiseNumeric:
        """Fit the three steps on ``X`` a block of columns at a time, without making the output."""
        sample_weight = params.pop("sample_weight", None)
        if params:
            raise TypeError(f"BlockwiseNumeric.fit got unexpected parameters {sorted(params)}")
        log, impute = self.named_steps["log"], self.named_steps["impute"]
        log.fit(X, sample_weight=sample_weight)
        medians, missing = [], []
        for block in column_blocks(len(log.logged_)):
            values = log_block(float_block(X, block), log.logged_[block])
            missing.append(np.isnan(values).any(axis=0))
            medians.append(SimpleImputer(strategy="median", keep_empty_features=True).fit(values).statistics_)
        missing_any = np.concatenate(missing)
        # the imputer's structure (missing flags of the columns missing in training) from one row
        impute.fit(np.where(missing_any, np.nan, 0.0)[None, :])
        impute.statistics_ = np.concatenate(medians)
        self._fit_scale(X, sample_weight)
        return self

    def fit_transform(self, X, y=None, **params) -> np.ndarray:
        """``fit``, then the output (a zero placeholder of its shape inside :func:`placeholder_outputs`)."""
        self.fit(X, y, **params)
        if _PLACEHOLDER.get():
            return np.broadcast_to(np.float64(0.0), (_num_rows(X), self._width()))
        return self.transform(X)

    def transform(self, X, **params) -> np.ndarray:
        """The scaled, imputed columns followed by the missing flags of the columns missing in training."""
        check_is_fitted(self.named_steps["scale"], "scale_")
        validate_data(self.named_steps["log"], X, reset=False, skip_check_array=True)  # names and width as in fit
        out = np.empty((_num_rows(X), self._width()), dtype=np.float64, order=self.output_order())
        self.transform_into(X, out)
        return out

    def output_order(self) -> Literal["C", "F"]:
        """The layout of the output, as SimpleImputer's stack of its column-major input and flags laid it out.

        Column-major; row-major when a single column and its flag (two arrays of one column) were stacked.
        """
        return "F" if len(self.named_steps["log"].logged_) >= 2 else "C"

    def transform_into(self, X, out: np.ndarray) -> None:
        """Write the output of ``transform`` into ``out`` (a view of a wider design matrix, any layout).

        A chunk of rows at a time, every step on it while it is in cache: the columns converted to
        float64, the heavy tails logged, the missing flags taken, the medians filled in, then scaled.
        Every step is elementwise (the log on contiguous runs of columns, as on the whole block), so
        each value has the bits the whole-column steps gave it.
        """
        columns, rows = self._input_columns(X), _num_rows(X)
        if rows == 0:  # check_array refuses a block of no rows: the same error as before
            for block in column_blocks(self._width()):
                out[:, block] = self._unscaled(X, block, self.output_order())
            return
        chunk_rows = max(2, CHUNK_CELLS // max(self._width(), 1))
        buffer = np.empty((min(chunk_rows, rows), self._width()), dtype=np.float64, order="F")
        for start in range(0, rows, chunk_rows):
            stop = min(start + chunk_rows, rows)
            chunk = buffer if stop - start == len(buffer) else np.empty_like(buffer[: stop - start], order="F")
            self._transform_chunk(X, columns, slice(start, stop), chunk, out[start:stop])

    def _transform_chunk(self, X, columns: list[np.ndarray], rows: slice, chunk: np.ndarray, out: np.ndarray) -> None:
        """Rows ``rows`` of the output into ``out``, the unscaled values made in the column-major ``chunk``."""
        logged, impute, scale = self.named_steps["log"].logged_, self.named_steps["impute"], self.named_steps["scale"]
        values = chunk[:, : len(columns)]
        for at, column in enumerate(columns):
            values[:, at] = column[rows]
        if np.isinf(values).any():  # check_array refuses infinities: its error, from the column holding one
            _raise_infinite(lambda at: self._input_block(X, slice(at, at + 1)), values)
        for run in _runs(logged):
            signed_log1p_into(values[:, run])  # a column-major run of columns is contiguous
        missing = np.isnan(values)
        chunk[:, len(columns) :] = missing[:, self._flagged()]
        np.copyto(values, impute.statistics_, where=missing)
        chunk -= scale.mean_
        np.divide(chunk, scale.scale_, out=out)

    def _flagged(self) -> np.ndarray:
        """The input columns with a missing flag, in the order of the flags."""
        indicator = self.named_steps["impute"].indicator_
        return np.zeros(0, dtype=int) if indicator is None else np.asarray(indicator.features_, dtype=int)

    def _input_columns(self, X) -> list[np.ndarray]:
        """Each input column as a 1-D numeric array, by the fitted names for a frame, without a copy when it can.

        A column of another dtype (nullable, object, ...) goes through ``check_array`` as its block
        did, so it converts (or fails) as before.
        """
        names = getattr(self.named_steps["log"], "feature_names_in_", None)
        n_columns = len(self.named_steps["log"].logged_)
        columns = []
        for at in range(n_columns):
            if names is not None and hasattr(X, "columns"):
                column = X[names[at]]
            else:
                column = X.iloc[:, at] if hasattr(X, "iloc") else X[:, at]
            plain = isinstance(getattr(column, "dtype", None), np.dtype) and np.ndim(column) == 1
            if plain and column.dtype.kind in "fiu":  # a numpy column (a frame's is read without a copy)
                columns.append(column.to_numpy() if hasattr(column, "to_numpy") else column)
            else:
                columns.append(self._input_block(X, slice(at, at + 1))[:, 0])
        return columns

    def _width(self) -> int:
        indicator = self.named_steps["impute"].indicator_
        return len(self.named_steps["log"].logged_) + (0 if indicator is None else len(indicator.features_))

    def _unscaled(self, X, columns: slice, order: Literal["C", "F"]) -> np.ndarray:
        """Output columns ``columns`` before scaling (logged, imputed values, then 0/1 flags), a block of their own."""
        logged, impute = self.named_steps["log"].logged_, self.named_steps["impute"]
        n_columns = len(logged)
        flagged = impute.indicator_.features_ if impute.indicator_ is not None else np.zeros(0, dtype=int)
        block = np.empty((_num_rows(X), columns.stop - columns.start), dtype=np.float64, order=order)
        values_at = slice(columns.start, min(columns.stop, n_columns))
        if values_at.stop > values_at.start:
            values = log_block(self._input_block(X, values_at), logged[values_at])
            np.copyto(values, impute.statistics_[values_at], where=np.isnan(values))
            block[:, : values_at.stop - values_at.start] = values
        for at in range(max(columns.start, n_columns), columns.stop):
            source = int(flagged[at - n_columns])
            block[:, at - columns.start] = np.isnan(self._input_block(X, slice(source, source + 1))[:, 0])
        return block

    def _input_block(self, X, columns: slice) -> np.ndarray:
        """Input columns ``columns`` as float64; a frame is read by the fitted names (it may hold other columns)."""
        names = getattr(self.named_steps["log"], "feature_names_in_", None)
        if names is not None and hasattr(X, "columns"):
            return float_block(X[list(names[columns])], slice(None))
        return float_block(X, columns)

    def _fit_scale(self, X, sample_weight) -> None:
        """The scaler's mean, variance and scale from blocks of the output, as one fit over all of it gives them."""
        scale, width, order = self.named_steps["scale"], self._width(), self.output_order()
        fitted = [
            StandardScaler().fit(self._unscaled(X, block, order), sample_weight=sample_weight)
            for block in column_blocks(width)
        ]
        scale.fit(np.zeros((1, width)))  # n_features_in_ and the other bookkeeping of a fit
        scale.mean_ = np.concatenate([part.mean_ for part in fitted])
        scale.var_ = np.concatenate([part.var_ for part in fitted])
        scale.scale_ = np.concatenate([part.scale_ for part in fitted])
        seen = np.concatenate([np.broadcast_to(part.n_samples_seen_, part.mean_.shape) for part in fitted])
        scale.n_samples_seen_ = seen[0] if seen.max() == seen.min() else seen


class DesignColumns(ColumnTransformer):
    """A ColumnTransformer whose stacked output is a zero placeholder of its shape inside :func:`placeholder_outputs`.

    Fitted inside it, it gets every fitted step and output column without stacking (or densifying)
    the blocks' outputs: :func:`design_matrix` then writes the design matrix once.
    """

    def _hstack(self, Xs, *, n_samples):
        if _PLACEHOLDER.get() and not self.sparse_output_:
            return np.broadcast_to(np.float64(0.0), (n_samples, sum(X.shape[1] for X in Xs)))
        return super()._hstack(Xs, n_samples=n_samples)


_PLACEHOLDER: ContextVar[bool] = ContextVar("blockwise_placeholder", default=False)

# rows per chunk when a one-hot block is written into the design matrix
CHUNK_ROWS = 65_536
# cells per chunk of rows of the numeric or one-hot output: 2 MB of float64, a chunk made in cache
CHUNK_CELLS = 262_144


def _runs(mask: np.ndarray) -> list[slice]:
    """The runs of consecutive True entries of a boolean ``mask``, as slices.

    Example:
        >>> [(s.start, s.stop) for s in _runs(np.array([True, True, False, True]))]
        [(0, 2), (3, 4)]
    """
    edges = np.flatnonzero(np.diff(np.concatenate(([0], np.asarray(mask, dtype=np.int8), [0]))))
    return [slice(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _raise_infinite(input_column, values: np.ndarray) -> None:
    """Raise check_array's error on the first column of ``values`` holding an infinity, read by ``input_column(at)``."""
    at = int(np.flatnonzero(np.isinf(values).any(axis=0))[0])
    input_column(at)  # check_array raises here, as it did on the block
    raise ValueError("Input contains infinity or a value too large for dtype('float64').")


def _num_rows(X) -> int:
    return int(X.shape[0])


@contextmanager
def placeholder_outputs() -> Iterator[None]:
    """While inside, :meth:`BlockwiseNumeric.fit_transform` returns a zero placeholder of its output's shape.

    For a ``ColumnTransformer`` fitted only for its fitted steps and output columns, whose design
    matrix :func:`design_matrix` then writes in one piece.
    """
    token = _PLACEHOLDER.set(True)
    try:
        yield
    finally:
        _PLACEHOLDER.reset(token)


def design_matrix(preprocess: ColumnTransformer, frame) -> np.ndarray:
    """``preprocess.transform(frame)`` of a fitted dense ColumnTransformer, written into one preallocated array.

    The ``BlockwiseNumeric`` block writes straight into its columns and the others are copied in, so
    the extra memory is the design matrix and the largest other block, where ``transform`` holds every
    block's output and their stack. The layout is the one ``np.hstack`` gives the blocks' outputs.
    """
    check_is_fitted(preprocess, "transformers_")
    parts = []
    for name, transformer, columns in preprocess.transformers_:
        where = preprocess.output_indices_.get(name, slice(0, 0))
        if transformer == "drop" or where.stop <= where.start:
            continue
        if transformer == "passthrough" or isinstance(transformer, str):
            raise ValueError(
                f"design_matrix: the {name!r} block is {transformer!r}; only fitted transformers are written"
            )
        parts.append((transformer, columns, where))
    rows = frame.shape[0]
    samples = [_sample_output(transformer, frame[columns]) for transformer, columns, _ in parts]
    stacked = np.hstack(samples) if samples else np.zeros((2, 0))
    out = np.empty((rows, stacked.shape[1]), dtype=np.float64, order="F" if _column_major(stacked) else "C")
    for transformer, columns, where in parts:
        if isinstance(transformer, BlockwiseNumeric):
            transformer.transform_into(frame, out[:, where])  # reads its columns by name, a chunk of rows at a time
        elif isinstance(transformer, OneHotEncoder):  # row by row: in chunks, never densified whole
            if one_hot_into(transformer, frame[columns], out[:, where]):
                continue
            for start in range(0, rows, CHUNK_ROWS):
                values = transformer.transform(frame[columns].iloc[start : start + CHUNK_ROWS])
                out[start : start + CHUNK_ROWS, where] = values.toarray() if hasattr(values, "toarray") else values
        else:
            values = transformer.transform(frame[columns])
            out[:, where] = values.toarray() if hasattr(values, "toarray") else values
    return out


def one_hot_into(encoder: OneHotEncoder, part: pd.DataFrame, out: np.ndarray) -> bool:
    """Write ``encoder.transform(part)``, dense, into ``out`` from its rows for the levels present; False if it can't.

    The encoder encodes each column on its own, so a row's output is, column by column, the output
    of its level: the encoder encodes one row per level present (NaN included), the same code,
    and each row of ``part`` gets its levels' rows, looked up by the categorical codes. For columns
    not all pandas ``Categorical``, no rows, or an encoder that drops levels, nothing is written.
    """
    widths = _one_hot_widths(encoder)
    categorical = all(isinstance(dtype, pd.CategoricalDtype) for dtype in part.dtypes)
    if widths is None or not categorical or len(part) == 0 or sum(widths) != out.shape[1]:
        return False
    codes = [part.iloc[:, at].cat.codes.to_numpy().astype(np.intp) + 1 for at in range(part.shape[1])]  # 0: NaN
    present = [np.flatnonzero(np.bincount(code)) for code in codes]
    height = max(len(levels) for levels in present)
    sample = pd.DataFrame(
        {at: pd.Categorical.from_codes(np.resize(levels, height) - 1, dtype=part.dtypes.iloc[at])
         for at, levels in enumerate(present)}
    ).set_axis(part.columns, axis=1)  # fmt: skip
    encoded = encoder.transform(sample)
    table = np.asarray(encoded.toarray() if hasattr(encoded, "toarray") else encoded)
    if table.shape != (height, out.shape[1]):
        return False
    lookups = []
    for code, levels, block in zip(codes, present, _column_slices(widths)):
        row_of = np.zeros(code.max() + 1, dtype=np.intp)
        row_of[levels] = np.arange(len(levels))
        lookups.append((row_of[code], np.ascontiguousarray(table[:, block]), block))
    step = max(1, CHUNK_CELLS // max(out.shape[1], 1))
    for start in range(0, len(part), step):
        for rows, levels_out, block in lookups:
            out[start : start + step, block] = levels_out[rows[start : start + step]]
    return True


def _column_slices(widths: list[int]) -> list[slice]:
    """Consecutive slices of the given widths, from column 0."""
    stops = np.cumsum(widths, dtype=int)
    return [slice(int(stop - width), int(stop)) for stop, width in zip(stops, widths)]


def _one_hot_widths(encoder: OneHotEncoder) -> list[int] | None:
    """The output columns of each input column of a fitted encoder that drops no level (None for one that does)."""
    if encoder.drop is not None:
        return None
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(encoder.categories_)
    return [
        len(levels) - (len(rare) - 1 if rare is not None and len(rare) else 0)
        for levels, rare in zip(encoder.categories_, infrequent)
    ]


def _sample_output(transformer, frame) -> np.ndarray:
    """A two-row stand-in laid out as the transformer's output is, for ``np.hstack`` to choose the layout."""
    if isinstance(transformer, BlockwiseNumeric):
        return np.zeros((2, transformer._width()), order=transformer.output_order())
    values = transformer.transform(frame.iloc[:2])
    values = np.asarray(values.toarray() if hasattr(values, "toarray") else values, dtype=np.float64)
    if values.shape[0] < 2:  # a frame of one row: its design matrix is both row- and column-major, only the
        return np.zeros((2, values.shape[1]))  # width counts (one row would not stack with two-row stand-ins)
    return values


def _column_major(values: np.ndarray) -> bool:
    return bool(values.flags.f_contiguous and not values.flags.c_contiguous)
