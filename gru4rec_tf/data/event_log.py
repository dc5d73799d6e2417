"""Reading session event logs (CSV/TSV with a sniffed delimiter, Parquet, session tensors) into canonical columns.

This module uses numpy and pandas only (pyarrow for parquet files, TensorFlow for session tensors, both imported
lazily), so data preparation and its tests run without the deep-learning stack.

Example (spec §1 and §7)::

    train_df = load_events("train.tsv")                 # columns SessionId, ItemId, Time
    vocab = vocabulary.ItemVocabulary.from_events(train_df)
    train = sessions.SessionData.from_events(train_df, vocab)
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Union
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gru4rec_tf.data import contracts
from gru4rec_tf.data.event_columns import CANONICAL_COLUMNS as _CANONICAL
from gru4rec_tf.data.event_columns import DEFAULT_ITEM_KEY, DEFAULT_SESSION_KEY, DEFAULT_TIME_KEY, DataError
from gru4rec_tf.data.vocabulary import canonical_ids

__all__ = ["load_events"]

PathLike = Union[str, "os.PathLike[str]"]

_TEXT_EXTENSIONS = {".tsv": "\t", ".txt": "\t", ".csv": None}
_PARQUET_EXTENSIONS = {".parquet", ".pq"}
_SNIFF_CANDIDATES = (",", ";", "\t")




def _row_label(pos: int, text: bool) -> str:
    """1-based data row, plus the file line for text files with a header line."""
    return f"data row {pos + 1} (line {pos + 2})" if text else f"row {pos + 1}"


def _sniff_delimiter(path: Path) -> str:
    """Picks the most frequent of , ; TAB in the first non-empty line (the header)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            for line in fh:
                if line.strip():
                    counts = {d: line.count(d) for d in _SNIFF_CANDIDATES}
                    best = max(_SNIFF_CANDIDATES, key=lambda d: counts[d])
                    return best if counts[best] > 0 else ","
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err})") from err
    return ","


def _missing_columns_error(path: Path, wanted: Sequence[str], found: Sequence[str], delimiter: str | None) -> DataError:
    missing = [c for c in wanted if c not in found]
    msg = f"{path}: missing column(s) {missing}; columns found: {list(found)}"
    if len(found) == 1 and any(d in str(found[0]) for d in _SNIFF_CANDIDATES if d != delimiter):
        msg += f" (only one column was found: is the delimiter right? used {delimiter!r})"
    return DataError(msg)


def _check_keys(session_key: str, item_key: str, time_key: str) -> None:
    keys = (session_key, item_key, time_key)
    if not all(isinstance(k, str) and k for k in keys):
        raise ValueError(f"session_key, item_key and time_key must be non-empty strings, got {keys!r}")
    if len(set(keys)) != 3:
        raise ValueError(f"session_key, item_key and time_key must differ, got {keys!r}")


def _normalize_text_ids(raw: pd.Series, colname: str, canon: str, path: Path) -> np.ndarray:
    """Validates one ID column read as str from a text file; returns an object array of stripped str."""
    na = raw.isna().to_numpy()
    if na.any():
        pos = int(np.flatnonzero(na)[0])
        raise DataError(f"{path}: missing {canon} (empty or NaN) in column {colname!r} at {_row_label(pos, True)}")
    stripped = raw.str.strip()
    empty = (stripped == "").to_numpy()
    if empty.any():
        pos = int(np.flatnonzero(empty)[0])
        raise DataError(f"{path}: empty {canon} in column {colname!r} at {_row_label(pos, True)}")
    return stripped.to_numpy(dtype=object)


