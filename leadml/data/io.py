"""Reading input tables (CSV or Parquet, by extension) and writing every output atomically.

Every file leadml writes goes through :func:`atomic_output`: the content is written to a temporary
file in the destination folder and renamed over the target only when it is complete, so a failed or
killed job never leaves a half-written output (and never destroys the last good one).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import io
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeGuard

import pandas as pd

from leadml.core.errors import LeadDataError, OutputError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
TEMP_PREFIX = ".leadml-tmp-"
CSV_SEPARATORS = (",", ";", "\t", "|")  # the separators sniffed, in the order that breaks ties
SNIFF_BYTES = 1 << 16  # the head of a CSV file the separator and header are read from
SNIFF_ROWS = 50
_SCAN_BYTES = 1 << 20
_SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
# a text cell starting with one of = + - @ tab CR is a formula to a spreadsheet (OWASP "CSV injection"):
# leadml's CSV files prefix it with ' ; plain numbers (-2.5, +1e3, -inf) are numbers and stay as they are
FORMULA_START = r"^'*[=+\-@\t\r]"
GUARDED_START = r"^'+[=+\-@\t\r]"
PLAIN_NUMBER = r"^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|nan|Infinity)$"


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
    separator: str | None = None,
    encoding: str | None = None,
    text_columns: Iterable[str] = (),
    **read_options,
) -> pd.DataFrame:
    """Read a CSV or Parquet table; a missing, empty-without-header or unreadable file raises.

    CSV files are read as CRM exports come: the separator is sniffed among ``,`` ``;`` tab and
    ``|`` unless given (:func:`sniff_separator`), the text is UTF-8 unless ``encoding`` says
    otherwise (``latin-1``, ``cp1252``; a UTF-8 byte order mark is dropped), quoted fields may hold
    separators and newlines, and a header that names two columns alike is refused (pandas would
    rename the second one ``name.1`` silently). Values are typed by pandas' inference, except
    ``text_columns`` (ids), read as text so that ``007`` keeps its zeros and ``1`` never becomes
    ``1.0``; the data contract parses timestamps afterwards so that its errors can name bad rows.
    ``read_options`` go to :func:`pandas.read_csv` (``sep=`` is taken as ``separator``) and are
    ignored for Parquet, which carries its own types and encoding. A file leadml wrote is read with
    :func:`read_output`.

    Raises:
        LeadDataError: unknown extension, file not found, empty CSV file, text that is not in the
            encoding (naming the byte, its offset and line), duplicate header names, a parser error.
    """
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise LeadDataError(f"{path}: file not found")
    if fmt == "parquet":
        try:
            return pd.read_parquet(path, columns=list(columns) if columns else None)
        except Exception as exc:  # pyarrow errors: keep the cause, name the file
            raise LeadDataError(f"{path}: cannot be read as parquet: {_one_line(exc)}") from exc
    return _read_csv(path, columns, separator, encoding, text_columns, read_options)


def read_output(
    path: str | os.PathLike, columns: Sequence[str] | None = None, *, text_columns: Iterable[str] = ()
) -> pd.DataFrame:
    """Read a table leadml wrote (scores, features): :func:`read_table`, then the CSV formula guard
    of :func:`guard_formulas` taken off, so a lead id ``-L1`` written as ``'-L1`` reads back as ``-L1``.

    In CSV only an empty cell is missing (leadml writes missing values so): a lead id ``NA`` or
    ``null`` reads back as written, where pandas' defaults for input files would make it missing."""
    frame = read_table(path, columns, text_columns=text_columns, keep_default_na=False, na_values=[""])
    return unguard_formulas(frame) if table_format(path) == "csv" else frame


