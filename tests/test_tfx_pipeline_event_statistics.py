"""StatisticsGen of the click events (tfx_pipeline.components.event_statistics, issues 23 and 27): statistics
streamed through TFDV's generators in one process are TFX StatisticsGen's (same artifact layout and properties, same
counts, the same inferred schema), for the Parquet events split that ClickLogExampleGen writes (which TFX's own
executor reads too) and for an older split of tf.Example records; a distributed runner gets the Beam executor."""
import os

import numpy as np
import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

N_EVENTS = 600


def _events():
    rng = np.random.default_rng(0)
    return ([str(i // 4).encode() for i in range(N_EVENTS)],
            [str(int(rng.zipf(1.5)) % 50).encode() for _ in range(N_EVENTS)],
            [1_796_515_200_000_000 + i for i in range(N_EVENTS)])


def _write_tf_examples(split_dir):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.io.TFRecordWriter(os.path.join(split_dir, "data.gz"), "GZIP") as writer:
        for key, item, time_us in zip(*_events(), strict=True):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "session_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[key])),
                "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item])),
                "time_us": tf.train.Feature(int64_list=tf.train.Int64List(value=[time_us]))})).SerializeToString())


def _write_parquet(split_dir, examples):
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq
    from tfx.components.util import examples_utils
    from tfx.proto import example_gen_pb2
    from tfx_pipeline import event_split
    keys, items, times = _events()
    flat = pa.record_batch([pa.array(keys).cast(pa.string()), pa.array(items).cast(pa.string()), pa.array(times)],
                           names=["key", "item_id", "time_us"])
    for part in range(2):  # two files of several row groups: the stream sees many batches
        rows = flat.slice(part * N_EVENTS // 2, N_EVENTS // 2)
        pq.write_table(pa.Table.from_batches([event_split.to_list_columns(rows, "session_id")]),
                       os.path.join(split_dir, f"data_parquet-{part:05d}-of-00002.parquet"), row_group_size=70)
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_PARQUET)
    examples_utils.set_file_format(examples, event_split.FILE_FORMAT)


def _examples(tmp_path, payload):
    from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / f"examples-{payload}")
    examples.split_names = '["events"]'
    split_dir = os.path.join(examples.uri, "Split-events")
    os.makedirs(split_dir, exist_ok=True)
    _write_parquet(split_dir, examples) if payload == "parquet" else _write_tf_examples(split_dir)
    return examples


def _run(tmp_path, name, examples, runner="DirectRunner"):
    from tfx.components.statistics_gen import stats_artifact_utils  # pylint: disable=g-import-not-at-top
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts
    from tfx_pipeline.components import event_statistics
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / name)
    executor = event_statistics.Executor(base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=[f"--runner={runner}"], tmp_dir=str(tmp_path / "tmp"), unique_id=name))
    executor.Do({"examples": [examples]}, {"statistics": [statistics]}, {})
    return statistics, stats_artifact_utils.load_statistics(statistics, "events").proto()


@pytest.mark.slow  # runs TFX's Beam StatisticsGen twice: ~20 s idle, ~60 s loaded, too heavy for the fast tier
@pytest.mark.parametrize("payload", ["parquet", "tf_example"])
def test_streamed_statistics_are_statistics_gens(tmp_path, monkeypatch, payload):
    import tfx  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (before TFDV)
    import tensorflow_data_validation as tfdv
    from tfx_pipeline.components import event_statistics
    calls = []
    original = event_statistics.statistics_gen_executor.Executor.Do
    monkeypatch.setattr(event_statistics.statistics_gen_executor.Executor, "Do",
                        lambda self, *args: calls.append(args) or original(self, *args))
    examples = _examples(tmp_path, payload)
    streamed, streamed_stats = _run(tmp_path, "streamed", examples)
    assert not calls  # no Beam job
    monkeypatch.setattr(event_statistics, "runs_locally", lambda args: False)  # as on Dataflow: TFX's own executor
    beam, beam_stats = _run(tmp_path, "beam", examples)
    assert len(calls) == 1
    assert streamed.split_names == beam.split_names and streamed.span == beam.span
    assert streamed.get_json_value_custom_property("sample_rate_by_split") == \
        beam.get_json_value_custom_property("sample_rate_by_split")
    assert sorted(os.listdir(os.path.join(streamed.uri, "Split-events"))) == ["FeatureStats.pb"]
    mine, theirs = streamed_stats.datasets[0], beam_stats.datasets[0]
    assert mine.num_examples == theirs.num_examples == N_EVENTS
    features = {str(f.path.step[0]): f for f in mine.features}
    expected = {str(f.path.step[0]): f for f in theirs.features}
    assert set(features) == set(expected) == {"session_id", "item_id", "time_us"}
    for name in ("session_id", "item_id"):
        assert features[name].string_stats.unique == expected[name].string_stats.unique
    assert features["time_us"].num_stats.mean == pytest.approx(expected["time_us"].num_stats.mean)
    assert features["time_us"].num_stats.max == expected["time_us"].num_stats.max
    assert tfdv.infer_schema(streamed_stats) == tfdv.infer_schema(beam_stats)
