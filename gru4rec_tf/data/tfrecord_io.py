"""Reading the session tensors of ``gru4rec preprocess`` (TFRecord files of ``tf.train.Example``) with tf.data.

A split directory holds ``part-SSSSS.tfrecord`` files; read in name order they list the sessions by start time
(ties by session ID), each with its events in time order. Features: ``session_id`` (bytes), ``item_id`` (bytes
list), ``item_idx`` (int64 list, index in the split's vocabulary), ``time_us`` (int64 list, microseconds since
the epoch) and ``session_start_us`` (int64). The vocabularies are ``vocab.tsv`` (train, test) and
``vocab_train_tr.tsv`` (train_tr, valid) in ``ItemVocabulary.save`` format. These names are the contract of
:mod:`gru4rec_tf.data.contracts`.

Example::

    >>> events = read_session_tensors("out/train")             # SessionId, ItemId, Time (like load_events)
    >>> vocab = load_vocabulary("out")                         # the vocabulary of the train split
    >>> train = SessionData.from_events(events, vocab)
    >>> for session in session_dataset("out/test").take(1):    # tf.data, one dict of tensors per session
    ...     print(session["item_idx"])
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

from gru4rec_tf.data import contracts
from gru4rec_tf.data.event_columns import DEFAULT_ITEM_KEY, DEFAULT_SESSION_KEY, DEFAULT_TIME_KEY, DataError
from gru4rec_tf.data.vocabulary import ItemVocabulary

__all__ = ["FEATURE_SPEC", "session_files", "session_dataset", "read_session_tensors", "load_vocabulary",
           "is_session_tensor_path"]

FEATURE_SPEC = {
    **{name: tf.io.FixedLenFeature([], tf.as_dtype(contracts.FEATURE_DTYPES[name]))
       for name in contracts.SESSION_FEATURES},
    **{name: tf.io.RaggedFeature(tf.as_dtype(contracts.FEATURE_DTYPES[name])) for name in contracts.EVENT_FEATURES},
}
PathLike = Union[str, "os.PathLike[str]"]


def is_session_tensor_path(path: PathLike) -> bool:
    """True for a ``.tfrecord`` file or a directory holding ``part-*.tfrecord*`` files."""
    path = os.fspath(path)
    if tf.io.gfile.isdir(path):
        return bool(tf.io.gfile.glob(os.path.join(path, contracts.PART_FILE_GLOB)))
    return contracts.is_tfrecord_name(os.path.basename(path))


def session_files(split_dir_or_pattern: PathLike) -> list[str]:
    """The TFRecord files of a split directory (``part-*.tfrecord*``) or a glob, in name order.

    A directory without files is an empty split (``[]``); a missing path raises :class:`DataError`.
    """
    path = os.fspath(split_dir_or_pattern)
    if tf.io.gfile.isdir(path):
        return sorted(tf.io.gfile.glob(os.path.join(path, contracts.PART_FILE_GLOB)))
    files = sorted(tf.io.gfile.glob(path))
    if not files:
        raise DataError(f"{path}: no such split directory or TFRecord file")
    return files


def _compression(files: list[str]) -> str:
    return "GZIP" if files and all(f.endswith(".gz") for f in files) else ""


def session_dataset(split_dir_or_pattern: PathLike) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of per-session feature dicts (see :data:`FEATURE_SPEC`), in file order."""
    files = session_files(split_dir_or_pattern)
    records = tf.data.TFRecordDataset(files, compression_type=_compression(files))
    return records.map(lambda r: tf.io.parse_single_example(r, FEATURE_SPEC))


def _ids(values: np.ndarray) -> np.ndarray:
    """Decoded IDs, int64 when all are integers (as ``load_events`` reads them from text), else str objects."""
    text = pd.Series([v.decode("utf-8") for v in values], dtype=object)
    if len(text):
        try:
            numbers = pd.to_numeric(text)
        except (ValueError, TypeError):
            numbers = None
        if numbers is not None and numbers.dtype.kind == "i":
            return numbers.to_numpy(dtype=np.int64)
    return text.to_numpy(dtype=object)


_DECIMAL_INTEGER = r"^-?[0-9]+$"  # what pd.to_numeric reads as an integer and prints back the same


def _compact_ids(values: np.ndarray) -> pa.Array:
    """A batch of byte-string IDs as one Arrow binary array (no Python object per ID is kept)."""
    return pa.array(values, type=pa.binary())


def _ids_of(chunks: list[pa.Array]) -> np.ndarray:
    """:func:`_ids` of the concatenated chunks. IDs that are all plain decimal integers are cast in Arrow, without
    a Python object per ID (the common case: the Trainer reads millions); any other ID falls back to :func:`_ids`,
    so the result is the same either way."""
    ids = pa.chunked_array(chunks, type=pa.binary())
    if len(ids):
        try:
            text = ids.cast(pa.string())
            if pc.all(pc.match_substring_regex(text, _DECIMAL_INTEGER)).as_py():
                return text.cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # not UTF-8, or past int64: the exact path decides
            pass
    return _ids(ids.to_numpy(zero_copy_only=False))


def read_session_tensors(split_dir_or_pattern: PathLike, batch_size: int = 4096) -> pd.DataFrame:
    """The events of a split as a DataFrame ``SessionId, ItemId, Time`` (Time in float seconds), file order.

    This is the frame ``load_events`` gives on the equivalent TSV, so the library trains and evaluates on it
    with identical results.
    """
    files = session_files(split_dir_or_pattern)
    sessions, items, times, lengths = [], [], [], []
    if files:
        records = tf.data.TFRecordDataset(files, compression_type=_compression(files)).batch(batch_size)
        spec = {k: FEATURE_SPEC[k] for k in (contracts.SESSION_ID, contracts.ITEM_ID, contracts.TIME_US)}
        try:
            for batch in records:
                parsed = tf.io.parse_example(batch, spec)
                sessions.append(_compact_ids(parsed[contracts.SESSION_ID].numpy()))
                items.append(_compact_ids(parsed[contracts.ITEM_ID].values.numpy()))
                times.append(parsed[contracts.TIME_US].values.numpy())
                lengths.append(parsed[contracts.ITEM_ID].row_lengths().numpy())
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
            raise DataError(f"{split_dir_or_pattern}: corrupt session tensor file ({err.message})") from err
    if not files or not sessions:
        empty = np.array([], dtype=object)
        return pd.DataFrame({DEFAULT_SESSION_KEY: empty, DEFAULT_ITEM_KEY: empty.copy(),
                             DEFAULT_TIME_KEY: np.array([], dtype=np.float64)})
    session_ids = _ids_of(sessions)
    return pd.DataFrame({
        DEFAULT_SESSION_KEY: np.repeat(session_ids, np.concatenate(lengths)),
        DEFAULT_ITEM_KEY: _ids_of(items),
        DEFAULT_TIME_KEY: np.concatenate(times).astype(np.float64) / 1e6,
    })


def load_vocabulary(output_dir: PathLike, split: str = "train") -> ItemVocabulary:
    """The item vocabulary used by ``split`` (train/test: ``vocab.tsv``; train_tr/valid: ``vocab_train_tr.tsv``)."""
    return ItemVocabulary.load(os.path.join(os.fspath(output_dir), contracts.vocab_file(split)))
