"""The feature chunk of one request: the batch job's chunk steps, with each lead's profile features kept.

A request scores a few leads whose profiles rarely change between two of their events, yet the
encoder's pandas work on one row costs most of a request. The profile features of a lead are a
function of its leads row alone (:func:`~leadml.features.chunk.profile_features` encodes each
distinct value on its own), so :class:`ProfileCache` computes them once per distinct row and
rebuilds its columns from the stored codes and floats: the same dtypes, the same bits.

:func:`served_chunks` is :func:`~leadml.jobs.feature_source.table_chunks` for the leads of one
request: the job's own :func:`~leadml.features.chunk.chunk_features`, given the cache as its profile
step (``profile_of``, :meth:`ProfileCache.arrays`). A rules model or an MQL rule per lead takes the job's
own :func:`~leadml.jobs.feature_source.table_chunks` whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from leadml.core.config import PipelineConfig, ProfileConfig
from leadml.features.chunk import chunk_features, profile_features
from leadml.features.snapshots import LEFT_OUT
from leadml.jobs.feature_source import FeatureChunk, _accepted, table_chunks
from leadml.modeling.frame_blocks import column_arrays

__all__ = ["ProfileCache", "profile_key", "served_chunks"]

_Row = tuple[Any, ...]
LONE_FRAMES = 2_000  # leads whose one-row arrays are kept (a few kB each; then the lot is dropped)


class ProfileCache:
    """The profile features of each lead, keyed by what the encoder reads of its row (:func:`profile_key`).

    A changed profile is another key and is computed again; a lead read alone and in a batch keeps
    its entry (a column the lone row lacks and a missing value are one key). The cache is bounded
    (``size`` leads, then emptied) and belongs to one model.
    """

    def __init__(self, builder: Any, size: int = 100_000):
        self.builder, self.size = builder, size
        profile = builder.profile or ProfileConfig()
        sources = (profile.job_title_column, profile.email_column, "job_level", "email_domain_kind")
        self.read = list(dict.fromkeys([*builder.encoder_.columns_, *(c for c in sources if c)]))
        self.numeric = {c for c in builder.encoder_.columns_ if c not in builder.encoder_.categorical_} - set(sources)
        self._rows: dict[str, tuple[tuple[str, ...], _Row]] = {}
        self._columns: list[str] | None = None
        self._dtypes: dict[str, pd.CategoricalDtype] = {}
        self._frames: dict[str, tuple[tuple, dict[str, Any]]] = {}  # lead_id -> (its entry, its one-row arrays)
        self.lock = threading.Lock()

    def forget(self, lead_id: str) -> None:
        """Drop a lead's row (hold :attr:`lock`)."""
        self._rows.pop(lead_id, None)
        self._frames.pop(lead_id, None)

    def features(self, rows: pd.DataFrame) -> pd.DataFrame:
        """:func:`~leadml.features.chunk.profile_features` of ``rows`` (validated leads rows), from the cache."""
        return pd.DataFrame(self.arrays(rows), index=rows.index)

    def arrays(self, rows: pd.DataFrame) -> dict[str, Any]:
        """:func:`~leadml.features.chunk.profile_arrays` of ``rows``, from the cache (arrays of their own)."""
        arrays = column_arrays(rows)
        keys = profile_key(rows, self.read, self.numeric, arrays)
        ids = _ids(arrays.get("lead_id"))
        ids = rows["lead_id"].astype(str).tolist() if ids is None else ids
        with self.lock:
            known = [self._rows.get(lead_id) for lead_id in ids]
        missing = [k for k, (found, key) in enumerate(zip(known, keys)) if found is None or found[0] != key]
        if missing or self._columns is None:
            computed = profile_features(self.builder, rows.iloc[missing].reset_index(drop=True))
            fresh = self._values(computed)
            with self.lock:
                if len(self._rows) + len(missing) > self.size:
                    self._rows.clear()
                for k, values in zip(missing, fresh):
                    entry = (keys[k], values)
                    known[k] = self._rows[ids[k]] = entry
        if len(known) == 1 and known[0] is not None:
            return self._lone_arrays(ids[0], known[0])
        return self._arrays([found[1] for found in known if found is not None])

    def _lone_arrays(self, lead_id: str, entry: tuple) -> dict[str, Any]:
        """The one-row arrays of a lead's entry, made once while the entry stands (a lead's events come
        one request each): copies each time, so that no caller shares the kept ones."""
        found = self._frames.get(lead_id)
        if found is None or found[0] is not entry:
            if len(self._frames) >= LONE_FRAMES:
                self._frames.clear()
            found = self._frames[lead_id] = (entry, self._arrays([entry[1]]))
        return {name: values.copy() for name, values in found[1].items()}

    def _values(self, computed: pd.DataFrame) -> list[_Row]:
        """Each row of an encoder output as codes (categoricals) and floats; the first output fixes the dtypes."""
        if self._columns is None:
            self._columns = list(computed.columns)
            self._dtypes = {c: t for c, t in computed.dtypes.items() if isinstance(t, pd.CategoricalDtype)}
        if list(computed.columns) != self._columns:
            raise AssertionError("the encoder's output changed its columns under one model")
        parts = []
        for name in self._columns:
            column = computed[name]
            numbers = column.cat.codes.to_numpy() if name in self._dtypes else column.to_numpy(dtype="float64")
            parts.append(numbers.tolist())  # Python ints and floats: smaller kept, the same doubles
        return list(zip(*parts)) if parts else [() for _ in range(len(computed))]

    def _arrays(self, values: list[_Row]) -> dict[str, Any]:
        """The columns of kept rows by name: categoricals in the encoder's dtypes, the rest float64."""
        columns = self._columns or []
        out: dict[str, Any] = {}
        for k, name in enumerate(columns):
            picked = [row[k] for row in values]
            dtype = self._dtypes.get(name)
            if dtype is not None:
                out[name] = pd.Categorical.from_codes(np.array(picked, dtype=np.int64), dtype=dtype)
            else:
                out[name] = np.array(picked, dtype="float64")
        return out


