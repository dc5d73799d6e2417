"""Session event logs: loading, item vocabulary and session layout for session-parallel batching.

This module uses numpy and pandas only (pyarrow for parquet files, imported lazily); it never imports
TensorFlow, so data preparation and tests run without the deep-learning stack.

Typical use (spec §1 and §7)::

    train_df = load_events("train.tsv")
    vocab = ItemVocabulary.from_events(train_df)       # item ID -> 0..n-1, first-appearance order
    train = SessionData.from_events(train_df, vocab)   # sessions by first timestamp
    test = SessionData.from_events(load_events("test.tsv"), vocab)   # unknown items dropped first
"""
from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import pandas as pd

__all__ = [
    "DataError",
    "DEFAULT_SESSION_KEY",
    "DEFAULT_ITEM_KEY",
    "DEFAULT_TIME_KEY",
    "load_events",
    "ItemVocabulary",
    "SessionData",
    "atomic_write_path",
]

DEFAULT_SESSION_KEY, DEFAULT_ITEM_KEY, DEFAULT_TIME_KEY = "SessionId", "ItemId", "Time"
_CANONICAL = (DEFAULT_SESSION_KEY, DEFAULT_ITEM_KEY, DEFAULT_TIME_KEY)

PathLike = Union[str, "os.PathLike[str]"]

_TEXT_EXTENSIONS = {".tsv": "\t", ".txt": "\t", ".csv": None}
_PARQUET_EXTENSIONS = {".parquet", ".pq"}
_SNIFF_CANDIDATES = (",", ";", "\t")


class DataError(ValueError):
    """Bad input data; the message names the file and the problem.

    Example::

        >>> try:
        ...     load_events("/nonexistent/train.tsv")
        ... except DataError as err:
        ...     print(err)
        /nonexistent/train.tsv: file does not exist
    """


# ----------------------------------------------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def atomic_write_path(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; on success it is moved over ``path`` with ``os.replace``.

    If the body raises, the temporary file is removed and ``path`` is left untouched, so a failed write never
    leaves a half-written file behind.

    Example::

        with atomic_write_path("out/train.tsv") as tmp:
            df.to_csv(tmp, sep="\\t", index=False)
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _row_label(pos: int, text: bool) -> str:
    """1-based data row, plus the file line for text files with a header line."""
    return f"data row {pos + 1} (line {pos + 2})" if text else f"row {pos + 1}"


def _sniff_delimiter(path: Path) -> str:
    """Picks the most frequent of , ; TAB in the first non-empty line (the header)."""
    try:
        with open(path, "r", encoding="utf-8-sig", errors="replace", newline="") as fh:
            for line in fh:
                if line.strip():
                    counts = {d: line.count(d) for d in _SNIFF_CANDIDATES}
                    best = max(_SNIFF_CANDIDATES, key=lambda d: counts[d])
                    return best if counts[best] > 0 else ","
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err})") from err
    return ","


def _missing_columns_error(path: Path, wanted: Sequence[str], found: Sequence[str], delimiter: Optional[str]) -> DataError:
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


def _canonical_ids(values) -> np.ndarray:
    """IDs as int64 when integral (integer dtype, or floats that are all whole numbers), else object array of str."""
    arr = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if finite.all() and np.array_equal(arr, np.round(arr)) and (np.abs(arr) < 2.0**63).all():
            return arr.astype(np.int64)
    if arr.dtype.kind == "O":
        inferred = pd.api.types.infer_dtype(arr, skipna=False)
        if inferred == "string":
            return arr
        if inferred == "integer":
            try:
                return arr.astype(np.int64)
            except OverflowError:
                pass
    return arr.astype(str).astype(object)


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


