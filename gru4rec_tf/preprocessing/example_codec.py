"""Session records as serialized ``tf.train.Example`` protos in TFRecord files, without importing TensorFlow.

Beam workers encode millions of sessions; importing TensorFlow costs seconds per worker process. This module
declares the (stable) ``tf.train.Example`` message schema in a private protobuf descriptor pool, so the fast
protobuf runtime serializes the records (byte-identical to ``tf.train.Example.SerializeToString(
deterministic=True)``), and writes the TFRecord framing itself. The tests decode the files with TensorFlow.

The features of one session record (names, dtypes, meaning) are the contract of :mod:`gru4rec_tf.data.contracts`.

Example::

    >>> from gru4rec_tf.data import contracts
    >>> record = encode_session_example("7", ["a", "b"], [0, 1], [10, 20])
    >>> with open(contracts.part_file_name(0), "wb") as fh:
    ...     write_tfrecord(fh, record)
"""
from __future__ import annotations

import concurrent.futures
import functools
import struct
from typing import BinaryIO
from collections.abc import Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gru4rec_tf.data import contracts

__all__ = ["encode_session_example", "encode_example", "write_tfrecord", "session_tfrecords", "FEATURES"]

FEATURES = contracts.FEATURES
_F = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, kind: int, repeated: bool = False, type_name: str = "", oneof=None):
    field = _F(name=name, number=number, type=kind, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        field.type_name = f".tensorflow.{type_name}"
    if oneof is not None:
        field.oneof_index = oneof
    return field


@functools.cache
def _example_class():
    """``tensorflow.Example`` (tensorflow/core/example/{feature,example}.proto) in a private descriptor pool."""
    proto = descriptor_pb2.FileDescriptorProto(name="gru4rec_tf/tf_example.proto", package="tensorflow",
                                               syntax="proto3")
    for name, kind in (("BytesList", _F.TYPE_BYTES), ("FloatList", _F.TYPE_FLOAT), ("Int64List", _F.TYPE_INT64)):
        proto.message_type.add(name=name).field.append(_field("value", 1, kind, repeated=True))
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    feature.field.extend([_field("bytes_list", 1, _F.TYPE_MESSAGE, type_name="BytesList", oneof=0),
                          _field("float_list", 2, _F.TYPE_MESSAGE, type_name="FloatList", oneof=0),
                          _field("int64_list", 3, _F.TYPE_MESSAGE, type_name="Int64List", oneof=0)])
    features = proto.message_type.add(name="Features")
    features.field.append(_field("feature", 1, _F.TYPE_MESSAGE, repeated=True, type_name="Features.FeatureEntry"))
    entry = features.nested_type.add(name="FeatureEntry")
    entry.field.extend([_field("key", 1, _F.TYPE_STRING), _field("value", 2, _F.TYPE_MESSAGE, type_name="Feature")])
    entry.options.map_entry = True
    proto.message_type.add(name="Example").field.append(_field("features", 1, _F.TYPE_MESSAGE, type_name="Features"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


def encode_session_example(session_id: str, item_ids: Sequence[str], item_idx: Sequence[int],
                           times_us: Sequence[int]) -> bytes:
    """Serialized ``tf.train.Example`` of one session (deterministic bytes)."""
    if not (len(item_ids) == len(item_idx) == len(times_us)) or not item_ids:
        raise ValueError(
            f"session {session_id!r}: item_ids, item_idx and times_us must have the same non-zero length, got "
            f"{len(item_ids)}, {len(item_idx)}, {len(times_us)}"
        )
    example = _example_class()()
    feature = example.features.feature
    feature[contracts.SESSION_ID].bytes_list.value.append(session_id.encode("utf-8"))
    feature[contracts.ITEM_ID].bytes_list.value.extend([i.encode("utf-8") for i in item_ids])
    feature[contracts.ITEM_IDX].int64_list.value.extend(item_idx)
    feature[contracts.TIME_US].int64_list.value.extend(times_us)
    feature[contracts.SESSION_START_US].int64_list.value.append(times_us[0])
    return example.SerializeToString(deterministic=True)


def encode_example(features: dict) -> bytes:
    """Serialized ``tf.train.Example`` of ``{name: (kind, values)}`` with kind ``bytes``, ``int64`` or ``float``.

    Example::

        >>> len(encode_example({"session_id": ("bytes", [b"7"]), "scores": ("float", [0.5, 0.25])})) > 0
        True
    """
    example = _example_class()()
    feature = example.features.feature
    for name, (kind, values) in features.items():
        if kind not in ("bytes", "int64", "float"):
            raise ValueError(f"feature {name!r}: kind must be bytes, int64 or float, got {kind!r}")
        getattr(feature[name], f"{kind}_list").value.extend(values)
    return example.SerializeToString(deterministic=True)


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _crc32c(data: bytes) -> int:
    try:
        import google_crc32c  # pylint: disable=g-import-not-at-top
        return google_crc32c.value(data)
    except ImportError:  # pragma: no cover - Beam's own fallbacks (snappy, crcmod)
        from apache_beam.io import tfrecordio  # pylint: disable=g-import-not-at-top
        return tfrecordio._default_crc32c_fn(data)  # pylint: disable=protected-access


def write_tfrecord(handle: BinaryIO, record: bytes) -> None:
    """Appends one record with TFRecord framing (length, masked CRC32C of length, data, masked CRC32C of data)."""
    length = struct.pack("<Q", len(record))
    handle.write(length)
    handle.write(struct.pack("<I", _masked_crc(length)))
    handle.write(record)
    handle.write(struct.pack("<I", _masked_crc(record)))


# ----------------------------------------------------------------------------------------------------------------
# many sessions at once: the same bytes, written with numpy into one buffer


_VARINT_LIMITS = np.array([1 << bits for bits in range(7, 64, 7)], dtype=np.uint64)


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes of the protobuf varint of each int64 (negative: 10, two's complement)."""
    v = np.asarray(values, dtype=np.int64).view(np.uint64)
    sizes = np.ones(v.shape, dtype=np.int64)
    if not v.size:
        return sizes
    top = v.max()
    for limit in _VARINT_LIMITS:  # vectorised comparisons (~10x faster than a binary search per value), only up to
        if limit > top:  # the largest value's size: item indices need 2, timestamps 7
            break
        sizes += v >= limit
    return sizes


def _put_varints(out: np.ndarray, dest: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> None:
    """Writes the varint of ``values[i]`` (``sizes[i]`` bytes) at ``out[dest[i]:]``."""
    v = np.asarray(values, dtype=np.int64).view(np.uint64)
    if not sizes.size:
        return
    smallest = int(sizes.min())
    for k in range(int(sizes.max())):
        if k >= smallest:  # below the smallest size every value has byte k: no need to look for those that end
            keep = np.flatnonzero(sizes > k)
            if len(keep) < len(sizes):
                v, sizes, dest = v[keep], sizes[keep], dest[keep]
        byte = (v >> np.uint64(7 * k)).astype(np.uint8) & np.uint8(0x7F)
        byte |= (sizes > k + 1).astype(np.uint8) << np.uint8(7)
        out[dest + k] = byte


def _put_bytes(out: np.ndarray, dest: np.ndarray, flat: np.ndarray, src: np.ndarray, sizes: np.ndarray) -> None:
    """Copies ``flat[src[i]:src[i] + sizes[i]]`` to ``out[dest[i]:]`` for every i."""
    width = int(sizes.max(initial=0))
    if not width:
        return
    if width <= 32:  # short strings (IDs): a padded 2-D gather, one masked scatter
        cols = np.arange(width, dtype=np.int64)
        mask = cols < sizes[:, None]
        padded = np.zeros(len(flat) + width, dtype=np.uint8)
        padded[:len(flat)] = flat
        out[(dest[:, None] + cols)[mask]] = padded[src[:, None] + cols][mask]
        return
    within = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    out[np.repeat(dest, sizes) + within] = flat[np.repeat(src, sizes) + within]


def _string_buffers(values) -> tuple[np.ndarray, np.ndarray]:
    """A pyarrow string/binary array -> (UTF-8 bytes, offsets) as numpy arrays."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    values = values.cast(pa.large_binary())
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:values.offset + n + 1]
    data = values.buffers()[2]
    flat = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return flat, offsets


def _masked(crcs: np.ndarray) -> np.ndarray:
    crcs = crcs.astype(np.uint64)
    return (((crcs >> np.uint64(15)) | (crcs << np.uint64(17))) + np.uint64(0xA282EAD8)) & np.uint64(0xFFFFFFFF)


class _Rows:
    """Writes per-row parts one after the other into ``out``: ``cursor[i]`` is where row i's next part goes."""

    def __init__(self, out: np.ndarray, cursor: np.ndarray, offsets: np.ndarray):
        self.out, self.cursor, self.offsets = out, cursor, offsets
        self.lengths = np.diff(offsets)

    def const(self, data: bytes) -> None:
        if not data:
            return
        if len(data) == 1:
            self.out[self.cursor] = data[0]
        else:
            self.out[self.cursor[:, None] + np.arange(len(data))] = np.frombuffer(data, dtype=np.uint8)
        self.cursor += len(data)

    def varint(self, values: np.ndarray) -> None:
        sizes = _varint_sizes(values)
        _put_varints(self.out, self.cursor, values, sizes)
        self.cursor += sizes

    def _stream_dest(self, sizes: np.ndarray) -> np.ndarray:
        before = np.cumsum(sizes) - sizes  # per event: bytes of the events before it
        return before + np.repeat(self.cursor - before[self.offsets[:-1]], self.lengths)

    def varint_stream(self, values: np.ndarray, sizes: np.ndarray, per_row: np.ndarray) -> None:
        """The varints of the row's events, one after the other (a packed repeated field's payload)."""
        _put_varints(self.out, self._stream_dest(sizes), values, sizes)
        self.cursor += per_row

    def entry_stream(self, flat: np.ndarray, src: np.ndarray, sizes: np.ndarray, per_row: np.ndarray) -> None:
        """Per event ``0x0a varint(size) bytes`` (a BytesList value), one after the other."""
        size_bytes = _varint_sizes(sizes)
        dest = self._stream_dest(1 + size_bytes + sizes)
        self.out[dest] = 0x0A
        _put_varints(self.out, dest + 1, sizes, size_bytes)
        _put_bytes(self.out, dest + 1 + size_bytes, flat, src, sizes)
        self.cursor += per_row


# sessions are encoded in chunks of this many, in threads: numpy's kernels release the GIL, and a chunk's index arrays
# stay in the CPU caches (200k sessions / 900k events: 0.45 s in chunks on 2 threads, 0.65 s in chunks on one,
# 0.75-0.97 s at once); the chunks' records, concatenated, are the same bytes
_CHUNK_SESSIONS = 32_768
_ENCODE_THREADS = 2


def session_tfrecords(session_ids, offsets: np.ndarray, item_idx: np.ndarray, times_us: np.ndarray,
                      vocabulary) -> bytes:
    """A TFRecord file's bytes: one :func:`encode_session_example` record per session, in the given order.

    ``session_ids`` (pyarrow string array, one per session), ``offsets`` (sessions + 1 event offsets),
    ``item_idx`` and ``times_us`` (int64 per event) and ``vocabulary`` (pyarrow string array: the item ID of each
    index). The bytes equal :func:`encode_session_example` + :func:`write_tfrecord` session by session; they are
    written with numpy for a chunk of sessions at once (a Python loop runs only for the CRCs).

    Example::

        >>> import pyarrow as pa
        >>> data = session_tfrecords(pa.array(["7"]), np.array([0, 2]), np.array([1, 0]), np.array([10, 20]),
        ...                          pa.array(["a", "b"]))
        >>> import io; fh = io.BytesIO(); write_tfrecord(fh, encode_session_example("7", ["b", "a"], [1, 0], [10, 20]))
        >>> data == fh.getvalue()
        True
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    times_us = np.asarray(times_us, dtype=np.int64)
    n = len(offsets) - 1
    if n <= 0:
        return b""
    if (np.diff(offsets) < 1).any() or len(session_ids) != n or offsets[-1] != len(item_idx) \
            or len(times_us) != len(item_idx) or offsets[0] != 0:
        raise ValueError("session_tfrecords: every session needs >= 1 event and the columns must have matching lengths")
    vocab = _string_buffers(vocabulary)
    if n <= _CHUNK_SESSIONS:
        return _encode_sessions(session_ids, offsets, item_idx, times_us, *vocab)

    def chunk(first: int) -> bytes:
        last = min(first + _CHUNK_SESSIONS, n)
        bounds = offsets[first:last + 1]
        events = slice(bounds[0], bounds[-1])
        return _encode_sessions(session_ids.slice(first, last - first), bounds - bounds[0], item_idx[events],
                                times_us[events], *vocab)

    with concurrent.futures.ThreadPoolExecutor(_ENCODE_THREADS) as pool:
        return b"".join(pool.map(chunk, range(0, n, _CHUNK_SESSIONS)))


def _encode_sessions(session_ids, offsets: np.ndarray, item_idx: np.ndarray, times_us: np.ndarray,
                     vocab_flat: np.ndarray, vocab_offsets: np.ndarray) -> bytes:
    """:func:`session_tfrecords` of checked columns (the vocabulary as :func:`_string_buffers`)."""
    n = len(offsets) - 1

    def per_row(values):  # per-event sizes -> per-session sums
        return np.add.reduceat(values, offsets[:-1])

    def framed(payload):  # a length-delimited field: tag, varint(length), payload
        return 1 + _varint_sizes(payload) + payload

    item_len = np.diff(vocab_offsets)[item_idx]
    sid_flat, sid_offsets = _string_buffers(session_ids)
    sid_len = np.diff(sid_offsets)
    starts = times_us[offsets[:-1]]
    idx_sizes, time_sizes = _varint_sizes(item_idx), _varint_sizes(times_us)
    packed = {contracts.ITEM_IDX: per_row(idx_sizes), contracts.SESSION_START_US: _varint_sizes(starts),
              contracts.TIME_US: per_row(time_sizes)}
    item_entries = per_row(1 + _varint_sizes(item_len) + item_len)
    sid_entry = framed(sid_len)
    names = (contracts.ITEM_IDX, contracts.ITEM_ID, contracts.SESSION_ID, contracts.SESSION_START_US,
             contracts.TIME_US)  # the order of tf.train.Example.SerializeToString(deterministic=True) in Python
    value_len = {name: framed(framed(packed[name])) for name in packed}  # Feature{int64_list{value: packed}}
    value_len[contracts.ITEM_ID] = framed(item_entries)  # Feature{bytes_list{value: ...}}
    value_len[contracts.SESSION_ID] = framed(sid_entry)
    prefix = {name: b"\x0a" + bytes([len(name)]) + name.encode("utf-8") + b"\x12" for name in names}
    body_len = {name: len(prefix[name]) + _varint_sizes(value_len[name]) + value_len[name] for name in names}
    features_len = sum(framed(body_len[name]) for name in names)
    record_len = framed(features_len)
    row_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(16 + record_len, out=row_offsets[1:])

    out = np.empty(int(row_offsets[-1]), dtype=np.uint8)
    rows = _Rows(out, row_offsets[:-1].copy(), offsets)
    length_bytes = record_len.astype("<u8")
    unique_len, which = np.unique(length_bytes, return_inverse=True)
    length_crc = _masked(np.array([_crc_function()(x.tobytes()) for x in unique_len.astype("<u8")], dtype=np.uint64))
    rows.out[rows.cursor[:, None] + np.arange(8)] = length_bytes.view(np.uint8).reshape(n, 8)
    rows.cursor += 8
    rows.out[rows.cursor[:, None] + np.arange(4)] = length_crc[which].astype("<u4").view(np.uint8).reshape(n, 4)
    rows.cursor += 4
    rows.const(b"\x0a")
    rows.varint(features_len)
    for name in names:
        rows.const(b"\x0a")
        rows.varint(body_len[name])
        rows.const(prefix[name])
        rows.varint(value_len[name])
        if name == contracts.ITEM_ID:
            rows.const(b"\x0a")
            rows.varint(item_entries)
            rows.entry_stream(vocab_flat, vocab_offsets[:-1][item_idx], item_len, item_entries)
        elif name == contracts.SESSION_ID:
            rows.const(b"\x0a")
            rows.varint(sid_entry)
            rows.const(b"\x0a")
            rows.varint(sid_len)
            _put_bytes(out, rows.cursor, sid_flat, sid_offsets[:-1], sid_len)
            rows.cursor += sid_len
        else:
            rows.const(b"\x1a")
            rows.varint(framed(packed[name]))
            rows.const(b"\x0a")
            rows.varint(packed[name])
            if name == contracts.SESSION_START_US:
                rows.varint(starts)
            else:
                values, sizes = (item_idx, idx_sizes) if name == contracts.ITEM_IDX else (times_us, time_sizes)
                rows.varint_stream(values, sizes, packed[name])
    data = out.tobytes()
    crc = _crc_function()
    first = (row_offsets[:-1] + 12).tolist()
    ends = (row_offsets[:-1] + 12 + record_len).tolist()
    crcs = np.fromiter(map(crc, map(data.__getitem__, map(slice, first, ends))), dtype=np.uint64, count=n)
    out[rows.cursor[:, None] + np.arange(4)] = _masked(crcs).astype("<u4").view(np.uint8).reshape(n, 4)
    return out.tobytes()


def _crc_function():
    try:
        from google_crc32c import value  # pylint: disable=g-import-not-at-top
        return value
    except ImportError:  # pragma: no cover
        return _crc32c