def _read_csv(
    path: Path,
    columns: Sequence[str] | None,
    separator: str | None,
    encoding: str | None,
    text_columns: Iterable[str],
    read_options: dict,
) -> pd.DataFrame:
    separator = _separator_option(path, separator, read_options)
    codec = _codec(path, encoding)
    sample, complete = _sample(path, codec)
    if separator is None:
        separator = sniff_separator(sample, complete=complete)
    if "header" not in read_options and "names" not in read_options:
        header = _records(sample, separator, complete)[:1]
        check_header(header[0] if header else [], path)
    # pandas' C parser drops a UTF-8 byte order mark itself, and reads "utf-8" faster than "utf-8-sig"
    options = {"low_memory": False, **read_options, "sep": separator, "encoding": codec.replace("utf-8-sig", "utf-8")}
    text = {name: str for name in text_columns}
    if text:
        options["dtype"] = {**text, **(options.get("dtype") or {})}
    try:
        return pd.read_csv(path, usecols=list(columns) if columns else None, **options)
    except UnicodeDecodeError as exc:
        raise LeadDataError(_decode_message(path, codec)) from exc
    except pd.errors.EmptyDataError as exc:
        raise LeadDataError(f"{path}: the table is empty (no header, no rows)") from exc
    except Exception as exc:  # parser errors: keep the cause, name the file
        raise LeadDataError(f"{path}: cannot be read as csv (separator {separator!r}): {_one_line(exc)}") from exc


def _one_line(exc: Exception) -> str:
    """A library's error text on one line (pandas ends its parser errors with a newline)."""
    return " ".join(str(exc).split())


def _separator_option(path: Path, separator: str | None, read_options: dict) -> str | None:
    """The one-character separator asked for (``separator`` or pandas' ``sep``/``delimiter``), or None."""
    asked = (separator, read_options.pop("sep", None), read_options.pop("delimiter", None))
    names = {_SEPARATOR_NAMES.get(str(value).lower(), value) for value in asked if value is not None}
    if len(names) > 1:
        raise ValueError(f"{path}: two separators given ({', '.join(sorted(map(repr, names)))}); give one")
    if not names:
        return None
    (chosen,) = names
    if not isinstance(chosen, str) or len(chosen) != 1:
        raise LeadDataError(f"{path}: separator {chosen!r} is not one character; use ',', ';', '\\t' (tab) or '|'")
    return chosen


def _codec(path: Path, encoding: str | None) -> str:
    """The codec to read with: ``utf-8-sig`` for UTF-8 (a byte order mark is dropped), else as given."""
    if encoding is None:
        return "utf-8-sig"
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise LeadDataError(f"{path}: unknown encoding {encoding!r}; use utf-8, latin-1 or cp1252") from exc
    return "utf-8-sig" if name == "utf-8" else name


def _sample(path: Path, codec: str) -> tuple[str, bool]:
    """The first :data:`SNIFF_BYTES` of the file as text, and whether that is the whole file."""
    with open(path, "rb") as file:
        head = file.read(SNIFF_BYTES + 1)
    complete = len(head) <= SNIFF_BYTES
    decoder = codecs.getincrementaldecoder(codec)()
    try:
        return decoder.decode(head[:SNIFF_BYTES], final=complete), complete
    except UnicodeDecodeError as exc:
        raise LeadDataError(_decode_message(path, codec)) from exc


def _records(sample: str, separator: str, complete: bool) -> list[list[str]]:
    """The records of a sample split on ``separator`` (quotes respected); a cut-off last one is left out."""
    records = list(csv.reader(io.StringIO(sample, newline=""), delimiter=separator))
    if not complete and records:
        records = records[:-1]
    return records[:SNIFF_ROWS]


def sniff_separator(sample: str, *, complete: bool = True) -> str:
    """The separator of a CSV sample among ``,`` ``;`` tab and ``|``; ``,`` when none splits the header.

    A candidate counts when it splits the header into two or more fields. Among those, one that
    gives every sampled row as many fields as the header wins over one that does not, then the one
    giving more columns, then the first of ``, ; tab |``. Quoted fields are respected, so a ``;`` or
    a newline inside quotes does not count. ``complete=False`` says the sample was cut from a longer
    file: its last record may be partial and is not looked at.

    Example:
        >>> sniff_separator('id;company;note\\n1;"Dupont, SA";"a|b"\\n')
        ';'
    """
    best, best_key = ",", (False, 1, 0)
    for rank, candidate in enumerate(CSV_SEPARATORS):
        records = _records(sample, candidate, complete)
        width = len(records[0]) if records else 0
        if width < 2:
            continue
        consistent = all(len(record) == width for record in records[1:] if record)
        key = (consistent, width, -rank)
        if key > best_key:
            best, best_key = candidate, key
    return best


