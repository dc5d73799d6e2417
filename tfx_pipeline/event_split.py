"""The ``events`` split of ClickLogExampleGen's ``Examples`` artifact: written as Parquet, read as Arrow batches.

ClickLogExampleGen writes its events with TFX's Parquet payload (``payload_format`` ``FORMAT_PARQUET``, files
``Split-events/data_parquet-SSSSS-of-NNNNN.parquet``), one list value per cell: ``<key>_id`` and ``item_id`` as
``list<binary>``, ``time_us`` as ``list<int64>``. Why Parquet rather than ``tf.train.Example`` records:

* every reader downstream reads it: TFX's StatisticsGen (its TFXIO factory has a Parquet source), our
  :mod:`~tfx_pipeline.components.event_statistics`, SessionTensors and DataValidator;
* it is columnar, so writing and reading cost a few array copies per batch. Encoding each event as a
  ``tf.train.Example`` and gzipping it was most of the ingestion's per-event cost, and decoding them again most of
  SessionTensors' (issue 27). It is written without dictionary pages or column statistics (5M events: 1.1 s to
  write instead of 4.1 s; the files are a quarter larger, and every reader scans whole files anyway);
* list columns, because TFDV computes statistics of list-typed Arrow columns only (one value per example, as a
  ``tf.train.Example`` decodes to).

Artifacts written before (``FORMAT_TF_EXAMPLE``, gzipped TFRecords) are still read: every reader here dispatches
on the artifact's payload format.

Example::

    batches = pipeline | EventBatchSource(examples)          # Beam: pa.RecordBatch of key, item_id, time_us
    for batch in iter_list_batches(examples): ...            # one process: the split's list columns, batch by batch
    keys, items, item_ids, times = read_event_arrays(examples)   # in memory: IDs as integer codes
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from absl import logging
from apache_beam.io.filesystems import FileSystems

from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.preprocessing import beam_transforms as bt
from gru4rec_tf.preprocessing.arrow_sessions import ITEM, KEY, TIME  # the flat event columns of the session builder

SPLIT = "events"
FILE_PREFIX, FILE_SUFFIX = "data_parquet", ".parquet"  # the names of TFX's ExampleGen for a Parquet payload
FILE_FORMAT = "FILE_FORMAT_PARQUET"  # the artifact's file_format property, as TFX's TFXIO factory reads it
_TF_EXAMPLE_BATCH = 100_000  # examples per record batch when reading an artifact of tf.train.Example records


def key_feature(examples) -> str:
    """The session or user ID column of an ``Examples`` artifact (``session_id`` or ``user_id``)."""
    return f"{examples.get_string_custom_property('event_key') or 'session'}_id"


def list_schema(key_name: str) -> pa.Schema:
    """The Parquet schema of the events split: one value per list cell, as TFDV reads it."""
    return pa.schema([(key_name, pa.list_(pa.binary())), (ITEM, pa.list_(pa.binary())), (TIME, pa.list_(pa.int64()))])


def to_list_columns(batch: pa.RecordBatch, key_name: str) -> pa.RecordBatch:
    """Flat event columns ``key, item_id, time_us`` -> the split's list columns (``<key_name>``, ``item_id``,
    ``time_us``), without copying the values.

    Example::

        >>> b = pa.record_batch([pa.array(["s"]), pa.array(["i"]), pa.array([5])], names=["key", "item_id", "time_us"])
        >>> to_list_columns(b, "session_id").to_pydict()
        {'session_id': [[b's']], 'item_id': [[b'i']], 'time_us': [[5]]}
    """
    offsets = pa.array(np.arange(batch.num_rows + 1, dtype=np.int32))
    columns = [pa.ListArray.from_arrays(offsets, batch.column(KEY).cast(pa.binary())),
               pa.ListArray.from_arrays(offsets, batch.column(ITEM).cast(pa.binary())),
               pa.ListArray.from_arrays(offsets, batch.column(TIME).cast(pa.int64()))]
    return pa.RecordBatch.from_arrays(columns, schema=list_schema(key_name))


def to_flat_columns(batch: pa.RecordBatch, key_name: str) -> pa.RecordBatch:
    """The split's list columns -> the session builder's flat ``key, item_id, time_us`` (strings, strings, int64).

    Every event must hold exactly one value of each column; otherwise a :class:`DataError` names the column.

    Example::

        >>> b = pa.record_batch([pa.array([[b"s"]]), pa.array([[b"i"]]), pa.array([[5]])],
        ...                     names=["session_id", "item_id", "time_us"])
        >>> to_flat_columns(b, "session_id").to_pydict()
        {'key': ['s'], 'item_id': ['i'], 'time_us': [5]}
    """
    columns = []
    for feature, name in ((key_name, KEY), (ITEM, ITEM), (TIME, TIME)):
        index = batch.schema.get_field_index(feature)
        if index < 0:
            raise DataError(f"ingested events: no column {feature!r} (columns: {batch.schema.names})")
        column = batch.column(index)
        lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
        if (lengths != 1).any():
            raise DataError(f"ingested events: {int((lengths != 1).sum())} event(s) without exactly one "
                            f"{feature!r} value")
        values = pc.list_flatten(column)
        columns.append(values.cast(pa.string()) if name != TIME else values)
    return pa.record_batch(columns, names=[KEY, ITEM, TIME])


# ------------------------------------------------------------------------------------------------------ write
class _WriteParquetFiles(beam.DoFn):
    """Writes each bundle's event batches to one Parquet file in ``temp_dir`` (a row group per batch); emits
    ``(file, rows)`` when the bundle ends (only the files it reports are published)."""

    def __init__(self, temp_dir: str, key_name: str):
        self._temp_dir, self._key_name = temp_dir, key_name
        self._writer = self._handle = None

    def start_bundle(self):
        self._writer, self._handle, self._path, self._rows = None, None, None, 0

    def process(self, batch):
        if not batch.num_rows:
            return
        if self._writer is None:
            self._path = FileSystems.join(self._temp_dir, f"{uuid.uuid4().hex}{FILE_SUFFIX}")
            self._handle = FileSystems.create(self._path, mime_type="application/octet-stream")
            # no dictionary pages and no column statistics: with them, writing took 0.49 s per 1M events, without
            # 0.18 s (the files are 25% larger; every reader scans whole files anyway)
            self._writer = pq.ParquetWriter(self._handle, list_schema(self._key_name), compression="snappy",
                                            use_dictionary=False, write_statistics=False)
        self._writer.write_batch(to_list_columns(batch, self._key_name))
        self._rows += batch.num_rows

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow  # pylint: disable=g-import-not-at-top
        from apache_beam.utils.timestamp import MIN_TIMESTAMP  # pylint: disable=g-import-not-at-top
        from apache_beam.utils.windowed_value import WindowedValue  # pylint: disable=g-import-not-at-top
        if self._writer is not None:
            self._writer.close()
            self._handle.close()
            logging.info("ClickLogExampleGen: wrote %d events to %s", self._rows, self._path)
            yield WindowedValue((self._path, self._rows), MIN_TIMESTAMP, [GlobalWindow()])
        self._writer = self._handle = None


def _publish_files(written, split_dir: str, temp_dir: str) -> int:
    """Moves the written files into the split directory as ``data_parquet-SSSSS-of-NNNNN.parquet`` and removes the
    temporary directory; returns the number of events."""
    written = sorted(written)
    if not FileSystems.exists(split_dir):
        FileSystems.mkdirs(split_dir)
    names = [FileSystems.join(split_dir, f"{FILE_PREFIX}-{shard:05d}-of-{len(written):05d}{FILE_SUFFIX}")
             for shard in range(len(written))]
    if written:
        FileSystems.rename([path for path, _ in written], names)
    FileSystems.delete([temp_dir])
    return sum(n for _, n in written)


class WriteEventFiles(beam.PTransform):
    """Writes event record batches (flat ``key, item_id, time_us``) as the ``events`` split: Parquet files in the
    layout of TFX's ExampleGen, a row group per batch, no shuffle of single events. Files are written under
    ``temp_dir`` and moved in place once all are complete. Returns a PCollection with the number of events.

    Example::

        read["batches"] | WriteEventFiles(os.path.join(uri, "Split-events"), os.path.join(uri, ".tmp"))
    """

    def __init__(self, split_dir: str, temp_dir: str, key_name: str = "session_id"):
        super().__init__()
        self._split_dir, self._temp_dir, self._key_name = split_dir, temp_dir, key_name

    def expand(self, batches):
        if not FileSystems.exists(self._temp_dir):
            FileSystems.mkdirs(self._temp_dir)
        written = batches | "WriteParquet" >> beam.ParDo(_WriteParquetFiles(self._temp_dir, self._key_name))
        return bt.gathered(written, "Publish", _publish_files, self._split_dir, self._temp_dir)


# ------------------------------------------------------------------------------------------------------- read
def is_parquet(examples) -> bool:
    """True when the artifact's payload is Parquet (as ClickLogExampleGen writes), False for tf.Example records."""
    from tfx.components.util import examples_utils  # pylint: disable=g-import-not-at-top
    from tfx.proto import example_gen_pb2  # pylint: disable=g-import-not-at-top
    return examples_utils.get_payload_format(examples) == example_gen_pb2.FORMAT_PARQUET