def profile_key(rows: pd.DataFrame, read: list[str], numeric: set[str],
                arrays: dict[str, Any] | None = None) -> list[tuple[str, ...]]:  # fmt: skip
    """Each row's key: per column the encoder reads, its value as the encoder sees it.

    A numeric column is read as ``pd.to_numeric(...).astype("float64")``: its key is that double
    (``repr``, so ``-0.0`` is not ``0.0``). Any other column is read as text (the cleaning of a
    category, the job title and e-mail rules): its key is the value's text, ``str`` of a non-text
    value *in the row's dtype* (``50`` in an integer column, ``50.0`` in a float one: two texts, two
    keys). Missing values and absent columns are one key, as the encoder fills both with NaN.
    ``arrays``: :func:`~leadml.modeling.frame_blocks.column_arrays` of ``rows``, when the caller has them.
    """
    parts: list[list[str]] = []
    arrays = column_arrays(rows) if arrays is None else arrays
    for name in read:
        if name not in arrays:
            parts.append(["-"] * len(rows))
        elif name in numeric:
            array = arrays[name]
            plain = isinstance(array, np.ndarray) and array.dtype.kind in "fiub"  # to_numeric leaves it as it is
            numbers = array.astype("float64") if plain else pd.to_numeric(rows[name], errors="coerce").astype(
                "float64").to_numpy()  # fmt: skip
            parts.append(["-" if n != n else repr(float(n)) for n in numbers])
        elif _is_text(arrays[name]):  # each value a str, or None where missing: no missing-value test needed
            parts.append(["t" + v if isinstance(v, str) else "-" for v in _texts(arrays[name])])
        else:
            array = arrays[name]
            values = array.to_numpy(dtype=object) if hasattr(array, "to_numpy") else np.asarray(array, dtype=object)
            missing = pd.isna(values)
            parts.append(["-" if gone else "t" + v if isinstance(v, str) else "v" + str(v)
                          for v, gone in zip(values, missing)])  # fmt: skip
    return list(zip(*parts)) if parts else [() for _ in range(len(rows))]


def _is_text(array: Any) -> bool:
    """Whether a column's array is pandas text (``str``: Python strings, NaN where missing)."""
    return array is not None and not isinstance(array, np.ndarray) and array.dtype == "str"


def _texts(array: Any) -> list:
    """The values of a text array as a list: its strings, None where missing (read through Arrow: ~2 us a
    column, ~10 us through pandas)."""
    return pa.array(array).to_pylist()


def _ids(array: Any) -> list[str] | None:
    """``astype(str).tolist()`` of text ids without missing values (the strings themselves); else None."""
    if not _is_text(array):
        return None
    ids = pa.array(array)
    return None if ids.null_count else ids.to_pylist()


def served_chunks(inputs: Any, cache: ProfileCache, as_of: pd.Timestamp, rules: Any, config: PipelineConfig,
                  mql: tuple[str | None, str | None] = (None, None)) -> Iterator[FeatureChunk]:  # fmt: skip
    """The feature chunks of a request's inputs (:func:`~leadml.jobs.inputs.frame_inputs`), as the job builds them."""
    if rules is not None or any(mql):
        yield from table_chunks(inputs, cache.builder, as_of, False, rules, config, mql)
        return
    for chunk in inputs.chunks():
        snapshots, features = chunk_features(cache.builder, chunk.leads, chunk.events, chunk.outcomes, as_of,
                                             inputs.events_source, target=config.snapshots.target,
                                             pql=config.stages.pql, profile_of=cache.arrays)  # fmt: skip
        past_target = int(snapshots.attrs.get(LEFT_OUT, {}).get("past_target", 0))
        yield FeatureChunk(snapshots, features, len(chunk.leads), chunk.orphans, None, past_target,
                           _accepted(chunk.outcomes))  # fmt: skip
