"""TF Serving warm-up requests: one small, valid request per signature, in ``assets.extra``.

TF Serving replays ``assets.extra/tf_serving_warmup_requests`` (``PredictionLog`` TFRecords) when it loads a
version, so the first real request does not pay for graph initialisation. :func:`warmup_requests` builds the
requests from the first items of the vocabulary; :func:`write_warmup_file` writes them. ``tensorflow_serving`` is
imported only inside :func:`write_warmup_file`, so importing this module does not need it.

Example:
  >>> requests = warmup_requests(module, vocab)          # module: a serving_module.GRU4RecServing
  >>> [signature for signature, _ in requests]
  ['serving_default', 'step', 'serving_candidates', 'step_candidates']
  >>> write_warmup_file("/models/gru4rec/1/assets.extra/tf_serving_warmup_requests", requests)
"""
import numpy as np
import tensorflow as tf

from gru4rec_tf.export.serving_module import GRU4RecServing
from gru4rec_tf.export.signatures import (
    CANDIDATES, EXCLUDE, EXCLUDE_SEEN, ITEMS, K, LENGTHS, SIGNATURE_SESSION, SIGNATURE_SESSION_CANDIDATES,
    SIGNATURE_STEP, SIGNATURE_STEP_CANDIDATES, STATE)


def warmup_requests(module: GRU4RecServing, vocab) -> list:
    """``(signature_name, inputs)`` pairs of small, valid requests (numpy inputs) for every signature."""
    n = min(3, len(vocab))
    first = vocab.item_ids[:n]
    cast = (lambda a: np.asarray(a, np.int64)) if module.id_dtype == tf.int64 else \
        (lambda a: np.asarray(a, dtype=object).astype(str).astype(bytes))
    k = np.array([min(10, module.max_k)], np.int32)
    session = {ITEMS: cast([first]), LENGTHS: np.array([n], np.int32), K: k,
               EXCLUDE_SEEN: np.array([True])}
    step = {ITEMS: cast(first[:1]), STATE: np.zeros([1, module.state_size], np.float32), K: k,
            EXCLUDE: cast([first[:1]])}
    return [(SIGNATURE_SESSION, session), (SIGNATURE_STEP, step),
            (SIGNATURE_SESSION_CANDIDATES,
             {**session, EXCLUDE_SEEN: np.array([False]), CANDIDATES: cast([first])}),
            (SIGNATURE_STEP_CANDIDATES, {**step, CANDIDATES: cast([first])})]


def write_warmup_file(path: str, requests) -> None:
    """Writes TF Serving warm-up records (``PredictionLog`` TFRecords) for ``(signature, inputs)`` pairs.

    tensorflow_serving is imported here, so importing this module does not need it.
    """
    # pylint: disable-next=g-import-not-at-top
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
