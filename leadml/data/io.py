"""Reading input tables (CSV or Parquet, by extension) and writing every output atomically.

Every file leadml writes goes through :func:`atomic_output`: the content is written to a temporary
file in the destination folder and renamed over the target only when it is complete, so a failed or
killed job never leaves a half-written output (and never destroys the last good one).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from leadml.errors import LeadDataError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
TEMP_PREFIX = ".leadml-tmp-"


def table_format(path: str | os.PathLike) -> str:
    """Return ``"csv"`` or ``"parquet"`` from a path's extension, or raise naming the path."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise LeadDataError(
        f"{path}: unknown table format '{suffix or '(none)'}'; use a .csv or .parquet file"
    )


def read_table(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet table; a missing or unreadable file raises :class:`LeadDataError`.

    CSV files are read with every column as text-or-number inference by pandas; the data contract
    parses timestamps and ids afterwards so that the error messages can name bad rows.
    """
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise LeadDataError(f"{path}: file not found")
    try:
        if fmt == "csv":
            return pd.read_csv(path, usecols=list(columns) if columns else None, low_memory=False)
        return pd.read_parquet(path, columns=list(columns) if columns else None)
    except LeadDataError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise LeadDataError(f"{path}: the table is empty (no header, no rows)") from exc
    except Exception as exc:  # pyarrow / parser errors: keep the cause, name the file
        raise LeadDataError(f"{path}: cannot be read as {fmt}: {exc}") from exc


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the rename is atomic on one file system) and is
    removed when the block raises.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_output(folder / "out.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (folder / "out.txt").read_text()
        'done'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV or Parquet (by extension) atomically; return the final path."""
    target = Path(path)
    fmt = table_format(target)
    with atomic_output(target) as tmp:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return target


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file (HTML, YAML, JSON) atomically; return the final path."""
    target = Path(path)
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
