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
# many sessions at once: the same bytes, built with numpy


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of int64 values (negative: 10 bytes, two's complement) -> (bytes, offsets)."""
    v = np.asarray(values, dtype=np.int64).view(np.uint64)
    n = np.ones(len(v), dtype=np.int64)
    rest = v >> np.uint64(7)
    while rest.any():
        more = rest > 0
        n += more
        rest = rest >> np.uint64(7)
    offsets = np.zeros(len(v) + 1, dtype=np.int64)
    np.cumsum(n, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    starts = offsets[:-1]
    for k in range(int(n.max(initial=1))):
        sel = np.flatnonzero(n > k)
        byte = (v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        byte |= np.where(n[sel] > k + 1, np.uint64(0x80), np.uint64(0))
        out[starts[sel] + k] = byte.astype(np.uint8)
    return out, offsets


def _varint_len(values: np.ndarray) -> np.ndarray:
    return np.diff(_varints(values)[1])


def _compose(parts: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the concatenation of ``parts`` (each ``bytes``, the same for every row, or ``(flat uint8 array,
    offsets of the n rows' segments in it)``) -> (bytes, offsets of the n rows)."""
    lengths = np.zeros(n, dtype=np.int64)
    for part in parts:
        lengths += len(part) if isinstance(part, bytes) else np.diff(part[1])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    cursor = offsets[:-1].copy()
    for part in parts:
        if isinstance(part, bytes):
            out[cursor[:, None] + np.arange(len(part))] = np.frombuffer(part, dtype=np.uint8)
            cursor += len(part)
        else:
            flat, seg = part
            size = np.diff(seg)
            total = int(seg[-1] - seg[0])
            index = np.repeat(cursor - seg[:-1], size) + np.arange(int(seg[0]), int(seg[-1]), dtype=np.int64)
            out[index] = flat[int(seg[0]):int(seg[0]) + total] if total else flat[:0]
            cursor += size
    return out, offsets


def _segment_take(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The segments ``rows`` of (flat, offsets), concatenated -> (bytes, offsets per taken row)."""
    size = np.diff(offsets)[rows]
    out_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(size, out=out_offsets[1:])
    index = np.repeat(offsets[:-1][rows] - out_offsets[:-1], size) + np.arange(int(out_offsets[-1]), dtype=np.int64)
    return flat[index], out_offsets


def _string_buffers(values) -> tuple[np.ndarray, np.ndarray]:
    """A pyarrow string/binary array -> (UTF-8 bytes, offsets) as numpy arrays."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    values = values.cast(pa.large_binary())
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:values.offset + n + 1]
    data = values.buffers()[2]
    flat = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return flat, offsets


def _name_prefix(name: str) -> bytes:
    key = name.encode("utf-8")
    return b"\x0a" + bytes([len(key)]) + key + b"\x12"  # MapEntry.key (field 1), then MapEntry.value (field 2)


def _masked_crcs(flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Masked CRC32C (TFRecord framing) of each segment."""
    try:
        from google_crc32c import value as crc  # pylint: disable=g-import-not-at-top
    except ImportError:  # pragma: no cover
        crc = _crc32c
    data = flat.tobytes()
    crcs = np.fromiter((crc(data[a:b]) for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)),
                       dtype=np.uint64, count=len(offsets) - 1)
    return ((((crcs >> np.uint64(15)) | (crcs << np.uint64(17))) + np.uint64(0xA282EAD8))
            & np.uint64(0xFFFFFFFF)).astype("<u4")


def session_tfrecords(session_ids, offsets: np.ndarray, item_idx: np.ndarray, times_us: np.ndarray,
                      vocabulary) -> bytes:
    """A TFRecord file's bytes: one :func:`encode_session_example` record per session, in the given order.

    ``session_ids`` (pyarrow string array, one per session), ``offsets`` (sessions + 1 event offsets),
    ``item_idx`` and ``times_us`` (int64 per event) and ``vocabulary`` (pyarrow string array: the item ID of each
    index). The bytes equal :func:`encode_session_example` + :func:`write_tfrecord` session by session, built for
    all sessions at once with numpy (a Python loop runs only for the CRCs).

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
    if n == 0:
        return b""
    lengths = np.diff(offsets)
    if (lengths < 1).any() or len(session_ids) != n or offsets[-1] != len(item_idx) or len(times_us) != len(item_idx):
        raise ValueError("session_tfrecords: every session needs >= 1 event and the columns must have matching lengths")

    def int64_list(values, segments):  # Feature{int64_list: Int64List{value: packed}} -> parts, value length
        flat, value_offsets = _varints(values)
        packed = (flat, value_offsets[segments])
        packed_len = np.diff(packed[1])
        il_len = 1 + _varint_len(packed_len) + packed_len
        parts = [b"\x1a", _varints(il_len), b"\x0a", _varints(packed_len), packed]
        return parts, 1 + _varint_len(il_len) + il_len

    def bytes_list(entries, entries_len):  # Feature{bytes_list: BytesList{value: ...}} -> parts, value length
        return [b"\x0a", _varints(entries_len), entries], 1 + _varint_len(entries_len) + entries_len

    vocab_flat, vocab_offsets = _string_buffers(vocabulary)
    vocab_entries = _compose([b"\x0a", _varints(np.diff(vocab_offsets)), (vocab_flat, vocab_offsets)],
                             len(vocab_offsets) - 1)  # BytesList.value entry of each vocabulary item
    item_flat, item_event_offsets = _segment_take(*vocab_entries, item_idx)
    item_entries = (item_flat, item_event_offsets[offsets])
    sid_flat, sid_offsets = _string_buffers(session_ids)
    sid_len = np.diff(sid_offsets)
    sid_entries = _compose([b"\x0a", _varints(sid_len), (sid_flat, sid_offsets)], n)
    starts = times_us[offsets[:-1]]
    every = np.arange(n + 1, dtype=np.int64)
    features = [  # the order of tf.train.Example.SerializeToString(deterministic=True) in Python
        (contracts.ITEM_IDX, int64_list(item_idx, offsets)),
        (contracts.ITEM_ID, bytes_list(item_entries, np.diff(item_entries[1]))),
        (contracts.SESSION_ID, bytes_list(sid_entries, np.diff(sid_entries[1]))),
        (contracts.SESSION_START_US, int64_list(starts, every)),
        (contracts.TIME_US, int64_list(times_us, offsets)),
    ]
    parts, features_len = [], np.zeros(n, dtype=np.int64)
    for name, (value_parts, value_len) in features:
        prefix = _name_prefix(name)
        entry_len = len(prefix) + _varint_len(value_len) + value_len
        parts += [b"\x0a", _varints(entry_len), prefix, _varints(value_len), *value_parts]
        features_len += 1 + _varint_len(entry_len) + entry_len
    records = _compose([b"\x0a", _varints(features_len), *parts], n)
    record_len = np.diff(records[1]).astype("<u8")
    length_bytes = record_len.view(np.uint8)
    eight = np.arange(0, 8 * n + 1, 8, dtype=np.int64)
    four = np.arange(0, 4 * n + 1, 4, dtype=np.int64)
    framed = _compose([(length_bytes, eight), (_masked_crcs(length_bytes, eight).view(np.uint8), four), records,
                       (_masked_crcs(*records).view(np.uint8), four)], n)
    return framed[0].tobytes()
