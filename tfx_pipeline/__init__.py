"""gru4rec-tf's TFX pipeline: raw click log -> session tensors -> GRU4Rec training -> evaluation and blessing -> push.

Built on the :mod:`gru4rec_tf` library (never the reverse). Modules:

* :mod:`tfx_pipeline.pipeline` -- ``create_pipeline(...)``, the TFX DAG (see the TFX penguin example);
* :mod:`tfx_pipeline.components` -- the custom components (ingestion executor, SessionTensors, SessionEvaluator);
* :mod:`tfx_pipeline.trainer_module` -- the standard Trainer's ``run_fn``;
* :mod:`tfx_pipeline.runners` -- LocalDagRunner (sqlite MLMD) and the Kubeflow V2 / Vertex compile;
* :mod:`tfx_pipeline.v2_local` -- runs a compiled Kubeflow V2 spec locally through TFX's container entrypoint, to
  try a spec before submitting it (``python -m tfx_pipeline.v2_local --spec SPEC --local_root DIR``);
* :mod:`tfx_pipeline.cli` -- ``gru4rec pipeline run|compile``.

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` (through :mod:`gru4rec_tf`) before TensorFlow is imported.
"""
import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)


def __getattr__(name):
    """``tfx_pipeline.ItemVocabulary``, ``tfx_pipeline.DataVerdict``: the custom artifact types under their schema
    titles (imported lazily, so that
    ``import tfx_pipeline`` stays free of TFX); see :mod:`tfx_pipeline.artifacts`."""
    if name in ("ItemVocabulary", "DataVerdict"):
        from tfx_pipeline import artifacts  # pylint: disable=g-import-not-at-top
        return getattr(artifacts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
