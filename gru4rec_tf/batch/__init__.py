"""Batch recommendations: the top-k next items of many sessions at once, with Beam RunInference (issue #25).

``gru4rec recommend`` reads a click log with the preprocessing's reading and session rules, runs an exported
SavedModel's ``serving_default`` signature on batches of sessions and writes one record per session
(``session_id``, ``item_ids``, ``scores``, ``model_version``) as JSON lines, Parquet or TFRecord. Modules:
:mod:`.options` (``RecommendOptions``, the one definition of the command's options), :mod:`.model_handler` (the
RunInference model handler), :mod:`.writers` (the output formats) and :mod:`.pipeline` (the Beam job and its
all-or-nothing output directory). Importing this package is light: no Beam, no TensorFlow.

Example (an illustration: it needs an exported model and a click log)::

    from gru4rec_tf.batch.options import RecommendOptions
    from gru4rec_tf.batch import pipeline
    summary = pipeline.build_and_run(RecommendOptions(model="models/gru4rec/1", sessions="clicks.csv",
                                                      output="recs/", k=20, exclude_seen=True))
    summary["sessions"], summary["unknown_items"], summary["files"]
"""
