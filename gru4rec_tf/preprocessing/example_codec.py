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

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gru4rec_tf.data import contracts

__all__ = ["encode_session_example", "encode_example", "write_tfrecord", "FEATURES"]

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