def _normalize_ids(col: pd.Series, colname: str, canon: str, path: Path, text: bool) -> Optional[np.ndarray]:
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
        return _canonical_ids(col.to_numpy())
    values = col.to_numpy()
    if kind == "O" or kind in "SU" or isinstance(col.dtype, pd.StringDtype):
        strs = pd.Series(values).astype(str).str.strip()
        empty = (strs == "").to_numpy()
        if empty.any():
            pos = int(np.flatnonzero(empty)[0])
            raise DataError(f"{path}: empty {canon} in column {colname!r} at {_row_label(pos, text)}")
        return strs.to_numpy(dtype=object)
    return _canonical_ids(values)


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
    delimiter: Optional[str] = None,
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

    Example::

        >>> events = load_events("train-item-views.csv", session_key="session_id", item_key="item_id",
        ...                      time_key="timeframe")          # ';' is sniffed
        >>> list(events.columns)
        ['SessionId', 'ItemId', 'Time']
    """
    _check_keys(session_key, item_key, time_key)
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise ValueError(f"delimiter must be a single character or None, got {delimiter!r}")
    path = Path(path)
    if (path.is_dir() and any(path.glob("part-*.tfrecord*"))) or ".tfrecord" in path.name:
        from gru4rec_tf import tfrecord_io  # pylint: disable=g-import-not-at-top  (imports TensorFlow only here)
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
    for key, canon in zip(keys[:2], _CANONICAL[:2]):
        ids = _normalize_ids(df[key], key, canon, path, text)
        if ids is None:
            ids = _normalize_text_ids(raw[key], key, canon, path)
        out[canon] = ids
    out[DEFAULT_TIME_KEY] = _normalize_time(df[time_key], time_key, path, text)
    return pd.DataFrame(out, columns=list(_CANONICAL))


# ----------------------------------------------------------------------------------------------------------------
# item vocabulary


class ItemVocabulary:
    """Original item ID <-> dense index 0..n-1, with support counts (events per item in the training data).

    Index order is the order of first appearance in the training frame (spec §1). IDs are stored as int64 when
    integral, else as an object array of str.

    Example::

        >>> events = pd.DataFrame({"SessionId": [1, 1, 2, 2], "ItemId": [30, 10, 10, 20], "Time": [0., 1., 2., 3.]})
        >>> vocab = ItemVocabulary.from_events(events)
        >>> vocab.item_ids, vocab.support
        (array([30, 10, 20]), array([1, 2, 1]))
        >>> vocab.lookup([10, 99])
        array([ 1, -1], dtype=int32)
        >>> vocab.save("vocab.tsv"); ItemVocabulary.load("vocab.tsv") == vocab
        True
    """

    _HEADER = "ItemId\tindex\tsupport"

    def __init__(self, item_ids, support=None):
        ids = _canonical_ids(item_ids)
        if ids.ndim != 1:
            raise ValueError(f"item_ids must be one-dimensional, got shape {ids.shape}")
        index = pd.Index(ids)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise ValueError(f"item_ids must be unique; {dup!r} appears more than once")
        if support is None:
            support = np.zeros(len(ids), dtype=np.int64)
        support = np.asarray(support)
        if support.shape != ids.shape:
            raise ValueError(f"support has shape {support.shape}, expected {ids.shape} (one count per item)")
        if support.dtype.kind not in "iu" or (support < 0).any():
            raise ValueError("support must hold non-negative integer counts")
        self.item_ids: np.ndarray = ids
        self.support: np.ndarray = support.astype(np.int64, copy=False)
        self._index = index

    @classmethod
    def from_events(cls, events: pd.DataFrame) -> "ItemVocabulary":
        """Builds the vocabulary from ``events["ItemId"]`` (first-appearance order, support = event counts)."""
        if DEFAULT_ITEM_KEY not in events.columns:
            raise ValueError(f"events has no {DEFAULT_ITEM_KEY!r} column; columns: {list(events.columns)}")
        col = events[DEFAULT_ITEM_KEY]
        if col.isna().any():
            pos = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise ValueError(f"events[{DEFAULT_ITEM_KEY!r}] has a missing value at row {pos + 1}")
        codes, uniques = pd.factorize(_canonical_ids(col), sort=False)
        support = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
        return cls(np.asarray(uniques), support)

    @property
    def dtype(self) -> np.dtype:
        return self.item_ids.dtype

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.item_ids)

    def __eq__(self, other) -> bool:
        if not isinstance(other, ItemVocabulary):
            return NotImplemented
        return (
            self.item_ids.dtype == other.item_ids.dtype
            and np.array_equal(self.item_ids, other.item_ids)
            and np.array_equal(self.support, other.support)
        )

    __hash__ = None  # mutable arrays inside

    def __repr__(self) -> str:
        kind = "int64" if self.item_ids.dtype.kind == "i" else "str"
        return f"ItemVocabulary(n_items={len(self)}, dtype={kind}, events={int(self.support.sum())})"

    def lookup(self, ids) -> np.ndarray:
        """Dense indices (int32) of the given original IDs; -1 for IDs not in the vocabulary.

        Integer queries against a str vocabulary are compared as text, and str queries against an int64
        vocabulary are parsed as integers where they are exactly an integer's text.
        """
        query = _canonical_ids(ids)
        if query.ndim == 0:
            query = query.reshape(1)
        vocab_int = self.item_ids.dtype.kind == "i"
        query_int = query.dtype.kind == "i"
        if vocab_int and not query_int:
            as_str = pd.Series(query, dtype=object).astype(str)
            num = pd.to_numeric(as_str, errors="coerce")
            valid = num.notna().to_numpy()
            result = np.full(len(query), -1, dtype=np.int32)
            if valid.any():
                cand = num[valid].astype(np.int64)
                exact = (cand.astype(str).to_numpy() == as_str[valid].to_numpy())
                pos = np.flatnonzero(valid)[exact]
                result[pos] = self._index.get_indexer(cand.to_numpy()[exact]).astype(np.int32)
            return result
        if not vocab_int and query_int:
            query = query.astype(str).astype(object)
        return self._index.get_indexer(query).astype(np.int32)

    def save(self, path: PathLike) -> None:
        """Writes a TSV: a ``# dtype=int64|str`` comment line, a header ``ItemId\\tindex\\tsupport``, one row per item.

        Written to a temporary file first and moved into place with ``os.replace``.
        """
        path = Path(path)
        is_int = self.item_ids.dtype.kind == "i"
        if is_int:
            id_text = self.item_ids.astype(str)
        else:
            id_text = np.asarray(self.item_ids, dtype=object)
            bad = pd.Series(id_text).str.contains(r"[\t\r\n]", regex=True).to_numpy()
            if bad.any():
                raise ValueError(
                    f"cannot save item ID {id_text[np.flatnonzero(bad)[0]]!r}: IDs must not contain tabs or newlines"
                )
        lines = (
            pd.Series(id_text, dtype=object)
            + "\t"
            + pd.Series(np.arange(len(self)).astype(str), dtype=object)
            + "\t"
            + pd.Series(self.support.astype(str), dtype=object)
        )
        head = f"# dtype={'int64' if is_int else 'str'}\n{self._HEADER}\n"
        with atomic_write_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(head)
                if len(lines):
                    fh.write("\n".join(lines.tolist()))
                    fh.write("\n")

    @classmethod
    def load(cls, path: PathLike) -> "ItemVocabulary":
        """Reads a file written by :meth:`save`, restoring the ID dtype; raises :class:`DataError` if it is malformed."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: file does not exist")
        dtype = None
        with open(path, "r", encoding="utf-8", newline="") as fh:
            first = fh.readline()
            if not first:
                raise DataError(f"{path}: file is empty")
            skip = 0
            if first.startswith("#"):
                spec = first[1:].strip()
                if not spec.startswith("dtype="):
                    raise DataError(f"{path}: unexpected first line {first.rstrip()!r} (expected '# dtype=...')")
                dtype = spec[len("dtype="):]
                if dtype not in ("int64", "str"):
                    raise DataError(f"{path}: unknown ID dtype {dtype!r} (expected int64 or str)")
                header = fh.readline()
                skip = 1
            else:
                header = first
        if header.rstrip("\r\n") != cls._HEADER:
            raise DataError(f"{path}: bad header {header.rstrip()!r}, expected {cls._HEADER!r}")
        try:
            table = pd.read_csv(
                path, sep="\t", skiprows=skip, dtype=str, na_filter=False, quoting=csv.QUOTE_NONE,
                skip_blank_lines=False, engine="c", encoding="utf-8",
            )
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot parse vocabulary file ({err})") from err
        if list(table.columns) != cls._HEADER.split("\t"):
            raise DataError(f"{path}: bad header {list(table.columns)}, expected {cls._HEADER!r}")
        id_text = table["ItemId"].to_numpy(dtype=object)
        try:
            index = table["index"].to_numpy().astype(np.int64)
            support = table["support"].to_numpy().astype(np.int64)
        except (ValueError, OverflowError) as err:
            raise DataError(f"{path}: non-integer index or support ({err})") from err
        if not np.array_equal(index, np.arange(len(index))):
            raise DataError(f"{path}: the index column must be 0..{len(index) - 1} in order")
        if dtype is None:
            as_num = pd.to_numeric(pd.Series(id_text, dtype=object), errors="coerce")
            integral = as_num.notna().all() and len(id_text) > 0 and as_num.dtype.kind == "i"
            dtype = "int64" if integral and (as_num.astype(str).to_numpy() == id_text).all() else "str"
        if dtype == "int64":
            try:
                ids = id_text.astype(np.int64)
            except (ValueError, OverflowError) as err:
                raise DataError(f"{path}: dtype=int64 but an ItemId is not an integer ({err})") from err
        else:
            ids = id_text.astype(object)
        try:
            return cls(ids, support)
        except ValueError as err:
            raise DataError(f"{path}: {err}") from err


