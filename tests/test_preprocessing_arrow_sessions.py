"""The batched session builder (:mod:`gru4rec_tf.preprocessing.arrow_sessions`): its array rules equal the per-session
rules of :mod:`~gru4rec_tf.preprocessing.session_rules`, its encoder writes the bytes of ``encode_session_example``,
its output does not depend on the number of partitions or batches, and the SessionTensors component (events read
as Arrow batches from ingested TFRecords) writes the same files as ``gru4rec preprocess`` on the same log.
"""
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import preprocessing_testlib as lib
from gru4rec_tf.data.synthetic import generate_sessions
from gru4rec_tf.preprocessing import PreprocessOptions, build_and_run
from gru4rec_tf.preprocessing import arrow_sessions as arrow
from gru4rec_tf.preprocessing import example_codec
from gru4rec_tf.preprocessing import session_rules as sess


def _random_events(rng, n=3000, keys=200, items=40):
    keys_ = [f"k{i}" if i % 7 else str(i * 13) for i in rng.integers(0, keys, n)]
    items_ = [("ÿ" if i == 3 else "") + str(i) for i in rng.integers(0, items, n)]
    times = rng.integers(0, 50, n) * 1000  # many equal times: ties are ordered by item ID
    return keys_, items_, times


@pytest.mark.parametrize("gap", [None, 4000])
def test_blocks_equal_the_per_session_rules(gap):
    rng = np.random.default_rng(1)
    keys, items, times = _random_events(rng)
    block = arrow.SessionBlock.from_events(pa.array(keys), pa.array(items), np.array(times), gap)
    got = {sid: (tuple(block.times[a:b].tolist()), tuple(block.items().to_pylist()[a:b]))
           for sid, a, b in zip(block.sid.to_pylist(), block.offsets[:-1], block.offsets[1:], strict=True)}
    by_key = {}
    for k, i, t in zip(keys, items, times.tolist(), strict=True):
        by_key.setdefault(k, []).append((i, t))
    want = {}
    for k, evs in by_key.items():
        sessions = [sess.make_session(k, evs)] if gap is None else sess.split_by_gap(k, evs, gap)
        want.update({s[0]: (s[1], s[2]) for s in sessions})
    assert got == want
    assert len(got) > (len(by_key) if gap else 0)


def test_session_order_is_start_then_library_id_order():
    rng = np.random.default_rng(2)
    sids = [str(x) for x in rng.integers(-30, 300, 500)] + ["b", "a", "07", "7", "-0", "0", "x" * 30, "9" * 25]
    sids = list(dict.fromkeys(sids))
    starts = rng.integers(0, 5, len(sids))
    order = arrow.session_order(starts, pa.array(sids))
    want = sorted(range(len(sids)), key=lambda i: (starts[i], sess.id_sort_key(sids[i])))
    assert order.tolist() == want


@pytest.mark.parametrize("mixed_sizes", [True, False])
@pytest.mark.parametrize("chunk", [None, 7])
def test_session_tfrecords_equal_encode_session_example(mixed_sizes, chunk, monkeypatch):
    if chunk:  # 400 sessions in chunks of 7, encoded in threads: the same bytes
        monkeypatch.setattr(example_codec, "_CHUNK_SESSIONS", chunk)
    rng = np.random.default_rng(3)
    vocab = pa.array(["a", "ÿ", "日本", "x" * 300, "0"] + [str(i) for i in range(200)])
    lengths = rng.integers(1, 12, 400)
    lengths[7] = 300  # long sessions need multi-byte lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    if mixed_sizes:
        idx = rng.integers(0, len(vocab), offsets[-1])
        times = rng.integers(0, 2**52, offsets[-1])
        times[:20] = rng.integers(-(2**62), 2**62, 20)  # negative values are 10-byte varints
    else:  # every index one byte, every time 8 bytes (the varint writer skips its per-byte size checks)
        idx = rng.integers(0, 100, offsets[-1])
        times = np.sort(rng.integers(2**49, 2**56, offsets[-1]))
    sids = [("s" * (i % 140)) + str(i) for i in range(len(lengths))]
    want = io.BytesIO()
    names = vocab.to_pylist()
    for s, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        record = example_codec.encode_session_example(sids[s], [names[i] for i in idx[a:b]], idx[a:b].tolist(),
                                                      times[a:b].tolist())
        example_codec.write_tfrecord(want, record)
    assert example_codec.session_tfrecords(pa.array(sids), offsets, idx, times, vocab) == want.getvalue()
    with pytest.raises(ValueError, match=">= 1 event"):
        example_codec.session_tfrecords(pa.array(["s"]), np.array([0, 0]), idx[:0], times[:0], vocab)


