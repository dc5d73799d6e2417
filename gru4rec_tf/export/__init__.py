"""The TF Serving export: the serving contract (``signatures``, no TensorFlow) and the SavedModel writer.

``saved_model`` (the front: ``export_saved_model``), ``serving_module`` (the ``tf.Module`` with the signatures),
``topk`` (scoring and the exact top-k), ``warmup`` (TF Serving warm-up requests), ``export_dir`` (directory checks,
atomic writing, export info).
"""