def _normalize_ids(col: pd.Series, colname: str, canon: str, path: Path, text: bool) -> np.ndarray | None:
    """Returns int64 IDs, an object array of str IDs, or None when a text column must be re-read as str."""
    kind = col.dtype.kind
    if kind in "iu":
        return col.to_numpy().astype(np.int64, copy=False)
    na = col.isna().to_numpy()
    if na.any():
        pos = int(np.flatnonzero(na)[0])
        raise DataError(f"{path}: missing {canon} (empty or NaN) in column {colname!r} at {_row_label(pos, text)}")
    if text:
        return None  # floats / mixed: re-read as str so that IDs keep their exact text
    if kind == "f":
        return canonical_ids(col.to_numpy())
    values = col.to_numpy()
    if kind == "O" or kind in "SU" or isinstance(col.dtype, pd.StringDtype):
        strs = pd.Series(values).astype(str).str.strip()
        empty = (strs == "").to_numpy()
        if empty.any():
            pos = int(np.flatnonzero(empty)[0])
            raise DataError(f"{path}: empty {canon} in column {colname!r} at {_row_label(pos, text)}")
        return strs.to_numpy(dtype=object)
    return canonical_ids(values)


def _normalize_time(col: pd.Series, colname: str, path: Path, text: bool) -> np.ndarray:
    if isinstance(col.dtype, pd.DatetimeTZDtype) or col.dtype.kind == "M":
        na = col.isna().to_numpy()
        if na.any():
            pos = int(np.flatnonzero(na)[0])
            raise DataError(f"{path}: missing Time in column {colname!r} at {_row_label(pos, text)}")
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = col.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        return ns.astype(np.float64) / 1e9
    if col.dtype.kind in "iuf":
        times = col.to_numpy(dtype=np.float64)
    else:
        times = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(times)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        value = col.iloc[pos]
        what = "missing Time (empty or NaN)" if pd.isna(value) else f"non-numeric Time {value!r}"
        raise DataError(f"{path}: {what} in column {colname!r} at {_row_label(pos, text)}")
    return times


def _read_text(path: Path, delimiter: str, keys: Sequence[str]) -> tuple:
    common = dict(sep=delimiter, engine="c", quoting=csv.QUOTE_MINIMAL)
    try:
        header = pd.read_csv(path, nrows=0, **common)
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: file is empty") from err
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise DataError(f"{path}: cannot parse file ({err})") from err
    found = [str(c) for c in header.columns]
    if any(k not in found for k in keys):
        raise _missing_columns_error(path, keys, found, delimiter)
    try:
        df = pd.read_csv(path, usecols=list(keys), **common)
        if len(df) == 0:
            raise DataError(f"{path}: no data rows (header only)")
        reread = [k for k in keys[:2] if df[k].dtype.kind not in "iu" and not df[k].isna().any()]
        raw = (
            pd.read_csv(path, usecols=reread, dtype={k: str for k in reread}, **common) if reread else None
        )
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: cannot parse file ({err})") from err
    return df, raw


def _read_parquet(path: Path, keys: Sequence[str]) -> pd.DataFrame:
    try:
        import pyarrow.dataset as pads
    except ImportError as err:  # pragma: no cover - pyarrow is a dependency
        raise DataError(f"{path}: reading parquet needs pyarrow, which is not installed") from err
    try:
        dataset = pads.dataset(str(path), format="parquet")
        found = list(dataset.schema.names)
    except Exception as err:  # pyarrow raises several unrelated types here
        raise DataError(f"{path}: cannot read parquet data ({err})") from err
    if path.is_dir() and not dataset.files:
        raise DataError(f"{path}: directory contains no parquet files")
    if any(k not in found for k in keys):
        raise _missing_columns_error(path, keys, found, None)
    try:
        table = dataset.to_table(columns=list(keys))
    except Exception as err:
        raise DataError(f"{path}: cannot read parquet data ({err})") from err
    return table.to_pandas()


# ----------------------------------------------------------------------------------------------------------------
# loading