def test_shards_and_hash_partitions():
    summary = {"tmin": 100, "start_max": 199, "sessions": 10}
    starts = np.arange(100, 200)
    want = [(int(s) - 100) * 4 // 100 for s in starts]
    assert arrow.shard_of(starts, summary, rows_per_shard=3).tolist() == want
    keys = pa.array([f"user{i}" for i in range(2000)])
    h = arrow._string_hash(keys)  # pylint: disable=protected-access
    assert (h == arrow._string_hash(keys.slice(0))).all() and len(np.unique(h)) == 2000  # pylint: disable=protected-access
    assert (h[5:] == arrow._string_hash(keys.slice(5))).all()  # pylint: disable=protected-access
    assert np.bincount((h % np.uint64(8)).astype(int), minlength=8).min() > 150  # spread over the partitions


def test_bad_event_batches_name_the_column():
    fn = arrow._HashPartition(4)  # pylint: disable=protected-access
    with pytest.raises(ValueError, match="no column 'time_us'"):
        list(fn.process(pa.record_batch({"key": ["a"], "item_id": ["b"]})))
    with pytest.raises(ValueError, match="column 'item_id': 1 missing value"):
        list(fn.process(pa.record_batch({"key": ["a"], "item_id": pa.array([None], pa.string()), "time_us": [1]})))
    with pytest.raises(ValueError, match="'time_us' must hold integer microseconds"):
        list(fn.process(pa.record_batch({"key": ["a"], "item_id": ["b"], "time_us": [1.5]})))


# ------------------------------------------------------------------------------------------------ pipelines
def _user_log(path: Path, n_sessions=600, seed=5) -> pd.DataFrame:
    """Users (sessions cut at 3 h gaps), unix-ms times with ties and consecutive repeats."""
    ev = generate_sessions(n_items=150, n_sessions=n_sessions, mean_length=5.0, seed=seed, span_days=5.0)
    ms = np.round(ev["Time"].to_numpy() * 1000).astype(np.int64)
    rng = np.random.default_rng(seed)
    tie = rng.random(len(ms)) < 0.05
    ms[1:][tie[1:]] = ms[:-1][tie[1:]]
    df = pd.DataFrame({"UserId": "u" + (ev["SessionId"] % (n_sessions // 4)).astype(str),
                       "ItemId": ev["ItemId"].astype(str), "Time": ms})
    df = pd.concat([df, df.sample(frac=0.05, random_state=seed)]).sort_index(kind="stable").reset_index(drop=True)
    df.to_csv(path, index=False)
    return df


_OPTIONS = dict(user_key="UserId", time_format="unix_ms", session_gap_s=3 * 3600, dedupe_consecutive=True,
                min_item_support=4, iterate_filters=True, max_filter_rounds=5, test_days=1, split_on="end",
                rows_per_shard=40)


@pytest.mark.slow
def test_output_does_not_depend_on_partitions_or_batches(tmp_path):
    import apache_beam as beam  # pylint: disable=g-import-not-at-top
    from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
    log = _user_log(tmp_path / "clicks.csv")
    options = PreprocessOptions(input=str(tmp_path / "clicks.csv"), output="-", valid_days=1, **_OPTIONS)
    table = pa.table({"key": log["UserId"], "item_id": log["ItemId"], "time_us": log["Time"] * 1000})
    outputs = []
    for partitions, rows in ((1, len(log)), (7, 333)):
        out = tmp_path / f"p{partitions}"
        with beam.Pipeline(options=PipelineOptions(lib.IN_MEMORY)) as p:
            batches = p | beam.Create(table.to_batches(max_chunksize=rows))
            arrow.build_from_event_batches(batches, options, str(out), partitions=partitions)
        outputs.append(lib.directory_contents(out))
    reports = [json.loads(o.pop("_report.json")) for o in outputs]
    assert outputs[0] == outputs[1] and len(outputs[0]) > 6
    assert reports[0] == reports[1]


@pytest.mark.slow
def test_session_tensors_component_equals_preprocess(tmp_path):
    """SessionTensors on ingested events (gzipped tf.Example TFRecords, read as Arrow batches) writes the same
    session tensors, vocabulary and split statistics as ``gru4rec preprocess`` on the raw log."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfx.dsl.components.base import base_beam_executor  # pylint: disable=g-import-not-at-top
    from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import artifacts  # pylint: disable=g-import-not-at-top
    from tfx_pipeline.components import click_log_gen, session_tensors  # pylint: disable=g-import-not-at-top
    from tfx_pipeline.options import SessionOptions  # pylint: disable=g-import-not-at-top

    log = _user_log(tmp_path / "clicks.csv")
    reference = build_and_run(PreprocessOptions(input=str(tmp_path / "clicks.csv"), output=str(tmp_path / "ref"),
                                                **_OPTIONS), lib.IN_MEMORY)

    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.set_string_custom_property("event_key", "user")
    examples.split_names = '["events"]'
    os.makedirs(os.path.join(examples.uri, "Split-events"))
    for part in range(2):  # two files, as ExampleGen writes
        rows = log.iloc[part::2]
        with tf.io.TFRecordWriter(os.path.join(examples.uri, "Split-events", f"data-{part}.gz"), "GZIP") as writer:
            for user, item, ms in rows.itertuples(index=False):
                writer.write(example_codec.encode_example({
                    "user_id": ("bytes", [user.encode()]), "item_id": ("bytes", [item.encode()]),
                    "time_us": ("int64", [int(ms) * 1000])}))
    with open(os.path.join(examples.uri, click_log_gen.REPORT_FILE), "w", encoding="utf-8") as fh:
        json.dump([["counter", "rows_ok", len(log)]], fh)
    tensors, vocabulary = standard_artifacts.Examples(), artifacts.ItemVocabulary()
    tensors.uri, vocabulary.uri = str(tmp_path / "tensors"), str(tmp_path / "vocabulary")
    os.makedirs(vocabulary.uri)
    session_options = {k: v for k, v in _OPTIONS.items() if k in SessionOptions.__dataclass_fields__}
    executor = session_tensors.Executor(base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=lib.IN_MEMORY, tmp_dir=str(tmp_path / "tmp"), unique_id="1"))
    executor.Do({"examples": [examples]}, {"session_tensors": [tensors], "vocabulary": [vocabulary]},
                {"session_options": SessionOptions(**session_options).to_json()})

    got = lib.directory_contents(Path(tensors.uri))
    want = lib.directory_contents(tmp_path / "ref")
    for split in ("train", "test"):
        names = sorted(k.split("/", 1)[1] for k in want if k.startswith(f"{split}/"))
        assert names and sorted(k.split("/", 1)[1] for k in got if k.startswith(f"Split-{split}/")) == names
        assert all(got[f"Split-{split}/{n}"] == want[f"{split}/{n}"] for n in names), split
    assert got["vocab.tsv"] == want["vocab.tsv"]
    stats = json.loads(got["stats.json"])
    for section in ("train", "test", "cleaning", "vocabulary"):
        assert stats[section] == reference[section], section
    assert stats["input"]["rows_ok"] == reference["input"]["rows_ok"] == len(log)


def test_partitions_grow_with_the_log():
    assert arrow.partitions_for(10) == arrow.MIN_PARTITIONS == arrow.partitions_for(1_000_000) == 2
    assert arrow.partitions_for(None) == arrow.UNKNOWN_SIZE_PARTITIONS == 8  # unknown: room to spread
    assert arrow.partitions_for(50_000_000) == 50
