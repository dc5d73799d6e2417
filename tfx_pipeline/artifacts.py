"""The pipeline's artifacts: its custom TFX artifact type and the layout of the files inside its artifacts.

The session tensors themselves are a standard ``Examples`` artifact (``Split-train/``, ``Split-test/`` of
TFRecord ``tf.train.Example`` session records), so the standard Trainer accepts them; the vocabulary is its own
type so that lineage shows which item catalogue a model was trained on. A ``Model`` artifact holds, besides the
serving SavedModel (``Format-Serving/``), the library's model directory (:func:`library_model_dir`), written by the
Trainer's ``run_fn`` and read by the SessionEvaluator.

Example::

    >>> ItemVocabulary.TYPE_NAME
    'tfx_pipeline.ItemVocabulary'
"""
import os

from tfx.types import artifact

from gru4rec_tf.data import contracts

VOCABULARY_FILE = contracts.VOCAB_FILES["train"]  # a copy of the training split's vocabulary file
LIBRARY_MODEL_DIR = "gru4rec_model"
TRAINING_FILE = "training.json"  # in the ModelRun artifact: the Trainer's history, parameters and data sizes


def library_model_dir(model_uri: str) -> str:
    """Where the library model (:func:`gru4rec_tf.model.model_dir.save_model`) lies inside a ``Model`` artifact."""
    return os.path.join(model_uri, LIBRARY_MODEL_DIR)


class ItemVocabulary(artifact.Artifact):
    """The item vocabulary of a training split: ``<uri>/vocab.tsv`` (original ID, index, support).

    ``gru4rec_tf.data.vocabulary.ItemVocabulary.load(os.path.join(uri, VOCABULARY_FILE))`` reads it. The number of items
    is
    the ``n_items`` custom property.
    """

    # An import path of this class (``tfx_pipeline`` exports it lazily). The Kubeflow V2 compiler writes TYPE_NAME
    # as the artifact's schema title and accepts only ``<namespace>.<Name>``; TFX's container entrypoint imports
    # a custom artifact class *by that title* (kubeflow_v2_entrypoint_utils._retrieve_class_path), so any other
    # name fails every task that reads or writes the vocabulary on Vertex.
    TYPE_NAME = "tfx_pipeline.ItemVocabulary"


DATA_PROFILE_DIR = "data_profile"  # a span's statistics, schema and profile (DataVerdict -> session tensors -> Model)


class DataVerdict(artifact.Artifact):
    """A span's data validation: ``<uri>/anomalies.json``, ``<uri>/data_profile/`` and the custom property ``valid``
    (0: the run stops before SessionTensors). Written by :mod:`tfx_pipeline.components.data_validator`."""

    TYPE_NAME = "tfx_pipeline.DataVerdict"  # the import path of this class (see ItemVocabulary)