def load_events(
    path: PathLike,
    session_key: str = DEFAULT_SESSION_KEY,
    item_key: str = DEFAULT_ITEM_KEY,
    time_key: str = DEFAULT_TIME_KEY,
    delimiter: str | None = None,
) -> pd.DataFrame:
    """Reads a session event log (one row per event).

    Formats, by extension: ``.tsv``/``.txt`` (tab-separated), ``.csv`` (delimiter sniffed among ``,`` ``;`` and tab
    from the header line unless ``delimiter`` is given), ``.parquet``/``.pq``, a directory of parquet files, and the
    session tensors of one split written by ``gru4rec preprocess`` (a directory of ``part-*.tfrecord`` files).
    Any other extension is read as delimited text only when ``delimiter`` is given. Text files need a header line.

    Returns a DataFrame with exactly the columns ``SessionId``, ``ItemId``, ``Time`` (the columns ``session_key``,
    ``item_key``, ``time_key`` renamed), in file order, with a fresh RangeIndex. ``Time`` is float64. IDs are
    int64 when every value is an integer (text: parsed by pandas, so ``"007"`` reads as 7), otherwise str
    (stripped of surrounding whitespace).

    Raises :class:`DataError` (its message starts with the file path) when the file does not exist, is empty or has
    no data rows, lacks a column (the message lists the columns found), has a non-numeric or missing Time, or a
    missing (NaN/empty) session or item ID; row errors name the first bad row (1-based data row and, for text
    files, the file line, assuming one line per row).

    Example (the DIGINETICA file, an illustration; the small file below runs as it is)::

        >>> events = load_events("train-item-views.csv", session_key="session_id", item_key="item_id",
        ...                      time_key="timeframe")          # doctest: +SKIP
        >>> pd.DataFrame({"session_id": [1, 1, 2], "item_id": [100042, 100007, 100042],
        ...               "timeframe": [0, 30, 60]}).to_csv("views.csv", sep=";", index=False)  # ;-separated
        >>> events = load_events("views.csv", session_key="session_id", item_key="item_id", time_key="timeframe")
        >>> list(events.columns), events["ItemId"].tolist(), events["Time"].dtype
        (['SessionId', 'ItemId', 'Time'], [100042, 100007, 100042], dtype('float64'))
    """
    _check_keys(session_key, item_key, time_key)
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise ValueError(f"delimiter must be a single character or None, got {delimiter!r}")
    path = Path(path)
    if (path.is_dir() and any(path.glob(contracts.PART_FILE_GLOB))) or contracts.is_tfrecord_name(path.name):
        from gru4rec_tf.data import tfrecord_io  # pylint: disable=g-import-not-at-top  (imports TensorFlow only here)
        return tfrecord_io.read_session_tensors(path)  # session tensors written by `gru4rec preprocess`
    keys = (session_key, item_key, time_key)
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    ext = path.suffix.lower()
    if path.is_dir() or ext in _PARQUET_EXTENSIONS:
        text = False
        df = _read_parquet(path, keys)
        raw = None
        if len(df) == 0:
            raise DataError(f"{path}: no rows")
    elif ext in _TEXT_EXTENSIONS or delimiter is not None:
        text = True
        if delimiter is None:
            delimiter = _TEXT_EXTENSIONS[ext] or _sniff_delimiter(path)
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty")
        df, raw = _read_text(path, delimiter, keys)
    else:
        raise DataError(
            f"{path}: unsupported file extension {ext!r} (expected .tsv, .txt, .csv, .parquet, .pq or a directory "
            "of parquet files; pass delimiter= to read it as delimited text)"
        )

    out = {}
    for key, canon in zip(keys[:2], _CANONICAL[:2], strict=True):
        ids = _normalize_ids(df[key], key, canon, path, text)
        if ids is None:
            ids = _normalize_text_ids(raw[key], key, canon, path)
        out[canon] = ids
    out[DEFAULT_TIME_KEY] = _normalize_time(df[time_key], time_key, path, text)
    return pd.DataFrame(out, columns=list(_CANONICAL))