# ----------------------------------------------------------------------------------------------------------------
# sessions


class SessionData:
    """Events of one split, ready for session-parallel batching (spec §1, §7).

    Built by :meth:`from_events`: events whose item is not in the vocabulary are dropped *first* (which can join
    the events on either side of a dropped one), then sessions with fewer than 2 events are dropped (they give no
    transitions). Sessions are ordered by their first timestamp (stable; ties broken by SessionId order); events
    inside a session by Time (stable, so equal times keep file order).

    Attributes:
        item_idx: int32 item indices of all events, session after session.
        session_offsets: int64, length ``n_sessions + 1``; session k is ``item_idx[offsets[k]:offsets[k+1]]``.
        session_ids: original session IDs, in session order.
        times: float64 event times aligned with ``item_idx``.
        n_dropped_unknown: events dropped because their item is not in the vocabulary.
        n_dropped_short_sessions: sessions dropped for having < 2 events after that (including sessions whose
            events were all unknown).

    Example::

        >>> train = pd.DataFrame({"SessionId": [7, 7, 3, 3, 3], "ItemId": [10, 11, 10, 12, 11],
        ...                       "Time": [5., 6., 1., 2., 3.]})
        >>> vocab = ItemVocabulary.from_events(train)                  # 10 -> 0, 11 -> 1, 12 -> 2
        >>> data = SessionData.from_events(train, vocab)
        >>> data.session_ids, data.session_offsets, data.item_idx      # session 3 starts first
        (array([3, 7]), array([0, 3, 5]), array([0, 2, 1, 0, 1], dtype=int32))
        >>> data.n_sessions, data.n_events, data.n_transitions
        (2, 5, 3)
    """

    def __init__(
        self,
        item_idx,
        session_offsets,
        session_ids,
        times,
        n_dropped_unknown: int = 0,
        n_dropped_short_sessions: int = 0,
    ):
        item_idx = np.asarray(item_idx, dtype=np.int32)
        offsets = np.asarray(session_offsets, dtype=np.int64)
        session_ids = np.asarray(session_ids)
        times = np.asarray(times, dtype=np.float64)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(item_idx):
            raise ValueError(
                f"session_offsets must be 1-D, start at 0 and end at len(item_idx)={len(item_idx)}"
            )
        if (np.diff(offsets) < 1).any():
            raise ValueError("session_offsets must be strictly increasing (no empty sessions)")
        if len(session_ids) != len(offsets) - 1:
            raise ValueError(f"{len(session_ids)} session_ids for {len(offsets) - 1} sessions")
        if times.shape != item_idx.shape:
            raise ValueError(f"times has shape {times.shape}, expected {item_idx.shape}")
        self.item_idx: np.ndarray = item_idx
        self.session_offsets: np.ndarray = offsets
        self.session_ids: np.ndarray = session_ids
        self.times: np.ndarray = times
        self.n_dropped_unknown: int = int(n_dropped_unknown)
        self.n_dropped_short_sessions: int = int(n_dropped_short_sessions)

    def first_sessions(self, n_sessions: int) -> "SessionData":
        """The first ``n_sessions`` sessions (in session order), e.g. for a warm-up or a capped evaluation."""
        n = max(0, min(int(n_sessions), self.n_sessions))
        end = int(self.session_offsets[n])
        return SessionData(self.item_idx[:end], self.session_offsets[:n + 1], self.session_ids[:n],
                           self.times[:end])

    @classmethod
    def from_events(cls, events: pd.DataFrame, vocab: ItemVocabulary) -> "SessionData":
        """Maps items through ``vocab``, drops unknown-item events, then short sessions, and orders everything."""
        missing = [c for c in _CANONICAL if c not in events.columns]
        if missing:
            raise ValueError(f"events lacks column(s) {missing}; columns: {list(events.columns)}")
        sess_col = events[DEFAULT_SESSION_KEY]
        if sess_col.isna().any():
            pos = int(np.flatnonzero(sess_col.isna().to_numpy())[0])
            raise ValueError(f"events[{DEFAULT_SESSION_KEY!r}] has a missing value at row {pos + 1}")
        times = events[DEFAULT_TIME_KEY].to_numpy(dtype=np.float64)
        if not np.isfinite(times).all():
            pos = int(np.flatnonzero(~np.isfinite(times))[0])
            raise ValueError(f"events[{DEFAULT_TIME_KEY!r}] has a non-finite value at row {pos + 1}")

        item_idx = vocab.lookup(events[DEFAULT_ITEM_KEY])
        try:  # codes follow SessionId order, which breaks ties between equal first timestamps
            codes, uniques = pd.factorize(sess_col.to_numpy(), sort=True)
        except TypeError:  # unorderable mix of types: fall back to first appearance
            codes, uniques = pd.factorize(sess_col.to_numpy(), sort=False)
        n_all_sessions = len(uniques)

        known = item_idx >= 0
        n_dropped_unknown = int(len(known) - np.count_nonzero(known))
        if n_dropped_unknown:
            item_idx, codes, times = item_idx[known], codes[known], times[known]

        lengths = np.bincount(codes, minlength=n_all_sessions)
        long_enough = lengths >= 2
        n_dropped_short = int(n_all_sessions - np.count_nonzero(long_enough))
        if n_dropped_short:
            keep = long_enough[codes]
            item_idx, codes, times = item_idx[keep], codes[keep], times[keep]

        if len(codes) == 0:
            return cls(
                np.zeros(0, np.int32), np.zeros(1, np.int64), np.asarray(uniques)[:0], np.zeros(0, np.float64),
                n_dropped_unknown, n_dropped_short,
            )

        # first timestamp per session (indexed by code; sessions that were dropped get +inf and are never used)
        first_time = (
            pd.Series(times).groupby(codes, sort=True).min().reindex(np.arange(n_all_sessions), fill_value=np.inf)
        ).to_numpy()
        kept_codes = np.flatnonzero(long_enough)
        session_order = kept_codes[np.argsort(first_time[kept_codes], kind="stable")]  # ties: SessionId order
        rank = np.empty(n_all_sessions, dtype=np.int64)
        rank[session_order] = np.arange(len(session_order))

        ev_rank = rank[codes]
        order = np.lexsort((times, ev_rank))  # stable: equal (session, time) keep file order
        ev_rank = ev_rank[order]
        starts = np.flatnonzero(np.diff(ev_rank)) + 1
        offsets = np.concatenate(([0], starts, [len(order)])).astype(np.int64)
        return cls(
            item_idx[order],
            offsets,
            np.asarray(uniques)[session_order],
            times[order],
            n_dropped_unknown,
            n_dropped_short,
        )

    @property
    def n_sessions(self) -> int:
        return len(self.session_offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.item_idx)

    @property
    def n_transitions(self) -> int:
        return self.n_events - self.n_sessions

    @property
    def session_lengths(self) -> np.ndarray:
        """int64 number of events of each session, in session order."""
        return np.diff(self.session_offsets)

    def __len__(self) -> int:
        return self.n_sessions

    def __repr__(self) -> str:
        return (
            f"SessionData(n_sessions={self.n_sessions}, n_events={self.n_events}, "
            f"n_dropped_unknown={self.n_dropped_unknown}, n_dropped_short_sessions={self.n_dropped_short_sessions})"
        )
