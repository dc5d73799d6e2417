"""Tests for gru4rec_tf.data.tfrecord_io: reading session tensors back as events, with tf.data."""
import gzip

import numpy as np
import pytest

from gru4rec_tf.data import tfrecord_io
from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.preprocessing.beam_transforms import vocabulary_file_text
from gru4rec_tf.preprocessing.example_codec import encode_session_example, write_tfrecord


def _write_split(directory, sessions, name="part-00000.tfrecord"):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / name, "wb") as fh:
        for sid, items, times in sessions:
            write_tfrecord(fh, encode_session_example(sid, items, list(range(len(items))), times))


def test_reads_events_in_file_order_with_library_dtypes(tmp_path):
    _write_split(tmp_path / "train", [("10", ["5", "6"], [1_000_000, 2_500_000])], "part-00000.tfrecord")
    _write_split(tmp_path / "train", [("9", ["6", "7", "5"], [3_000_000, 4_000_001, 5_000_000])],
                 "part-00001.tfrecord")
    events = tfrecord_io.read_session_tensors(tmp_path / "train")
    assert list(events.columns) == ["SessionId", "ItemId", "Time"]
    assert events["SessionId"].tolist() == [10, 10, 9, 9, 9] and events["SessionId"].dtype == np.int64
    assert events["ItemId"].tolist() == [5, 6, 6, 7, 5] and events["ItemId"].dtype == np.int64
    np.testing.assert_array_equal(events["Time"].to_numpy(), [1.0, 2.5, 3.0, 4.000001, 5.0])
    assert tfrecord_io.is_session_tensor_path(tmp_path / "train")
    assert not tfrecord_io.is_session_tensor_path(tmp_path)


def test_text_ids_stay_text_and_glob_patterns_work(tmp_path):
    _write_split(tmp_path / "s", [("u#0", ["a", "007"], [0, 1])])
    events = tfrecord_io.read_session_tensors(str(tmp_path / "s" / "part-*.tfrecord"))
    assert events["SessionId"].tolist() == ["u#0", "u#0"] and events["ItemId"].tolist() == ["a", "007"]


@pytest.mark.parametrize("ids", [
    ["5", "-3", "007", "12"],                 # decimal integers: the Arrow cast
    ["1_0", "5"],                             # Python's int() reads "1_0", pandas does not: text
    ["+5", " 6", "7"],                        # pandas reads these as integers too: the exact path decides
    ["99999999999999999999", "1"],            # past int64
    ["1e3", "2"], ["é", "3"],
])
def test_ids_are_decoded_as_pandas_reads_them(tmp_path, ids):
    """The fast path (Arrow, no Python object per ID) gives what the exact one (pandas.to_numeric) gives."""
    _write_split(tmp_path / "s", [(sid, [sid], [0]) for sid in ids])
    events = tfrecord_io.read_session_tensors(tmp_path / "s")
    expected = tfrecord_io._ids(np.array([i.encode() for i in ids], dtype=object))
    assert events["ItemId"].tolist() == expected.tolist() and events["ItemId"].dtype == expected.dtype
    assert events["SessionId"].tolist() == expected.tolist()


def test_empty_split_missing_path_and_corrupt_file(tmp_path):
    (tmp_path / "empty").mkdir()
    empty = tfrecord_io.read_session_tensors(tmp_path / "empty")
    assert len(empty) == 0 and list(empty.columns) == ["SessionId", "ItemId", "Time"]
    with pytest.raises(DataError, match="no such split directory"):
        tfrecord_io.read_session_tensors(tmp_path / "missing")
    _write_split(tmp_path / "bad", [("1", ["a", "b"], [0, 1])])
    path = tmp_path / "bad" / "part-00000.tfrecord"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="corrupt session tensor file"):
        tfrecord_io.read_session_tensors(tmp_path / "bad")


def test_gzip_files_are_read(tmp_path):
    _write_split(tmp_path / "plain", [("1", ["a", "b"], [0, 1])])
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "part-00000.tfrecord.gz").write_bytes(
        gzip.compress((tmp_path / "plain" / "part-00000.tfrecord").read_bytes()))
    assert tfrecord_io.read_session_tensors(tmp_path / "gz")["ItemId"].tolist() == ["a", "b"]


def test_dataset_and_vocabulary(tmp_path):
    _write_split(tmp_path / "test", [("1", ["a", "b"], [0, 7])])
    (tmp_path / "vocab.tsv").write_text(vocabulary_file_text([("11", 4), ("3", 2)]))
    (tmp_path / "vocab_train_tr.tsv").write_text(vocabulary_file_text([("x", 1)]))
    session = next(iter(tfrecord_io.session_dataset(tmp_path / "test")))
    assert session["session_id"].numpy() == b"1" and session["session_start_us"].numpy() == 0
    assert session["item_idx"].numpy().tolist() == [0, 1] and session["time_us"].numpy().tolist() == [0, 7]
    assert tfrecord_io.load_vocabulary(tmp_path, "test") == ItemVocabulary(np.array([11, 3]), np.array([4, 2]))
    assert tfrecord_io.load_vocabulary(tmp_path, "valid").item_ids.tolist() == ["x"]
    with pytest.raises(ValueError, match="split must be one of"):
        tfrecord_io.load_vocabulary(tmp_path, "dev")


def test_load_events_reads_session_tensors(tmp_path):
    """`gru4rec train --train OUTPUT/train` works: the library's loader dispatches to the TFRecord reader."""
    from gru4rec_tf.data.event_log import load_events  # pylint: disable=g-import-not-at-top
    _write_split(tmp_path / "train", [("10", ["5", "6"], [1_000_000, 2_500_000])])
    events = load_events(tmp_path / "train")
    assert events["ItemId"].tolist() == [5, 6] and events["Time"].tolist() == [1.0, 2.5]
    assert load_events(tmp_path / "train" / "part-00000.tfrecord")["SessionId"].tolist() == [10, 10]
