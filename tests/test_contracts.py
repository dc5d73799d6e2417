"""The data contracts: their values are what files already on disk use, and the module stays TensorFlow-free."""
import fnmatch
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gru4rec_tf.data import contracts

ROOT = Path(__file__).resolve().parent.parent


def test_values_are_those_of_the_files_already_written():
    # Changing any of these makes existing preprocessing outputs and model directories unreadable.
    assert contracts.FEATURE_DTYPES == {"session_id": "string", "session_start_us": "int64", "item_id": "string",
                                        "item_idx": "int64", "time_us": "int64"}
    assert contracts.FEATURES == ("item_id", "item_idx", "session_id", "session_start_us", "time_us")
    assert contracts.SESSION_FEATURES == ("session_id", "session_start_us")
    assert contracts.EVENT_FEATURES == ("item_id", "item_idx", "time_us")
    assert contracts.STATS_FILE == "stats.json"
    assert (contracts.REJECTED_DIR, contracts.REJECTED_FILE_PREFIX) == ("rejected", "rejected")
    assert contracts.VOCAB_FILES == {"train": "vocab.tsv", "train_tr": "vocab_train_tr.tsv"}
    assert contracts.PART_FILE_GLOB == "part-*.tfrecord*"
    assert contracts.MODEL_FORMAT == "gru4rec_tf.model/1"
    assert (contracts.MODEL_CONFIG_FILE, contracts.MODEL_VOCAB_FILE, contracts.MODEL_OPTIMIZER_FILE) == (
        "config.json", "vocab.tsv", "optimizer.npz")
    assert os.path.join(contracts.MODEL_WEIGHTS_DIR, contracts.MODEL_WEIGHTS_PREFIX) == os.path.join("weights", "ckpt")


def test_every_split_uses_the_vocabulary_of_its_training_part():
    assert {split: contracts.vocab_file(split) for split in ("train", "test", "train_tr", "valid")} == {
        "train": "vocab.tsv", "test": "vocab.tsv", "train_tr": "vocab_train_tr.tsv", "valid": "vocab_train_tr.tsv"}
    with pytest.raises(ValueError, match="split must be one of .*'valid'.*got 'validation'"):
        contracts.vocab_file("validation")


def test_part_files_are_named_in_shard_order_and_found_by_the_glob():
    names = [contracts.part_file_name(shard) for shard in (0, 9, 10, 12345)]
    assert names == ["part-00000.tfrecord", "part-00009.tfrecord", "part-00010.tfrecord", "part-12345.tfrecord"]
    assert sorted(names) == names  # name order is shard order, which the readers rely on
    for name in (*names, "part-00000.tfrecord.gz"):
        assert fnmatch.fnmatchcase(name, contracts.PART_FILE_GLOB) and contracts.is_tfrecord_name(name)
    for name in ("rejected-00000.jsonl", "part-0.parquet", contracts.STATS_FILE):
        assert not fnmatch.fnmatchcase(name, contracts.PART_FILE_GLOB) and not contracts.is_tfrecord_name(name)
    with pytest.raises(ValueError, match="shard must be >= 0"):
        contracts.part_file_name(-1)


def test_the_writer_and_the_reader_follow_the_declared_features():
    from gru4rec_tf.data import tfrecord_io  # imports TensorFlow
    from gru4rec_tf.preprocessing import example_codec
    import tensorflow as tf

    record = tf.train.Example.FromString(example_codec.encode_session_example("7", ["a", "b"], [0, 1], [10, 20]))
    written = record.features.feature
    assert sorted(written) == list(contracts.FEATURES)
    for name, dtype in contracts.FEATURE_DTYPES.items():
        assert written[name].WhichOneof("kind") == {"string": "bytes_list", "int64": "int64_list"}[dtype], name
        assert tfrecord_io.FEATURE_SPEC[name].dtype == tf.as_dtype(dtype), name
    assert [name for name, spec in tfrecord_io.FEATURE_SPEC.items() if isinstance(spec, tf.io.RaggedFeature)] == list(
        contracts.EVENT_FEATURES)


def test_imports_without_tensorflow_beam_or_tfx():
    code = ("import sys; import gru4rec_tf.data.contracts; "
            "bad = [m for m in ('tensorflow', 'tf_keras', 'keras', 'apache_beam', 'tfx') if m in sys.modules]; "
            "assert not bad, bad")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
