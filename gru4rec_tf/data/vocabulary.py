"""The item vocabulary: original item IDs <-> dense indices 0..n-1, with support counts, and its file format."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd

from gru4rec_tf.data.event_columns import DEFAULT_ITEM_KEY, DataError
from gru4rec_tf.fileio import atomic_write_path

PathLike = Union[str, "os.PathLike[str]"]


def canonical_ids(values) -> np.ndarray:
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
        ids = canonical_ids(item_ids)
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
    def from_events(cls, events: pd.DataFrame) -> ItemVocabulary:
        """Builds the vocabulary from ``events["ItemId"]`` (first-appearance order, support = event counts)."""
        if DEFAULT_ITEM_KEY not in events.columns:
            raise ValueError(f"events has no {DEFAULT_ITEM_KEY!r} column; columns: {list(events.columns)}")
        col = events[DEFAULT_ITEM_KEY]
        if col.isna().any():
            pos = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise ValueError(f"events[{DEFAULT_ITEM_KEY!r}] has a missing value at row {pos + 1}")
        codes, uniques = pd.factorize(canonical_ids(col), sort=False)
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
        query = canonical_ids(ids)
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
    def load(cls, path: PathLike) -> ItemVocabulary:
        """Reads a file written by :meth:`save`, restoring the ID dtype; raises :class:`DataError` if malformed."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: file does not exist")
        dtype = None
        with open(path, encoding="utf-8", newline="") as fh:
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