def split_files(examples, split: str = SPLIT) -> list[str]:
    """The data files of one split of an ``Examples`` artifact, sorted."""
    from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _events_schema(key_name: str):
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top
    schema = schema_pb2.Schema()
    for name, kind in ((key_name, schema_pb2.BYTES), (ITEM, schema_pb2.BYTES), (TIME, schema_pb2.INT)):
        schema.feature.add(name=name, type=kind)
    return schema


class EventBatchSource(beam.PTransform):
    """Reads the ``events`` split of an ``Examples`` artifact as record batches of the flat event columns
    ``key, item_id, time_us`` (Parquet: a batch per row group; tf.Example records: tfx_bsl's TFXIO decoder).

    Example::

        batches = pipeline | "ReadEvents" >> EventBatchSource(examples)
    """

    def __init__(self, examples):
        super().__init__()
        from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
        self._pattern = os.path.join(artifact_utils.get_split_uri([examples], SPLIT), "*")
        self._key_name, self._parquet = key_feature(examples), is_parquet(examples)

    def expand(self, pbegin):
        names, key_name = [self._key_name, ITEM, TIME], self._key_name
        if self._parquet:  # a table per row group -> its batches, flat (one stage: each costs a fixed time locally)
            tables = pbegin | "ReadParquet" >> beam.io.ReadFromParquetBatched(self._pattern, columns=names)
            return tables | "ToEvents" >> beam.FlatMap(
                lambda table: [to_flat_columns(batch, key_name=key_name) for batch in table.to_batches()])
        from tfx_bsl.public import tfxio  # pylint: disable=g-import-not-at-top
        read = tfxio.TFExampleRecord(file_pattern=self._pattern, schema=_events_schema(self._key_name),
                                     telemetry_descriptors=["gru4rec", "events"])
        batches = pbegin | "ReadExamples" >> read.BeamSource(batch_size=_TF_EXAMPLE_BATCH)
        return batches | "ToEvents" >> beam.Map(to_flat_columns, key_name=key_name)


