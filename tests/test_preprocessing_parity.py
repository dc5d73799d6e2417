"""The Beam preprocessing equals the independent pandas implementation, the library reads its output exactly like
the equivalent TSV, and two local runners write identical files.

Pipeline runs are slow to start (seconds each), so each log is processed once per module and shared.
"""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import preprocessing_testlib as lib
from gru4rec_tf.data import tfrecord_io
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.event_log import load_events
from gru4rec_tf.preprocessing import PreprocessOptions, build_and_run
from pandas_reference import preprocess_pandas, read_click_log_pandas


def _run(options, beam_args=lib.IN_MEMORY):
    stats = build_and_run(options, beam_args)
    reference = preprocess_pandas(read_click_log_pandas(options).events, options)
    return options, stats, reference


@pytest.fixture(scope="module")
def user_log(tmp_path_factory):
    """Users without session IDs (6 h gap), event types, ISO times, repeats, equal times, malformed rows."""
    root = tmp_path_factory.mktemp("user_log")
    path = root / "clicks.csv"
    written = lib.write_user_log(path)
    options = PreprocessOptions(
        input=str(path), output=str(root / "out"), user_key="UserId", item_key="ItemId", time_key="Timestamp",
        time_format="iso", session_gap_s=6 * 3600, event_type_key="EventType", event_type_filter=("view",),
        dedupe_consecutive=True, min_item_support=3, iterate_filters=True, max_filter_rounds=4, test_days=1,
        valid_days=1, split_on="end", max_rejected_ratio=0.01, rows_per_shard=60)
    return (*_run(options), written)


@pytest.fixture(scope="module")
def diginetica(shared_data, tmp_path_factory):
    """The raw Diginetica sample with the 2023 recipe of spec §7 (dedupe, iterate, support 5, 7 test days)."""
    root = tmp_path_factory.mktemp("diginetica")
    path = root / "item_views.csv"
    lib.write_diginetica_with_time(shared_data / "diginetica_sample" / "train-item-views.csv", path)
    options = PreprocessOptions(
        input=str(path), output=str(root / "out"), delimiter=";", session_key="session_id", item_key="item_id",
        dedupe_consecutive=True, min_item_support=5, iterate_filters=True, max_filter_rounds=10, test_days=7)
    return _run(options)


def _check_parity(options, stats, reference):
    for name in options.split_names:
        got = tfrecord_io.read_session_tensors(f"{options.output}/{name}")
        lib.assert_same_events(got, reference[name], name)
        counts = {k: stats[name][k] for k in ("events", "sessions", "items")}
        assert counts == lib.split_counts(reference[name]), name
    cleaned = stats["cleaning"]["sessions_out"]
    assert {k: cleaned[k] for k in ("events", "sessions", "items")} == lib.split_counts(reference["_cleaned"])
    assert stats["cleaning"]["converged"]


def test_user_log_splits_equal_pandas(user_log):
    options, stats, reference, _ = user_log
    _check_parity(options, stats, reference)
    assert all(stats[name]["sessions"] > 10 for name in options.split_names)  # the data exercises every split


@pytest.mark.slow
def test_diginetica_splits_equal_pandas(diginetica):
    options, stats, reference = diginetica
    _check_parity(options, stats, reference)
    assert stats["input"]["rows"] == 12391 and stats["input"]["rows_rejected"] == 0
    assert stats["cleaning"]["rounds_removing_items"] >= 2  # the iteration mattered
    assert stats["train"]["sessions"] > 100 and stats["test"]["sessions"] > 5


def test_vocabulary_is_first_appearance_in_train(user_log):
    options, stats, reference, _ = user_log
    for split, train_name in (("train", "train"), ("valid", "train_tr")):
        vocab = tfrecord_io.load_vocabulary(options.output, split)
        train = reference[train_name].assign(ItemId=reference[train_name]["ItemId"].astype(np.int64))
        assert vocab == ItemVocabulary.from_events(train), split
        assert stats["vocabulary"][stats[split]["vocabulary"]] == len(vocab)


