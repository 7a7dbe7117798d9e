"""Integer codes for the string columns of Arrow events: lead ids, event types and attributes.

Parquet hands strings over dictionary-encoded, one dictionary per row group. Each distinct
dictionary is looked up once and the rows take their code by a gather of the dictionary indices,
so no row is hashed and no Python string is made. Lead ids of at most 8 bytes (numeric ids,
short keys) skip hashing altogether: each id becomes one 64-bit integer key and is matched by a
sorted search, several times faster than hashing the strings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadml.core.memo import BoundedMemo


def code_leads(snapshot_ids: pa.ChunkedArray, event_ids: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int]:
    """Snapshot lead codes (in order of first appearance), event lead codes (-1: no snapshot), leads.

    The distinct ids of every row group's dictionary are matched against the snapshots' ids in
    one go: as integer keys when every id fits in 8 bytes, else by an Arrow hash table of the
    snapshots' ids.
    """
    few = _code_few(snapshot_ids, event_ids)
    if few is not None:
        return few
    ids = pc.cast(snapshot_ids, pa.string()).combine_chunks()
    chunks = dictionary_chunks(event_ids)
    offsets, distinct = _distinct_dictionaries(chunks)
    coded = None
    if short_keys(ids) is not None:  # the snapshots' ids fit: try the events' ids too
        coded = _match_short(pa.concat_arrays([ids, *distinct]), len(ids))
    if coded is None:
        # hash only the snapshots' ids; the dictionaries (which may list many more ids, such as
        # every lead of a spilled batch) are probed against that table
        encoded = pc.dictionary_encode(ids)
        snapshot_codes = np.asarray(pc.fill_null(encoded.indices, -1), dtype=np.int32)
        n_leads = len(encoded.dictionary)
        found = (
            pc.index_in(pa.concat_arrays(distinct), value_set=encoded.dictionary)
            if distinct
            else pa.array([], pa.int32())
        )
        lookup = np.asarray(pc.fill_null(found, -1)).astype(np.int32)
    else:
        snapshot_codes, lookup, n_leads = coded
    codes = _gather(chunks, offsets, lookup, np.int32) if chunks else np.zeros(0, np.int32)
    return snapshot_codes, codes, n_leads


FEW_IDS = 256  # snapshots and events up to which code_leads matches the ids in Python (a served lead)


def _code_few(snapshot_ids: pa.ChunkedArray, event_ids: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """:func:`code_leads` of a few text ids by a dict (~20 µs against ~300 for the Arrow kernels'
    calls); None for more than :data:`FEW_IDS` ids, ids that are not text or a missing snapshot id."""
    if len(snapshot_ids) + len(event_ids) > FEW_IDS or not (_texts(snapshot_ids) and _texts(event_ids)):
        return None
    first = snapshot_ids.to_pylist()
    if None in first:
        return None
    code: dict[str, int] = {}
    snapshot_codes = np.array([code.setdefault(i, len(code)) for i in first], dtype=np.int32)
    codes = np.array([code.get(i, -1) for i in event_ids.to_pylist()], dtype=np.int32)  # None: -1
    return snapshot_codes, codes, len(code)


def _texts(column: pa.ChunkedArray) -> bool:
    """Whether the column holds text, plain or dictionary-encoded."""
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def frame_lead_codes(leads: pd.Index, lead_ids: pd.Series) -> np.ndarray:
    """Each event's position in ``leads`` (-1 for leads without a snapshot), hashing each id once.

    The ids are dictionary-encoded by Arrow (one hash per row, in C, no Python strings), then only
    the distinct ids are looked up among the snapshots' leads.
    """
    if isinstance(lead_ids.dtype, pd.CategoricalDtype):
        categories, codes = lead_ids.cat.categories, lead_ids.cat.codes.to_numpy()
    else:
        values = lead_ids if pd.api.types.is_string_dtype(lead_ids.dtype) else lead_ids.astype(str)
        encoded = pc.dictionary_encode(pa.array(values, from_pandas=True))
        if isinstance(encoded, pa.ChunkedArray):  # Arrow-backed strings come in chunks
            empty = pa.array([], pa.dictionary(pa.int32(), pa.string()))
            encoded = encoded.combine_chunks() if encoded.num_chunks else empty
        if encoded.null_count:
            encoded = pa.DictionaryArray.from_arrays(pc.fill_null(encoded.indices, -1), encoded.dictionary)
        categories = encoded.dictionary.to_pandas()
        codes = np.asarray(encoded.indices)
    lookup = np.append(leads.get_indexer(pd.Index(categories).astype(str)), -1).astype(np.int32)
    return lookup[codes]  # -1 (a missing id) takes the appended "no snapshot"


def _match_short(values: pa.Array, n_first: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Codes of ``values[:n_first]`` by first appearance, and each later value's code (-1: absent).

    Works on :func:`short_keys`; None when they do not apply. Sorted keys are searched with
    ``np.searchsorted``; snapshot files sorted by lead need no sort at all.
    """
    keys = short_keys(values)
    if keys is None:
        return None
    first, rest = keys[:n_first], keys[n_first:]
    if n_first == 0:
        return np.zeros(0, np.int32), np.full(len(rest), -1, np.int32), 0
    if bool(np.all(first[1:] > first[:-1])):  # sorted and distinct: codes are positions
        codes = np.arange(n_first, dtype=np.int32)
        distinct, code_of = first, codes
    else:
        order = np.argsort(first, kind="stable")
        ordered = first[order]
        new = np.empty(n_first, dtype=bool)
        new[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        distinct = ordered[starts]
        code_of = np.empty(len(starts), dtype=np.int32)  # stable sort: order[start] is the first seen
        code_of[np.argsort(order[starts], kind="stable")] = np.arange(len(starts), dtype=np.int32)
        codes = np.empty(n_first, dtype=np.int32)
        codes[order] = code_of[np.cumsum(new) - 1]
    at = np.minimum(np.searchsorted(distinct, rest), len(distinct) - 1)
    lookup = np.where(distinct[at] == rest, code_of[at], -1).astype(np.int32)
    return codes, lookup, len(distinct)


def short_keys(values: pa.Array) -> np.ndarray | None:
    """Each string as a uint64 (its bytes, big-endian, zero padded), or None when not exact.

    Exact, and ordered like the strings, when every string has at most 8 bytes and either all
    have the same length or none holds a NUL byte (so padding cannot make two strings equal).
    None for longer strings, nulls or a type other than ``string``.
    """
    if not pa.types.is_string(values.type) or values.null_count:
        return None
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(values.buffers()[1], np.int32, n + 1, values.offset * 4)
    lengths = np.diff(offsets)
    longest = int(lengths.max(initial=0))
    if longest > 8:
        return None
    size = int(offsets[-1] - offsets[0])
    data = np.frombuffer(values.buffers()[2], np.uint8, size, int(offsets[0])) if size else np.zeros(0, np.uint8)
    padded = np.zeros((n, 8), dtype=np.uint8)
    if bool(np.all(lengths == longest)):
        padded[:, :longest] = data.reshape(n, longest)
    elif not data.all():
        return None
    else:
        row = np.repeat(np.arange(n), lengths)
        padded[row, np.arange(size) - np.repeat(offsets[:-1] - offsets[0], lengths)] = data
    return padded.view(">u8").ravel().astype(np.uint64)


def categorical(column: pa.ChunkedArray) -> pd.Categorical | np.ndarray:
    """A string column as a Categorical over the union of its row groups' dictionaries."""
    kind = column.type
    if not (pa.types.is_dictionary(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return column.to_numpy()
    read = _read_as_is(column)
    if read is not None:
        return read
    chunks = dictionary_chunks(column)
    if not chunks:
        return pd.Categorical([])
    values = pc.unique(pa.concat_arrays([chunk.dictionary for chunk in chunks]))
    values = values.filter(pc.is_valid(values))
    values = values.take(pc.array_sort_indices(values))
    width = np.int8 if len(values) < 127 else np.int16 if len(values) < 32_000 else np.int32
    return pd.Categorical.from_codes(_recode(chunks, values, width), dtype=_dtype_of(values.to_pylist()))


AS_IS_VALUES = 1_000  # the longest dictionary checked in Python for _read_as_is


def _read_as_is(column: pa.ChunkedArray) -> pd.Categorical | None:
    """What :func:`categorical` makes of a column in one chunk whose dictionary already lists distinct
    texts in sorted order (the events of a served lead come so): its indices are the codes, no union
    or recoding needed (~50 µs against ~250 a column). None for any other column.

    Python orders texts by code point as Arrow orders them by UTF-8 bytes, so a strictly increasing
    dictionary is the sorted union the general path would build."""
    if column.num_chunks != 1 or not pa.types.is_dictionary(column.type):
        return None
    chunk = column.chunk(0)
    kind = chunk.dictionary.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)) or chunk.dictionary.null_count:
        return None
    if not 0 < len(chunk.dictionary) <= AS_IS_VALUES:
        return None
    values = chunk.dictionary.to_pylist()
    if any(a >= b for a, b in zip(values, values[1:], strict=False)):
        return None
    width = np.int8 if len(values) < 127 else np.int16
    indices = pc.fill_null(chunk.indices, -1) if chunk.null_count else chunk.indices
    codes = np.asarray(indices).astype(width, copy=False)
    return pd.Categorical.from_codes(codes, dtype=_dtype_of(values))


_DTYPES: BoundedMemo[pd.CategoricalDtype] = BoundedMemo(4_096)


def _dtype_of(categories: list) -> pd.CategoricalDtype:
    """The Categorical dtype of ``categories``, kept: a served lead's few events ask for the same few
    (event types, pages) at every request, and making the dtype checks the categories each time."""
    return _DTYPES.get(tuple(categories), lambda: pd.CategoricalDtype(categories))


def dictionary_chunks(column: pa.ChunkedArray) -> list[pa.DictionaryArray]:
    """The column's chunks as dictionary arrays with string values."""
    chunks = []
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = pc.dictionary_encode(pc.cast(chunk, pa.string()))
        elif not pa.types.is_string(chunk.type.value_type):
            chunk = pa.DictionaryArray.from_arrays(chunk.indices, pc.cast(chunk.dictionary, pa.string()))
        chunks.append(chunk)
    return chunks


def identity(array: pa.Array) -> tuple:
    """Where an array's data lives: chunks read from one row group share their dictionary buffers."""
    return (len(array), array.offset) + tuple(b.address if b is not None else 0 for b in array.buffers())


def _recode(chunks: list[pa.DictionaryArray], values: pa.Array, dtype: type) -> np.ndarray:
    """Each row's position in ``values`` (-1 when absent or null), one hash table for all chunks."""
    if not chunks:
        return np.zeros(0, dtype=dtype)
    offsets, distinct = _distinct_dictionaries(chunks)
    found = pc.index_in(pa.concat_arrays(distinct), value_set=values)
    return _gather(chunks, offsets, np.asarray(pc.fill_null(found, -1)).astype(dtype), dtype)


def _distinct_dictionaries(chunks: list[pa.DictionaryArray]) -> tuple[dict, list[pa.Array]]:
    """The chunks' distinct dictionaries and where each starts in their concatenation.

    The chunks of one row group share its dictionary: each is looked up once.
    """
    offsets: dict[tuple, int] = {}
    distinct: list[pa.Array] = []
    position = 0
    for chunk in chunks:
        key = identity(chunk.dictionary)
        if key not in offsets:
            offsets[key] = position
            distinct.append(chunk.dictionary)
            position += len(chunk.dictionary)
    return offsets, distinct


def _gather(chunks: list[pa.DictionaryArray], offsets: dict, lookup: np.ndarray, dtype: type) -> np.ndarray:
    """Each row's ``lookup`` value of its dictionary entry (-1 where the row is null)."""
    codes: np.ndarray = np.empty(sum(len(chunk) for chunk in chunks), dtype=dtype)
    position = 0
    for chunk in chunks:
        offset, size = offsets[identity(chunk.dictionary)], len(chunk.dictionary)
        indices = np.asarray(pc.fill_null(chunk.indices, 0) if chunk.null_count else chunk.indices)
        part = codes[position : position + len(chunk)]
        if size:
            np.take(lookup[offset : offset + size], indices, out=part)
        else:
            part[:] = -1
        if chunk.null_count:
            part[~np.asarray(chunk.is_valid())] = -1
        position += len(chunk)
    return codes