def iter_list_batches(examples, split: str = SPLIT) -> Iterator[pa.RecordBatch]:
    """The split's events as record batches of its list columns, one row group (or 64k records) at a time."""
    files = split_files(examples, split)
    if is_parquet(examples):
        for path in files:
            with FileSystems.open(path) as handle:
                yield from pq.ParquetFile(handle).iter_batches(batch_size=1 << 20)
        return
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    for records in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65536):
        yield decoder.DecodeBatch(records.numpy().tolist())


def read_event_arrays(examples) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(key_codes, item_codes, item_ids, times_us)`` of the split's events: the session (or user) and item IDs as
    int32 codes (Arrow's dictionary encoding, in C++), ``item_ids`` the item ID (bytes) of each item code, times as
    int64. About 16 bytes per event in memory, instead of two Python ``bytes`` objects per event."""
    key_name = key_feature(examples)
    parts = [to_flat_columns(batch, key_name) for batch in iter_list_batches(examples)]
    if not parts:
        empty = np.array([], dtype=np.int32)
        return empty, empty, np.array([], dtype=object), np.array([], dtype=np.int64)
    table = pa.Table.from_batches(parts)
    keys = pc.dictionary_encode(table.column(KEY).combine_chunks())
    items = pc.dictionary_encode(table.column(ITEM).combine_chunks())
    return (keys.indices.to_numpy(), items.indices.to_numpy(),
            items.dictionary.cast(pa.binary()).to_numpy(zero_copy_only=False), table.column(TIME).to_numpy())
