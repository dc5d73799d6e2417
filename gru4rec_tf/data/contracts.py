"""The data contracts: session-tensor features, per-split vocabulary files, TFRecord part files, model directories.

What ``gru4rec preprocess`` (and the pipeline's SessionTensors component) write and the readers expect, in one place:
:mod:`gru4rec_tf.preprocessing.example_codec` writes the session records, :mod:`gru4rec_tf.data.tfrecord_io` and
:mod:`gru4rec_tf.data.event_log` read them, :mod:`gru4rec_tf.model.model_dir` lays out a saved model. Files that
users already wrote are read by these names, so the values never change. This module imports neither TensorFlow,
Beam nor TFX (as :mod:`gru4rec_tf.export.signatures` is for serving).

Preprocessing output directory::

    stats.json                     STATS_FILE: statistics; written last, its presence marks a complete output
    vocab.tsv                      vocabulary of train (used by train and test)
    vocab_train_tr.tsv             vocabulary of train_tr (used by train_tr and valid)
    <split>/part-SSSSS.tfrecord    part_file_name(shard): one tf.train.Example per session, by session start
    rejected/rejected-SSSSS.jsonl  malformed input rows

One session record (``tf.train.Example``; lists in event order):

========================  ============  =====================================================
``session_id``            bytes [1]     original session ID (``<user>#<k>`` when sessionised)
``session_start_us``      int64 [1]     first event time
``item_id``               bytes [n]     original item IDs
``item_idx``              int64 [n]     item indices in the split's vocabulary
``time_us``               int64 [n]     event times, microseconds since the Unix epoch
========================  ============  =====================================================

Model directory::

    config.json   MODEL_CONFIG_FILE: {"format": MODEL_FORMAT, "n_items": ..., "seed": ..., "params": {...}}
    vocab.tsv     MODEL_VOCAB_FILE: original item ID, index, support
    weights/ckpt  MODEL_WEIGHTS_DIR / MODEL_WEIGHTS_PREFIX: a TensorFlow checkpoint of the model variables
    optimizer.npz MODEL_OPTIMIZER_FILE (optional): Adagrad accumulators and momentum velocities

Example:
  >>> from gru4rec_tf.data import contracts
  >>> contracts.vocab_file("valid"), contracts.part_file_name(3)
  ('vocab_train_tr.tsv', 'part-00003.tfrecord')
  >>> [name for name in contracts.FEATURE_DTYPES if name in contracts.EVENT_FEATURES]
  ['item_id', 'item_idx', 'time_us']
"""
# ---------------------------------------------------------------------------------------- session-tensor features
SESSION_ID = "session_id"
SESSION_START_US = "session_start_us"
ITEM_ID = "item_id"
ITEM_IDX = "item_idx"
TIME_US = "time_us"

# The dtype of each feature by TensorFlow's dtype name ("string": a bytes_list, "int64": an int64_list).
FEATURE_DTYPES = {SESSION_ID: "string", SESSION_START_US: "int64", ITEM_ID: "string", ITEM_IDX: "int64",
                  TIME_US: "int64"}
SESSION_FEATURES = (SESSION_ID, SESSION_START_US)  # one value per session
EVENT_FEATURES = (ITEM_ID, ITEM_IDX, TIME_US)  # one value per event, in event order
FEATURES = tuple(sorted(FEATURE_DTYPES))

# ------------------------------------------------------------------------------- preprocessing output directory
STATS_FILE = "stats.json"
REJECTED_DIR = "rejected"  # holds rejected-SSSSS.jsonl
REJECTED_FILE_PREFIX = "rejected"

# The vocabulary files, by the split each vocabulary is built from, and which vocabulary every split uses.
VOCAB_FILES = {"train": "vocab.tsv", "train_tr": "vocab_train_tr.tsv"}
VOCABULARY_OF_SPLIT = {"train": "train", "test": "train", "train_tr": "train_tr", "valid": "train_tr"}

# TFRecord shards of a split directory: part-00000.tfrecord, ...; the glob also matches compressed ones (.gz).
TFRECORD_SUFFIX = ".tfrecord"
PART_FILE_PREFIX = "part-"
PART_FILE_GLOB = f"{PART_FILE_PREFIX}*{TFRECORD_SUFFIX}*"

# ---------------------------------------------------------------------------------------------- model directory
MODEL_FORMAT = "gru4rec_tf.model/1"  # config.json's "format"
MODEL_CONFIG_FILE = "config.json"
MODEL_VOCAB_FILE = "vocab.tsv"
MODEL_WEIGHTS_DIR = "weights"
MODEL_WEIGHTS_PREFIX = "ckpt"  # the checkpoint prefix inside MODEL_WEIGHTS_DIR
MODEL_OPTIMIZER_FILE = "optimizer.npz"


def vocab_file(split: str) -> str:
    """The name of the vocabulary file that ``split`` (train, test, train_tr or valid) uses."""
    if split not in VOCABULARY_OF_SPLIT:
        raise ValueError(f"split must be one of {sorted(VOCABULARY_OF_SPLIT)}, got {split!r}")
    return VOCAB_FILES[VOCABULARY_OF_SPLIT[split]]


def part_file_name(shard: int) -> str:
    """The name of TFRecord shard number ``shard`` of a split directory (``part-00003.tfrecord``)."""
    if shard < 0:
        raise ValueError(f"shard must be >= 0, got {shard}")
    return f"{PART_FILE_PREFIX}{shard:05d}{TFRECORD_SUFFIX}"


def is_tfrecord_name(name: str) -> bool:
    """True when the file name ``name`` looks like a TFRecord file (``.tfrecord`` anywhere in it, e.g. ``.gz``)."""
    return TFRECORD_SUFFIX in name