def test_session_data_from_tfrecords_equals_equivalent_tsv(user_log, tmp_path):
    """SessionData built from the TFRecords == built from the equivalent TSV (the train split written session by
    session in session-start order, events in time order) with the library's own loader and vocabulary."""
    options, _, reference, _ = user_log
    for train_name, eval_name in (("train", "test"), ("train_tr", "valid")):
        paths = {}
        for name in (train_name, eval_name):
            paths[name] = tmp_path / f"{name}.tsv"
            reference[name][["SessionId", "ItemId", "Time"]].to_csv(paths[name], sep="\t", index=False)
        tsv_vocab = ItemVocabulary.from_events(load_events(paths[train_name]))
        tf_vocab = tfrecord_io.load_vocabulary(options.output, train_name)
        assert tf_vocab == tsv_vocab
        for name in (train_name, eval_name):
            from_tf = SessionData.from_events(tfrecord_io.read_session_tensors(f"{options.output}/{name}"), tf_vocab)
            from_tsv = SessionData.from_events(load_events(paths[name]), tsv_vocab)
            np.testing.assert_array_equal(from_tf.item_idx, from_tsv.item_idx, err_msg=name)
            np.testing.assert_array_equal(from_tf.session_offsets, from_tsv.session_offsets, err_msg=name)
            np.testing.assert_array_equal(from_tf.session_ids, from_tsv.session_ids, err_msg=name)
            np.testing.assert_allclose(from_tf.times, from_tsv.times, rtol=0, atol=1e-6, err_msg=name)
            assert from_tf.n_sessions > 0 and from_tf.n_dropped_unknown == 0 == from_tsv.n_dropped_unknown


def test_item_idx_feature_matches_vocabulary(user_log):
    options, _, _, _ = user_log
    for split in options.split_names:
        vocab = tfrecord_io.load_vocabulary(options.output, split)
        for session in tfrecord_io.session_dataset(f"{options.output}/{split}").take(20):
            ids = [int(i) for i in session["item_id"].numpy()]
            np.testing.assert_array_equal(session["item_idx"].numpy(), vocab.lookup(ids))
            assert session["session_start_us"].numpy() == session["time_us"].numpy()[0]


def test_files_are_in_session_start_order(user_log):
    options, stats, _, _ = user_log
    assert len(stats["train"]["files"]) > 1  # rows_per_shard=60 gives several files
    starts = [int(s["session_start_us"]) for s in tfrecord_io.session_dataset(f"{options.output}/train")]
    assert starts == sorted(starts)
    assert sum(f["sessions"] for f in stats["train"]["files"]) == stats["train"]["sessions"]


def test_rejected_rows_are_counted_and_written(user_log):
    options, stats, _, written = user_log
    rejected = lib.read_rejected(options.output)
    assert sorted((r["reason"], r["line"]) for r in rejected) == sorted(lib.MALFORMED)
    assert all(r["source"].endswith("clicks.csv") for r in rejected)
    inp = stats["input"]
    assert inp["rows"] == len(written) + len(lib.MALFORMED)
    assert inp["rows_rejected"] == len(lib.MALFORMED)
    assert inp["rejected_by_reason"] == {"bad_time": 2, "column_count": 2, "empty_id": 2}
    assert inp["rows_filtered_event_type"] == int((written["EventType"] == "cart").sum())


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["multi_process", "bundle_based"])
def test_other_local_runners_write_identical_files(user_log, tmp_path, runner):
    """Same bytes from the FnApiRunner in memory (DirectRunner's batch engine), the FnApiRunner with two worker
    processes and the BundleBasedDirectRunner (the older, separate local runner implementation)."""
    options, _, _, _ = user_log
    args = lib.MULTI_PROCESS if runner == "multi_process" else ["--runner=BundleBasedDirectRunner"]
    build_and_run(dataclasses.replace(options, output=str(tmp_path / "out")), args)
    first, second = lib.directory_contents(Path(options.output)), lib.directory_contents(tmp_path / "out")
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []
