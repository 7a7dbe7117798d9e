"""Writing a scores file in pieces, atomically, so that even a killed job leaves nothing behind.

:func:`leadml.data.io.atomic_output` writes to a named temporary file beside the target and renames
it at the end; a job killed with SIGKILL cannot remove that file. :func:`unnamed_output` goes one
step further on Linux: the content is written to an *unnamed* file in the output folder
(``O_TMPFILE``: an inode on the right file system that no directory lists), which gets a name
only when it is complete (``linkat`` to a temporary name, then ``rename`` over the target, a
window of microseconds). A job killed while writing leaves no file at all; the kernel frees the
inode. Where ``O_TMPFILE`` is not available (another OS, a file system without it), it falls back
to :func:`~leadml.data.io.atomic_output`.

:class:`ScoresWriter` streams Arrow tables into that file as Parquet (a ``ParquetWriter``, one row
group per chunk) or CSV (Arrow's CSV writer, about 20 times faster than ``DataFrame.to_csv``).
Same rows, same writer options, same bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from leadml.data.io import (
    FORMULA_START,
    PLAIN_NUMBER,
    TEMP_PREFIX,
    atomic_output,
    check_output_path,
    is_write_failure,
    output_error,
    table_format,
)

_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400


def _linkat(fd: int, target: Path) -> None:
    """Give the unnamed file open on ``fd`` the name ``target`` (Linux ``linkat`` via ``/proc``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    source = f"/proc/self/fd/{fd}".encode()
    if libc.linkat(_AT_FDCWD, source, _AT_FDCWD, os.fsencode(target), _AT_SYMLINK_FOLLOW) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(target))


def _open_unnamed(folder: Path) -> int | None:
    """An unnamed, writable file in ``folder`` (its fd), or None where the system cannot make one."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o666)
    except OSError:
        return None


@contextlib.contextmanager
def unnamed_output(path: str | os.PathLike) -> Iterator[str]:
    """Yield a path to write to; the content appears at ``path`` only if the block succeeds.

    The yielded path is ``/proc/self/fd/<n>`` of an unnamed file in the target's folder (or a
    named temporary file there, where unnamed files are not supported). On success the file is
    flushed to disk and renamed over ``path``; on an exception, or if the process dies, nothing
    is left in the folder and a previous ``path`` stays as it was. A ``path`` that is a folder is
    refused first; a failure to write (disk full, read-only folder, ...) is an
    :class:`~leadml.core.errors.OutputError` naming ``path``.

    Example:
        >>> import os, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with unnamed_output(folder / "scores.csv") as sink:
        ...     _ = pathlib.Path(sink).write_text("lead_id\\nL1\\n")
        ...     os.listdir(folder)
        []
        >>> os.listdir(folder), (folder / "scores.csv").read_text().split()
        (['scores.csv'], ['lead_id', 'L1'])
    """
    target = check_output_path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(target, exc) from exc
    fd = _open_unnamed(target.parent)
    if fd is None:
        with atomic_output(target) as tmp:
            yield str(tmp)
        return
    sink = f"/proc/self/fd/{fd}"
    try:
        try:
            yield sink
        except BaseException as exc:
            if is_write_failure(exc, sink, target):
                raise output_error(target, exc) from exc
            raise
        try:
            _name_unnamed(fd, target)
        except OSError as exc:
            raise output_error(target, exc) from exc
    finally:
        os.close(fd)


def _name_unnamed(fd: int, target: Path) -> None:
    """Flush the unnamed file open on ``fd``, give it a new file's mode, and rename it over ``target``."""
    os.fsync(fd)
    if target.exists():
        with contextlib.suppress(OSError):
            os.fchmod(fd, target.stat().st_mode & 0o7777)
    else:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
    named = target.parent / f"{TEMP_PREFIX}{secrets.token_hex(6)}{target.suffix}"
    _linkat(fd, named)
    try:
        os.replace(named, target)
    except BaseException:
        with contextlib.suppress(OSError):
            named.unlink()
        raise


_UTC_NS = "datetime64[ns, UTC]"


def timestamps(values) -> pa.Array:
    """A pandas datetime Series (any unit, UTC) as an Arrow ``timestamp[ns, UTC]`` array."""
    import pandas as pd

    typed = getattr(values, "dtype", None) == _UTC_NS  # typed already (a scores chunk's as_of): no conversion
    nanoseconds = (values if typed else pd.to_datetime(values, utc=True).dt.as_unit("ns")).array.asi8
    return pa.array(nanoseconds, pa.timestamp("ns", tz="UTC"))


_NULLABLE_INTEGERS = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")


def arrow_column(values, kind: pa.DataType) -> pa.Array:
    """``pa.Array.from_pandas(values, type=kind)`` of a pandas Series or array (numpy or pandas').

    The dtypes of the scores' columns (UTC times, nullable and numpy integers, booleans, text in
    object arrays) are read off their numbers and masks, which for the few rows of a served request
    costs a tenth of pandas' conversion: the same arrays (``tests/test_arrow_column.py``).
    """
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    array = values.array if isinstance(values, pd.Series) else values
    if isinstance(dtype, pd.DatetimeTZDtype) and pa.types.is_timestamp(kind) and (dtype.unit, str(dtype.tz)) == (
        kind.unit, kind.tz):  # fmt: skip
        return pa.array(array.asi8, kind, mask=array.isna())
    if str(dtype) in _NULLABLE_INTEGERS and pa.types.is_integer(kind):
        return pa.array(array.to_numpy(dtype=dtype.numpy_dtype, na_value=0), kind, mask=array.isna())
    if isinstance(dtype, np.dtype) and dtype.kind == "b" and pa.types.is_boolean(kind):
        return pa.array(np.asarray(array), kind)
    if isinstance(dtype, np.dtype) and dtype.kind == "O" and pa.types.is_string(kind):
        return pa.array(np.asarray(array), kind, from_pandas=True)
    return pa.Array.from_pandas(values, type=kind)


def iso_text(column: pa.ChunkedArray) -> pa.Array:
    """Timestamps as ISO 8601 text (``2026-07-01T00:00:00+00:00``), formatting each distinct value once."""
    import pandas as pd

    encoded = column.combine_chunks().dictionary_encode()
    values = [stamp.isoformat() for stamp in pd.DatetimeIndex(encoded.dictionary.to_pandas())]
    return pa.DictionaryArray.from_arrays(encoded.indices, pa.array(values, pa.string())).cast(pa.string())


