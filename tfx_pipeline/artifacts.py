"""Custom TFX artifact types of the pipeline.

The session tensors themselves are a standard ``Examples`` artifact (``Split-train/``, ``Split-test/`` of
TFRecord ``tf.train.Example`` session records), so the standard Trainer accepts them; the vocabulary is its own
type so that lineage shows which item catalogue a model was trained on.

Example::

    >>> ItemVocabulary.TYPE_NAME
    'tfx_pipeline.ItemVocabulary'
"""
from tfx.types import artifact

VOCABULARY_FILE = "vocab.tsv"


class ItemVocabulary(artifact.Artifact):
    """The item vocabulary of a training split: ``<uri>/vocab.tsv`` (original ID, index, support).

    ``gru4rec_tf.data.ItemVocabulary.load(os.path.join(uri, VOCABULARY_FILE))`` reads it. The number of items is
    the ``n_items`` custom property.
    """

    # An import path of this class (``tfx_pipeline`` exports it lazily). The Kubeflow V2 compiler writes TYPE_NAME
    # as the artifact's schema title and accepts only ``<namespace>.<Name>``; TFX's container entrypoint imports
    # a custom artifact class *by that title* (kubeflow_v2_entrypoint_utils._retrieve_class_path), so any other
    # name fails every task that reads or writes the vocabulary on Vertex.
    TYPE_NAME = "tfx_pipeline.ItemVocabulary"
