r"""Finding the input files of a click log and checking their header (or Parquet schema) before a run.

Runs at pipeline construction time, so a missing file, an unreadable file or a missing column fails at once with
a :class:`gru4rec_tf.data.event_columns.DataError` naming it, before any worker starts. Works on every Beam filesystem
(local, ``gs://``, ``s3://``, ``hdfs://``).

Example::

    >>> with open("clicks.csv", "w") as fh:
    ...     _ = fh.write("SessionId,ItemId,Time\n1,100042,0\n1,100007,30\n")
    >>> spec = inspect_input(PreprocessOptions(input="clicks.csv", output="out"))
    >>> spec.files, spec.header
    (['clicks.csv'], ['SessionId', 'ItemId', 'Time'])
    >>> inspect_input(PreprocessOptions(input="clicks.csv", output="out", item_key="item_id"))
    Traceback (most recent call last):
    gru4rec_tf.data.event_columns.DataError: clicks.csv: missing column(s) ['item_id']; columns found: [...]
"""
from __future__ import annotations

import dataclasses
import os
import posixpath

from apache_beam.io.filesystems import FileSystems

from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.fileio import is_remote
from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.preprocessing.records import split_line

__all__ = ["InputSpec", "inspect_input", "resolve_files", "read_header"]

_MAX_HEADER_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """The files to read and their common header (column names, in file order)."""

    files: list[str]
    header: list[str]
    format: str
    delimiter: str


def resolve_files(pattern: str) -> list[str]:
    """Files named by ``pattern``: a file, a glob, or a directory (its files, skipping ``_*`` and ``.*``)."""
    is_dir = os.path.isdir(pattern) or (pattern.endswith("/") and is_remote(pattern))
    query = posixpath.join(pattern, "*") if is_dir else pattern
    try:
        matches = FileSystems.match([query])[0].metadata_list
    except Exception as err:  # Beam raises BeamIOError and filesystem-specific errors
        raise DataError(f"{pattern}: cannot list input files ({err})") from err
    files = sorted(m.path for m in matches if not (is_dir and posixpath.basename(m.path)[:1] in ("_", ".")))
    files = [f for f in files if not os.path.isdir(f)]
    if not files:
        what = "directory has no data files" if is_dir else "file does not exist (or no file matches the pattern)"
        raise DataError(f"{pattern}: {what}")
    return files


def read_header(path: str, delimiter: str) -> list[str]:
    """Column names from the first line of a delimited text file (compression detected by extension)."""
    data = b""
    try:
        with FileSystems.open(path) as handle:
            while b"\n" not in data and len(data) < _MAX_HEADER_BYTES:
                chunk = handle.read(1 << 16)
                if not chunk:
                    break
                data += chunk
    except Exception as err:
        raise DataError(f"{path}: cannot read file ({err})") from err
    first = data.split(b"\n", 1)[0]
    if not first.strip():
        raise DataError(f"{path}: file is empty or its first line is blank (a header line is required)")
    try:
        text = first.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: the header line is not UTF-8 text ({err}); is this a text file?") from err
    try:
        return [name.strip() for name in split_line(text, delimiter)]
    except ValueError as err:
        raise DataError(f"{path}: the header line {text[:200]!r}: {err}; do its lines end in a lone CR "
                        "(one record per line is required)?") from None


def read_parquet_columns(path: str) -> list[str]:
    """Column names of a Parquet file."""
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    try:
        with FileSystems.open(path) as handle:
            return list(pq.read_schema(handle).names)
    except Exception as err:
        raise DataError(f"{path}: cannot read Parquet schema ({err})") from err


def inspect_input(options: PreprocessOptions) -> InputSpec:
    """Resolves the input files and checks that each has every column the options name."""
    files = resolve_files(options.input)
    delimiter = options.text_delimiter
    header = None
    for path in files:
        found = read_parquet_columns(path) if options.format == "parquet" else read_header(path, delimiter)
        missing = [name for name in options.columns.values() if name not in found]
        if missing:
            hint = ""
            if len(found) == 1 and options.format == "csv":
                hint = f" (one column only: is the delimiter {delimiter!r} right?)"
            raise DataError(f"{path}: missing column(s) {missing}; columns found: {found}{hint}")
        if header is not None and found != header and options.format == "csv":
            raise DataError(f"{path}: header {found} differs from the first file's header {header}")
        header = header or found
    return InputSpec(files=files, header=header, format=options.format, delimiter=delimiter)
