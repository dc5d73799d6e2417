"""The pipeline as a daily loop over daily partitions (TFX spans), under LocalDagRunner.

Day 1 is ingested alone; when day 2's partition appears, the next run ingests the latest span (or a rolling window
of spans), warm-starts the Trainer from day 1's blessed model and says so in its summary.
"""
import os

import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from gru4rec_tf.data import synthetic
from tfx_pipeline import blessing, cli, options, pipeline, runners, summary

PARAMS = "loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=32,learning_rate=0.1,n_sample=64,n_epochs=1"


def write_day(root, day: str, seed: int, n_items: int = 200, n_sessions: int = 800) -> int:
    directory = os.path.join(root, day)
    os.makedirs(directory, exist_ok=True)
    events = synthetic.generate_sessions(n_items=n_items, n_sessions=n_sessions, seed=seed, span_days=3.0,
                                         start_time=1_600_000_000.0 + seed * 86_400.0,
                                         session_id_offset=seed * 100_000)  # session IDs unique across days
    events.to_csv(os.path.join(directory, "clicks.tsv"), sep="\t", index=False, float_format="%.3f")
    return len(events)


def run(work, data_root, window=1):
    layout = runners.LocalLayout.create(str(work), "daily")
    base, pattern = cli.span_pattern(str(data_root))
    built = pipeline.create_pipeline(
        "daily", layout.pipeline_root, base, layout.serving_root, data_pattern=pattern,
        sessions=options.SessionOptions(min_item_support=1),
        training=options.TrainingOptions(params=PARAMS, seed=1, max_k=10),
        blessing=blessing.BlessingOptions(cutoffs=(20,), thresholds={"recall@20": 0.05}),
        metadata_connection_config=runners.sqlite_config(layout.metadata_path), window_spans=window)
    runners.run_local(built)
    return summary.summarize_latest_run(layout.metadata_path, "daily"), layout


def test_span_pattern_of_data_paths(tmp_path):
    assert cli.span_pattern("gs://b/clicks/span-{SPAN}/*") == ("gs://b/clicks", "span-{SPAN}/*")
    assert cli.span_pattern("/data/{YYYY}-{MM}-{DD}/part-*.csv") == ("/data", "{YYYY}-{MM}-{DD}/part-*.csv")
    (tmp_path / "2026-11-01").mkdir()
    (tmp_path / "2026-11-02").mkdir()
    assert cli.span_pattern(str(tmp_path)) == (str(tmp_path), "{YYYY}-{MM}-{DD}/*")
    (tmp_path / "notes").mkdir()
    assert cli.span_pattern(str(tmp_path)) is None
    with pytest.raises(ValueError, match="needs a span pattern"):
        pipeline.create_pipeline("p", str(tmp_path), str(tmp_path), str(tmp_path), data_pattern="*.tsv",
                                 window_spans=2)


@pytest.mark.slow
def test_day_by_day_ingests_the_latest_span_and_warm_starts(tmp_path):
    data = tmp_path / "clicks"
    day1_rows = write_day(data, "2026-11-01", seed=1)
    first, layout = run(tmp_path / "work", data)
    assert first.succeeded and first.blessing["blessed"]
    examples = first.output("ClickLogExampleGen", "examples")
    assert examples.custom_properties["rows_ok"].int_value == day1_rows
    assert "trained: from scratch" in first.format()

    day2_rows = write_day(data, "2026-11-02", seed=2, n_items=240)
    second, _ = run(tmp_path / "work", data)
    examples = second.output("ClickLogExampleGen", "examples")
    assert examples.custom_properties["rows_ok"].int_value == day2_rows  # the latest span only
    assert examples.custom_properties["span"].int_value == first.output(
        "ClickLogExampleGen", "examples").custom_properties["span"].int_value + 1
    warm = second.training["warm_start"]
    assert warm["source"].startswith(first.output("Trainer", "model").uri) and warm["new_items"] > 0
    assert "trained: warm start from" in second.format()
    pushed = sorted(os.listdir(pipeline.serving_base_directory(layout.serving_root)))
    assert len(pushed) == (2 if second.blessing["blessed"] else 1)

    window, _ = run(tmp_path / "work", data, window=2)
    examples = window.output("ClickLogExampleGen", "examples")
    assert examples.custom_properties["rows_ok"].int_value == day1_rows + day2_rows  # a rolling window of 2 days