def guard_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Text cells a spreadsheet would run as formulas, prefixed with ``'`` (as :func:`~leadml.data.io.guard_formulas`).

    Example:
        >>> guard_text(pa.array(["=HYPERLINK(1)", "L2", "-2.5", None])).to_pylist()
        ["'=HYPERLINK(1)", 'L2', '-2.5', None]
    """
    import pyarrow.compute as pc

    formula = pc.and_not(
        pc.match_substring_regex(column, FORMULA_START), pc.match_substring_regex(column, PLAIN_NUMBER)
    )
    if not pc.any(formula).as_py():
        return column
    return pc.if_else(formula, pc.binary_join_element_wise(pa.scalar("'"), column, ""), column)


class ScoresWriter:
    """Append Arrow tables of one schema to a Parquet or CSV file (by extension).

    Use inside :func:`unnamed_output`: ``ScoresWriter(tmp, out, schema)``; ``write`` every chunk,
    then ``close``. Parquet columns that repeat (model name, tier, as_of) are dictionary-encoded;
    the float columns are not (they rarely repeat, and skipping them is faster). CSV text cells that
    start like a formula get the guard of :func:`guard_text`.
    """

    def __init__(self, sink: str, path: str | os.PathLike, schema: pa.Schema, metadata: dict[str, str] | None = None):
        self.format = table_format(path)
        self.schema = schema.with_metadata({**(schema.metadata or {}), **(metadata or {})}) if metadata else schema
        self.rows = 0
        if self.format == "parquet":
            import pyarrow.parquet as pq

            dictionary = [f.name for f in schema if not pa.types.is_floating(f.type)]
            self._writer = pq.ParquetWriter(
                sink, self.schema, compression="snappy", use_dictionary=dictionary, write_statistics=True
            )
        else:
            import pyarrow.csv as csv

            text = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f for f in schema])
            self._writer = csv.CSVWriter(sink, text, write_options=csv.WriteOptions(quoting_style="needed"))

    def write(self, table: pa.Table) -> None:
        if not table.schema.equals(self.schema, check_metadata=False):
            table = table.cast(self.schema.remove_metadata())
        if self.format == "parquet":
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        else:
            for i, field in enumerate(table.schema):
                if pa.types.is_timestamp(field.type):
                    table = table.set_column(i, field.name, iso_text(table.column(i)))
                elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                    table = table.set_column(i, field.name, guard_text(table.column(i)))
            self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()


# -- CRM import files ----------------------------------------------------------------------------
CRM_FORMATS = ("leadml", "hubspot", "salesforce")
CRM_FIELDS = (  # scores column, HubSpot contact property, Salesforce field (API name)
    ("lead_id", "Record ID", "Id"),
    ("score", "leadml_score", "Leadml_Score__c"),
    ("probability", "leadml_probability", "Leadml_Probability__c"),
    ("tier", "leadml_tier", "Leadml_Tier__c"),
    ("is_mql", "leadml_mql", "Leadml_MQL__c"),
    ("mql_since", "leadml_mql_since", "Leadml_MQL_Since__c"),
    ("mql_route", "leadml_mql_route", "Leadml_MQL_Route__c"),
    ("fit_score", "leadml_fit_score", "Leadml_Fit_Score__c"),
    ("engagement_score", "leadml_engagement_score", "Leadml_Engagement_Score__c"),
    ("grid_tier", "leadml_grid_tier", "Leadml_Grid_Tier__c"),
    ("next_action", "leadml_next_action", "Leadml_Next_Action__c"),
    ("due_at", "leadml_due_at", "Leadml_Due_At__c"),
    ("overdue", "leadml_overdue", "Leadml_Overdue__c"),
    ("reason_1", "leadml_reason_1", "Leadml_Reason_1__c"),
    ("reason_2", "leadml_reason_2", "Leadml_Reason_2__c"),
    ("reason_3", "leadml_reason_3", "Leadml_Reason_3__c"),
    ("as_of", "leadml_scored_at", "Leadml_Scored_At__c"),
    ("model_version", "leadml_model_version", "Leadml_Model_Version__c"),
)
_TIMES = ("mql_since", "due_at", "as_of")
_FLAGS = ("is_mql", "overdue")


def crm_scores_path(out: str | os.PathLike) -> Path:
    """Where the full scores go when ``out`` is a CRM import file: ``hubspot.csv`` -> ``hubspot.scores.parquet``."""
    path = Path(out)
    return path.with_name(f"{path.stem}.scores.parquet")


def crm_scores(scores, format: str):
    """The scores as a CRM import takes them: the record id and one text column per property.

    HubSpot (contact import): ``Record ID`` and the properties ``leadml_score``, ``leadml_tier``, ...;
    Salesforce (Data Import Wizard, Data Loader, Bulk API): ``Id`` and the custom fields
    ``Leadml_Score__c``, ... Times are ISO 8601 in UTC (``2026-07-01T09:00:00Z``), flags ``true`` /
    ``false``, the probability with 4 decimals, an empty value an empty cell.

    Example:
        >>> import pandas as pd
        >>> scores = pd.DataFrame({"lead_id": ["L1"], "score": [31], "probability": [0.3125], "tier": ["B"],
        ...     "is_mql": [True], "as_of": pd.to_datetime(["2026-07-01"], utc=True)})
        >>> crm_scores(scores, "salesforce")[["Id", "Leadml_Score__c", "Leadml_MQL__c", "Leadml_Scored_At__c"]].values
        array([['L1', '31', 'true', '2026-07-01T00:00:00Z']], dtype=object)
    """
    import pandas as pd

    if format not in CRM_FORMATS[1:]:
        raise ValueError(f"unknown CRM format {format!r}; use {', '.join(CRM_FORMATS[1:])}")
    column = 1 if format == "hubspot" else 2
    rows = pd.DataFrame(index=scores.index)
    for fields in CRM_FIELDS:
        name, values = fields[0], scores.get(fields[0])
        if values is None:
            text = pd.Series(None, index=scores.index, dtype=object)
        elif name in _TIMES:
            stamps = pd.to_datetime(values, utc=True)
            text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype(object).where(stamps.notna(), None)
        elif name in _FLAGS:
            text = values.map(lambda flag: None if pd.isna(flag) else ("true" if flag else "false"))
        elif name == "probability":
            text = values.map(lambda p: None if pd.isna(p) else f"{p:.4f}")
        elif name in ("score", "fit_score", "engagement_score"):
            text = values.map(lambda n: None if pd.isna(n) else str(int(n)))
        else:
            text = values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
        rows[fields[column]] = text.to_numpy()
    return rows


def write_crm_scores(scores_path: str | os.PathLike, out: str | os.PathLike, format: str) -> int:
    """Write the scores file at ``scores_path`` as a CRM import file (CSV, UTF-8) at ``out``; the rows.

    The file appears only when complete (:func:`unnamed_output`); text a spreadsheet would run as a
    formula is guarded as in every CSV leadml writes, but for the record id, which must match the CRM's.
    """
    import pandas as pd

    table = crm_scores(pd.read_parquet(scores_path), format)
    for name in table.columns[1:]:
        table[name] = guard_text(pa.array(table[name], pa.string())).to_pylist()
    with unnamed_output(out) as sink:  # quoted only where needed (Arrow's CSV writer quotes every text cell)
        table.to_csv(sink, index=False, encoding="utf-8", lineterminator="\n")
    return len(table)
