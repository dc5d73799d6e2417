"""The events split (tfx_pipeline.event_split, issue 27): written as Parquet a batch at a time, in TFX's layout and
with TFX's payload properties; read back identically as Beam batches, as list batches and as coded arrays, also
from an older split of tf.Example records; a cell without exactly one value is refused naming its column."""
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from gru4rec_tf.data.event_columns import DataError
from tfx_pipeline import event_split

IN_MEMORY = ["--runner=FnApiRunner", "--direct_running_mode=in_memory"]


def _flat(n, offset=0):
    rows = np.arange(offset, offset + n)
    return pa.record_batch([pa.array([f"s{i // 3}" for i in rows], pa.string()),
                            pa.array([f"é{i % 7}" for i in rows], pa.string()),
                            pa.array(1_700_000_000_000_000 + rows, pa.int64())], names=["key", "item_id", "time_us"])


def _artifact(uri, parquet=True, event_key="user"):
    from tfx.components.util import examples_utils  # pylint: disable=g-import-not-at-top
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts
    examples = standard_artifacts.Examples()
    examples.uri, examples.split_names = str(uri), '["events"]'
    examples.set_string_custom_property("event_key", event_key)
    if parquet:
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_PARQUET)
        examples_utils.set_file_format(examples, event_split.FILE_FORMAT)
    return examples


def _write(tmp_path, batches):
    split_dir = tmp_path / "examples" / "Split-events"
    with beam.Pipeline(argv=IN_MEMORY) as pipeline:
        _ = (pipeline | beam.Create(batches, reshuffle=False)
             | event_split.WriteEventFiles(str(split_dir), str(tmp_path / "examples" / ".tmp"), key_name="user_id"))
    return _artifact(tmp_path / "examples")


def _read_beam(examples, tmp_path):
    """The events EventBatchSource reads, gathered through a file (the runner pickles its DoFns)."""
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    path = str(tmp_path / "read.parquet")

    def write(batches):
        pq.write_table(pa.Table.from_batches(batches), path)
    with beam.Pipeline(argv=IN_MEMORY) as pipeline:
        _ = pipeline | event_split.EventBatchSource(examples) | beam.combiners.ToList() | beam.Map(write)
    return pq.read_table(path).sort_by("time_us")


def test_written_split_has_tfx_layout_and_reads_back_identically(tmp_path):
    batches = [_flat(1000), _flat(0, 1000), _flat(500, 1000)]  # an empty batch writes nothing
    examples = _write(tmp_path, batches)
    files = sorted(os.listdir(tmp_path / "examples" / "Split-events"))
    assert files and all(f.startswith("data_parquet-") and f.endswith(f"-of-{len(files):05d}.parquet") for f in files)
    assert not (tmp_path / "examples" / ".tmp").exists()
    want = pa.Table.from_batches(batches).sort_by("time_us")
    assert _read_beam(examples, tmp_path).equals(want)
    listed = pa.Table.from_batches(list(event_split.iter_list_batches(examples)))
    assert listed.schema == event_split.list_schema("user_id")
    keys, items, item_ids, times = event_split.read_event_arrays(examples)
    order = np.argsort(times)
    assert times[order].tolist() == want.column("time_us").to_pylist()
    assert [item_ids[c].decode() for c in items[order]] == want.column("item_id").to_pylist()
    assert len(np.unique(keys)) == len(set(want.column("key").to_pylist())) and keys.dtype == np.int32


def test_a_split_of_tf_examples_reads_as_the_same_events(tmp_path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing import example_codec
    flat = _flat(300)
    split_dir = tmp_path / "old" / "Split-events"
    split_dir.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split_dir / "data_tfrecord-00000-of-00001.gz"), "GZIP") as writer:
        for key, item, time_us in zip(*(flat.column(i).to_pylist() for i in range(3)), strict=True):
            writer.write(example_codec.encode_example({"user_id": ("bytes", [key.encode()]),
                                                       "item_id": ("bytes", [item.encode()]),
                                                       "time_us": ("int64", [time_us])}))
    examples = _artifact(tmp_path / "old", parquet=False)
    assert not event_split.is_parquet(examples)
    assert _read_beam(examples, tmp_path).equals(pa.Table.from_batches([flat]))
    keys, items, item_ids, times = event_split.read_event_arrays(examples)
    assert [item_ids[c].decode() for c in items] == flat.column("item_id").to_pylist() and len(times) == 300


def test_a_cell_without_exactly_one_value_is_refused_naming_its_column():
    batch = pa.record_batch([pa.array([[b"s"], [b"s"]]), pa.array([[b"i"], [b"i", b"j"]]), pa.array([[1], [2]])],
                            names=["session_id", "item_id", "time_us"])
    with pytest.raises(DataError, match=r"1 event\(s\) without exactly one 'item_id' value"):
        event_split.to_flat_columns(batch, "session_id")
    with pytest.raises(DataError, match=r"no column 'session_id'"):
        event_split.to_flat_columns(batch.drop_columns(["session_id"]), "session_id")
