"""Reading input tables (CSV or Parquet, by extension) and writing every output atomically.

Every file leadml writes goes through :func:`atomic_output`: the content is written to a temporary
file in the destination folder and renamed over the target only when it is complete, so a failed or
killed job never leaves a half-written output (and never destroys the last good one).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from leadml.core.errors import LeadDataError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
TEMP_PREFIX = ".leadml-tmp-"


def table_format(path: str | os.PathLike) -> str:
    """Return ``"csv"`` or ``"parquet"`` from a path's extension, or raise naming the path."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise LeadDataError(f"{path}: unknown table format '{suffix or '(none)'}'; use a .csv or .parquet file")


def read_table(
    path: str | os.PathLike,
    columns: Sequence[str] | None = None,
    *,
    text_columns: Iterable[str] = (),
    **csv_options,
) -> pd.DataFrame:
    """Read a CSV or Parquet table; a missing, empty-without-header or unreadable file raises.

    CSV values are typed by pandas' inference, except ``text_columns`` (ids), which are read as
    text so that ``007`` keeps its zeros and ``1`` never becomes ``1.0``; the data contract parses
    timestamps afterwards so that its errors can name bad rows. ``csv_options`` (``sep=";"``, ...)
    go to :func:`pandas.read_csv` and are ignored for Parquet, which carries its own types.

    Raises:
        LeadDataError: unknown extension, file not found, empty CSV file or a parser error.
    """
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise LeadDataError(f"{path}: file not found")
    try:
        if fmt == "csv":
            options = {"low_memory": False, **csv_options}
            text = {name: str for name in text_columns}
            if text:
                options["dtype"] = {**text, **(options.get("dtype") or {})}
            return pd.read_csv(path, usecols=list(columns) if columns else None, **options)
        return pd.read_parquet(path, columns=list(columns) if columns else None)
    except pd.errors.EmptyDataError as exc:
        raise LeadDataError(f"{path}: the table is empty (no header, no rows)") from exc
    except Exception as exc:  # pyarrow / parser errors: keep the cause, name the file
        raise LeadDataError(f"{path}: cannot be read as {fmt}: {exc}") from exc


def _create_temp(target: Path) -> Path:
    """Create an empty temporary file beside ``target`` with the permissions a new file would get.

    ``os.open(..., 0o666)`` lets the process umask decide the mode (``mkstemp`` would force 0600);
    an existing target passes its own mode on, so a rewrite does not change who can read it.
    """
    for _ in range(100):
        tmp = target.parent / f"{TEMP_PREFIX}{secrets.token_hex(6)}{target.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        return tmp
    raise FileExistsError(f"{target.parent}: cannot create a temporary file beside {target.name}")


def _fsync(path: Path) -> None:
    """Flush a finished file to disk before it replaces the target (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the rename is atomic on one file system) and is
    removed when the block raises; a previous ``path`` stays as it was.

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
    tmp = _create_temp(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV or Parquet (by extension) atomically; return the final path.

    The extension is checked before anything is created, so a wrong one writes nothing.
    """
    target = Path(path)
    fmt = table_format(target)
    with atomic_output(target) as tmp:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return target


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file (HTML, YAML, JSON) atomically as UTF-8; return the final path."""
    target = Path(path)
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