def check_header(names: Sequence[str], path: str | os.PathLike) -> None:
    """Refuse a header that names two columns alike, naming the names and their 1-based positions.

    ``names`` is the file's first record as written; blank names (pandas calls them ``Unnamed: n``,
    e.g. after a trailing separator) are not compared.
    """
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        if name.strip():
            positions.setdefault(name, []).append(position)
    repeated = [
        f"{name!r} (columns {', '.join(map(str, where))})" for name, where in positions.items() if len(where) > 1
    ]
    if repeated:
        raise LeadDataError(
            f"{path}: the header names {len(repeated)} column(s) more than once: {'; '.join(repeated)}; "
            "rename them so that each column has its own name"
        )


def _decode_message(path: Path, codec: str) -> str:
    """Where the file stops being ``codec`` text, and the ``encoding`` to set."""
    scan_codec = "utf-8" if codec == "utf-8-sig" else codec
    label = "UTF-8" if scan_codec == "utf-8" else scan_codec
    found = first_undecodable(path, scan_codec)
    where = f"byte 0x{found[1]:02x} at offset {found[0]} (line {found[2]})" if found else "a byte"
    return (
        f"{path}: {where} is not valid {label} text; the file is probably Latin-1 or Windows-1252: "
        "set `encoding: latin-1` (or `encoding: cp1252`) for this table"
    )


def first_undecodable(path: str | os.PathLike, codec: str) -> tuple[int, int, int] | None:
    """The first byte of a file that ``codec`` cannot decode: (0-based offset, byte value, 1-based line).

    The file is read in chunks, so a large file is not held in memory. None when it decodes.
    """
    decoder = codecs.getincrementaldecoder(codec)()
    start, newlines = 0, 0
    with open(path, "rb") as file:
        while True:
            chunk = file.read(_SCAN_BYTES)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                offset = start - len(pending) + exc.start
                before = chunk[: max(offset - start, 0)]
                return offset, (pending + chunk)[exc.start], newlines + before.count(b"\n") + 1
            if not chunk:
                return None
            start += len(chunk)
            newlines += chunk.count(b"\n")


# why a write failed, in words (errno -> reason); any other errno says its own strerror
_WRITE_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the folder is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of its folder path is a file, not a folder",
    errno.EEXIST: "a part of its folder path is a file, not a folder",
    errno.EFBIG: "the file is too large for the file system",
    errno.EIO: "an input/output error on the device",
}


def output_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    """The one-line :class:`OutputError` for an OSError met while writing ``path``: the path and why.

    Example:
        >>> str(output_error("out/scores.csv", OSError(errno.ENOSPC, "No space left on device")))
        'out/scores.csv: cannot be written: no space left on the device'
    """
    reason = _WRITE_REASONS.get(exc.errno) if exc.errno is not None else None
    if reason is None:
        reason = (exc.strerror or str(exc) or type(exc).__name__).splitlines()[0]
    return OutputError(f"{path}: cannot be written: {reason}")


def is_write_failure(exc: BaseException, *paths: str | os.PathLike) -> TypeGuard[OSError]:
    """Whether ``exc`` looks like a failure to write one of ``paths``: an OSError of a kind writing
    meets (disk full, read-only, permissions, a folder in the way) that names one of them or no file.
    """
    if not isinstance(exc, OSError) or isinstance(exc, OutputError) or exc.errno not in _WRITE_REASONS:
        return False
    return exc.filename is None or os.fspath(exc.filename) in {os.fspath(p) for p in paths}


