"""A frame's columns read off pandas' blocks: the numbers and categoricals of a few rows without a
column lookup each.

A frame lookup costs tens of microseconds, so reading a one-lead feature frame of 70 columns by name
is most of what a served request spends on its matrices. pandas keeps same-typed columns together
in 2-D blocks; their rows are the columns' own arrays. These readers give what reading each column
by name gives (the tests compare the two) and step aside, reading nothing, where a pandas version
lays its frames out otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["categorical_blocks", "column_arrays", "frame_positions", "numeric_blocks"]


def numeric_blocks(features: pd.DataFrame, columns: list[str], translate: Mapping[str, Any], X: np.ndarray,
                   positions: np.ndarray | None = None) -> set[int]:  # fmt: skip
    """Write the numpy-typed numeric columns of ``features`` into ``X`` (matrix columns ``columns``,
    categoricals ``translate`` left out) straight from the frame's blocks; the positions written.

    A frame lookup per column is most of a one-lead request's matrix (~1 ms for 70 columns); a
    block's rows are the columns' own arrays, assigned as ``X[:, j] = column`` assigns them (the
    same casts to float64), with no copy of the frame. ``positions``: each matrix column's position
    in ``features`` (-1 when absent), computed here when not given. The blocks are pandas' internal
    layout: where a pandas version lacks them, nothing is written and every column is read by name.
    """
    try:
        blocks = features._mgr.blocks
    except AttributeError:
        return set()
    if positions is None:
        positions = frame_positions(features.columns, columns)
    target = np.full(len(features.columns), -1, dtype=np.intp)
    for j, name in enumerate(columns):
        if name not in translate and positions[j] >= 0:
            target[positions[j]] = j
    done: set[int] = set()
    for block in blocks:
        values = getattr(block, "values", None)
        if not (isinstance(values, np.ndarray) and values.ndim == 2 and values.dtype.kind in "fiub"):
            continue  # categoricals, text and pandas' own extension arrays: by name
        for row, j in enumerate(target[block.mgr_locs.as_array].tolist()):
            if j >= 0:
                X[:, j] = values[row]
                done.add(j)
    return done


def categorical_blocks(features: pd.DataFrame) -> dict[int, pd.Categorical]:
    """The frame's Categorical columns by position, read off its blocks (none where a pandas version
    lays them out otherwise: the matrix then reads each by name)."""
    try:
        blocks = features._mgr.blocks
    except AttributeError:
        return {}
    found = {}
    for block in blocks:
        values = getattr(block, "values", None)
        if isinstance(values, pd.Categorical):
            (position,) = block.mgr_locs.as_array.tolist()
            found[position] = values
    return found


def frame_positions(frame_columns: pd.Index, columns: Sequence[str]) -> np.ndarray:
    """The position of each of ``columns`` in ``frame_columns`` (-1: absent; a repeated name: -1, read by name)."""
    if not frame_columns.is_unique:
        return np.full(len(columns), -1, dtype=np.intp)
    return np.asarray(frame_columns.get_indexer(list(columns)), dtype=np.intp)


def column_arrays(frame: pd.DataFrame) -> dict[str, Any]:
    """Each column's own array by name: a numpy block's row, or a pandas extension array (text,
    categorical, nullable), read off the blocks; by position where a pandas version lays frames out
    otherwise, or where names repeat (the first of a name). Read only: the arrays are the frame's."""
    names = frame.columns.tolist()
    blocks = getattr(getattr(frame, "_mgr", None), "blocks", None)
    if blocks is None or len(set(names)) != len(names):
        return {name: frame.iloc[:, names.index(name)].array for name in dict.fromkeys(names)}
    found: dict[str, Any] = {}
    for block in blocks:
        values = block.values
        for row, position in enumerate(block.mgr_locs.as_array.tolist()):
            # a numpy block and a datetime block (its DatetimeArray) are 2-D, one row a column
            found[names[position]] = values[row] if getattr(values, "ndim", 1) == 2 else values
    return found
