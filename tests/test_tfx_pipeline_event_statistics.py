"""StatisticsGen of the click events (tfx_pipeline.components.event_statistics, issue 23): a small span's
statistics computed in memory are TFX StatisticsGen's (same artifact layout and properties, same counts, the same
inferred schema), a big span goes through the Beam executor."""
import os

import numpy as np
import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)


def _examples(tmp_path, rows_ok):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfx.types import standard_artifacts
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["events"]'
    if rows_ok is not None:
        examples.set_int_custom_property("rows_ok", rows_ok)
    os.makedirs(os.path.join(examples.uri, "Split-events"), exist_ok=True)
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(os.path.join(examples.uri, "Split-events", "data.gz"), "GZIP") as writer:
        for i in range(600):
            example = tf.train.Example(features=tf.train.Features(feature={
                "session_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(i // 4).encode()])),
                "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[str(int(rng.zipf(1.5)) % 50).encode()])),
                "time_us": tf.train.Feature(int64_list=tf.train.Int64List(value=[1_796_515_200_000_000 + i]))}))
            writer.write(example.SerializeToString())
    return examples


def _run(tmp_path, name, rows_ok):
    from tfx.components.statistics_gen import stats_artifact_utils  # pylint: disable=g-import-not-at-top
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts
    from tfx_pipeline.components import event_statistics
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / name)
    executor = event_statistics.Executor(base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=["--runner=DirectRunner"], tmp_dir=str(tmp_path / "tmp"), unique_id=name))
    executor.Do({"examples": [_examples(tmp_path, rows_ok)]}, {"statistics": [statistics]}, {})
    return statistics, stats_artifact_utils.load_statistics(statistics, "events").proto()


@pytest.mark.slow  # runs TFX's Beam StatisticsGen too: ~10 s idle, ~30 s loaded, too heavy for the fast tier
def test_a_small_span_gets_statistics_gens_statistics_in_memory(tmp_path, monkeypatch):
    import tfx  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (before TFDV)
    import tensorflow_data_validation as tfdv
    from tfx_pipeline.components import event_statistics
    calls = []
    original = event_statistics.statistics_gen_executor.Executor.Do
    monkeypatch.setattr(event_statistics.statistics_gen_executor.Executor, "Do",
                        lambda self, *args: calls.append(args) or original(self, *args))
    in_memory, memory_stats = _run(tmp_path, "memory", rows_ok=600)
    assert not calls  # no Beam job
    monkeypatch.setattr(event_statistics, "IN_MEMORY_MAX_EVENTS", 599)
    beam, beam_stats = _run(tmp_path, "beam", rows_ok=600)  # above the limit: TFX's own executor
    assert len(calls) == 1
    assert in_memory.split_names == beam.split_names and in_memory.span == beam.span
    assert in_memory.get_json_value_custom_property("sample_rate_by_split") == \
        beam.get_json_value_custom_property("sample_rate_by_split")
    assert sorted(os.listdir(os.path.join(in_memory.uri, "Split-events"))) == ["FeatureStats.pb"]
    memory, beam_set = memory_stats.datasets[0], beam_stats.datasets[0]
    assert memory.num_examples == beam_set.num_examples == 600
    features = {str(f.path.step[0]): f for f in memory.features}
    expected = {str(f.path.step[0]): f for f in beam_set.features}
    assert set(features) == set(expected) == {"session_id", "item_id", "time_us"}
    assert features["item_id"].string_stats.unique == expected["item_id"].string_stats.unique
    assert features["time_us"].num_stats.mean == pytest.approx(expected["time_us"].num_stats.mean)
    assert tfdv.infer_schema(memory_stats) == tfdv.infer_schema(beam_stats)