def _remove(path: str | os.PathLike) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output path that is an existing folder (before any work); return it as a Path."""
    target = Path(path)
    if target.is_dir():
        raise output_error(target, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target)))
    return target


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
    """Flush a finished file to disk before it replaces the target; a file system without fsync passes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the rename is atomic on one file system) and is
    removed when the block raises; a previous ``path`` stays as it was. A ``path`` that is a folder is
    refused first; an OSError of creating, writing (in the block), flushing or renaming the file (disk
    full, read-only folder, ...) becomes an :class:`~leadml.core.errors.OutputError` naming ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_output(folder / "out.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (folder / "out.txt").read_text()
        'done'
    """
    target = check_output_path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(target)
    except OSError as exc:
        raise output_error(target, exc) from exc
    try:
        yield tmp
    except BaseException as exc:
        _remove(tmp)
        if is_write_failure(exc, tmp, target):
            raise output_error(target, exc) from exc
        raise
    try:
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise output_error(target, exc) from exc
        raise


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV or Parquet (by extension) atomically; return the final path.

    The extension is checked before anything is created, so a wrong one writes nothing. In CSV, text
    cells that a spreadsheet would run as formulas are guarded (:func:`guard_formulas`), and a table
    with a carriage return in a text cell ends its lines with CRLF: Python's CSV writer quotes only
    the characters of its line end, and an unquoted one would split the row when read back.
    """
    target = Path(path)
    fmt = table_format(target)
    with atomic_output(target) as tmp:
        if fmt == "csv":
            guarded = guard_formulas(frame)
            ends = {"lineterminator": "\r\n"} if _holds_carriage_return(guarded) else {}
            guarded.to_csv(tmp, index=False, **ends)
        else:
            frame.to_parquet(tmp, index=False, use_dictionary=dictionary_columns(frame))
    return target


def dictionary_columns(frame: pd.DataFrame) -> list[str]:
    """The columns worth Parquet's dictionary encoding: all but the floating-point ones.

    A feature table is mostly float columns; trying a dictionary on each costs more than half the
    write (500,000 x 79 features: 2.7 s -> 1.2 s without) for 3 % more bytes. Values are the same.
    """
    return [str(name) for name, dtype in zip(frame.columns, frame.dtypes, strict=True) if dtype.kind != "f"]


def _text_columns(frame: pd.DataFrame) -> Iterator[tuple[str, pd.Series]]:
    """The columns of ``frame`` that may hold text (object, string, categorical of text)."""
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = pd.Series(column.cat.categories)
        if pd.api.types.is_string_dtype(column.dtype) and pd.api.types.infer_dtype(column, skipna=True) in (
            "string",
            "mixed",
            "mixed-integer",
        ):
            yield name, frame[name]


def _holds_carriage_return(frame: pd.DataFrame) -> bool:
    """Whether a text cell of ``frame`` holds a carriage return."""
    for _, column in _text_columns(frame):
        values = pd.Series(column.cat.categories) if isinstance(column.dtype, pd.CategoricalDtype) else column
        if values.str.contains("\r", regex=False, na=False).astype(bool).any():
            return True
    return False


def _formula_cells(values: pd.Series, pattern: str, numbers: bool) -> pd.Series:
    """Which text cells match ``pattern`` (plain numbers left out unless ``numbers``)."""
    found = values.str.contains(pattern, regex=True, na=False).astype(bool)
    if not numbers:
        found &= ~values.str.contains(PLAIN_NUMBER, regex=True, na=False).astype(bool)
    return found


def _rewrite_text(frame: pd.DataFrame, pattern: str, change) -> pd.DataFrame:
    changed = {}
    for name, column in _text_columns(frame):
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = pd.Series(column.cat.categories)
            hit = _formula_cells(categories, pattern, pattern == GUARDED_START)
            if hit.any():
                changed[name] = column.cat.rename_categories(categories.where(~hit, change(categories)).tolist())
            continue
        hit = _formula_cells(column, pattern, pattern == GUARDED_START)
        if hit.any():
            column = column.copy()
            column[hit] = change(column[hit])
            changed[name] = column
    return frame.assign(**changed) if changed else frame


def guard_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell a spreadsheet would run as a formula prefixed with ``'``.

    A cell that starts with ``=`` ``+`` ``-`` ``@`` tab or carriage return (after any ``'``) gets one
    more ``'`` in front, as OWASP advises against CSV injection; numbers, and text that is a plain
    number, are left as they are. :func:`unguard_formulas` undoes it exactly.

    Example:
        >>> guard_formulas(pd.DataFrame({"lead_id": ["=1+1", "L2", "-3"], "score": [-1, 2, 3]}))["lead_id"].tolist()
        ["'=1+1", 'L2', '-3']
    """
    return _rewrite_text(frame, FORMULA_START, lambda cells: "'" + cells)


def unguard_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`guard_formulas`: one leading ``'`` off the cells that start ``'`` then a formula character."""
    return _rewrite_text(frame, GUARDED_START, lambda cells: cells.str.slice(1))


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file (HTML, YAML, JSON) atomically as UTF-8; return the final path."""
    target = Path(path)
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
