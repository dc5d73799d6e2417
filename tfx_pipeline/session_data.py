"""Reading the SessionTensors artifact back as the library's objects (vocabulary, SessionData).

The artifact layout is :mod:`tfx_pipeline.components.session_tensors`'s: ``<uri>/vocab.tsv``,
``<uri>/Split-<name>/part-*.tfrecord``. Session records are read with :mod:`gru4rec_tf.data.tfrecord_io` (the
library's ``tf.data`` reader, any TF filesystem); the vocabulary file is copied to a local temporary file first
when it is remote (``gs://`` ...), because ``ItemVocabulary.load`` reads local paths.

Example::

    vocab = load_vocabulary(tensors_uri)
    train = load_split(tensors_uri, "train", vocab)      # gru4rec_tf.data.session_data.SessionData
"""
import os
from collections.abc import Sequence

from gru4rec_tf.data import contracts
from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.data.session_data import SessionData
from tfx_pipeline import remote_paths

VOCAB_FILE = contracts.VOCAB_FILES["train"]  # the training split's vocabulary, used by both splits


def tensors_uri_from_file_patterns(patterns: Sequence[str]) -> str:
    """The artifact URI behind the Trainer's ``fn_args.train_files`` (``[<uri>/Split-train/*]``)."""
    if not patterns:
        raise ValueError("the Trainer passed no training files; is the session_tensors artifact connected?")
    split_dir = os.path.dirname(patterns[0].rstrip("/"))
    if not os.path.basename(split_dir).startswith("Split-"):
        raise ValueError(f"{patterns[0]}: expected a '<uri>/Split-<name>/*' pattern of an Examples artifact")
    return os.path.dirname(split_dir)


def split_dir(tensors_uri: str, split: str) -> str:
    return os.path.join(tensors_uri, f"Split-{split}")


def load_vocabulary(tensors_uri: str) -> ItemVocabulary:
    """The training split's item vocabulary of a SessionTensors artifact."""
    with remote_paths.local_file(os.path.join(tensors_uri, VOCAB_FILE)) as path:
        return ItemVocabulary.load(path)


def read_events(tensors_uri: str, split: str):
    """The split's events as a ``SessionId, ItemId, Time`` DataFrame (original IDs, Time in seconds)."""
    from gru4rec_tf.data import tfrecord_io  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
    return tfrecord_io.read_session_tensors(split_dir(tensors_uri, split))


def read_nonempty_events(tensors_uri: str, split: str):
    """:func:`read_events`, refusing an empty split with a DataError naming it."""
    events = read_events(tensors_uri, split)
    if len(events) == 0:
        raise DataError(f"{split_dir(tensors_uri, split)}: the {split} split has no events")
    return events


def load_split(tensors_uri: str, split: str, vocab: ItemVocabulary) -> SessionData:
    """The split as :class:`~gru4rec_tf.data.session_data.SessionData` over ``vocab`` (unknown items dropped, §7)."""
    return SessionData.from_events(read_nonempty_events(tensors_uri, split), vocab)
