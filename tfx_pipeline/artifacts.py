"""Custom TFX artifact types of the pipeline.

The session tensors themselves are a standard ``Examples`` artifact (``Split-train/``, ``Split-test/`` of
TFRecord ``tf.train.Example`` session records), so the standard Trainer accepts them; the vocabulary is its own
type so that lineage shows which item catalogue a model was trained on.

Example::

    >>> ItemVocabulary.TYPE_NAME
    'gru4rec.ItemVocabulary'
"""
from tfx.types import artifact

VOCABULARY_FILE = "vocab.tsv"


class ItemVocabulary(artifact.Artifact):
    """The item vocabulary of a training split: ``<uri>/vocab.tsv`` (original ID, index, support).

    ``gru4rec_tf.data.ItemVocabulary.load(os.path.join(uri, VOCABULARY_FILE))`` reads it. The number of items is
    the ``n_items`` custom property.
    """

    # "<namespace>.<Name>": the Kubeflow V2 compiler requires this form for custom artifact types.
    TYPE_NAME = "gru4rec.ItemVocabulary"
