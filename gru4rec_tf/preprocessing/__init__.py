"""Preprocessing: raw click logs -> cleaned, time-split session tensors (TFRecord) with an Apache Beam pipeline.

Importing this package is light: it does not import Beam or TensorFlow. :func:`build_and_run` imports the Beam
pipeline when called; the reusable transforms live in :mod:`.beam_transforms` (an independent pandas
implementation of the same rules, which the tests check them against, is ``tests/pandas_reference.py``).

Example (a Beam run over a click log, an illustration)::

    >>> from gru4rec_tf.preprocessing import PreprocessOptions, build_and_run
    >>> stats = build_and_run(PreprocessOptions(input="clicks.csv", output="out", test_days=7,
    ...                                         dedupe_consecutive=True, iterate_filters=True))  # doctest: +SKIP
    >>> stats["train"]["events"], stats["test"]["sessions"]  # doctest: +SKIP
"""
from gru4rec_tf.preprocessing.options import PreprocessOptions

__all__ = ["PreprocessOptions", "build_and_run"]


def build_and_run(options: PreprocessOptions, beam_pipeline_args=()) -> dict:
    """Runs the Beam preprocessing pipeline (see :func:`gru4rec_tf.preprocessing.pipeline.build_and_run`)."""
    from gru4rec_tf.preprocessing import pipeline  # pylint: disable=g-import-not-at-top
    return pipeline.build_and_run(options, beam_pipeline_args)
