"""A Beam RunInference model handler over an exported GRU4Rec SavedModel: the answers of ``serving_default``.

Beam's own TensorFlow handler (``apache_beam.ml.inference.tensorflow_inference``) cannot be imported with the
TensorFlow of this stack (it needs ``tf.compat.v1.estimator``), and it would feed one tensor per element anyway;
:class:`SessionModelHandler` loads the SavedModel with ``tf.saved_model.load`` and calls its ``serving_default``
signature on whole batches of sessions, padded exactly as a serving client pads a multi-session request
(:func:`session_inputs`). So every record is what TF Serving would answer for that session:

* the whole session is fed, however long (``serving_default`` has no fixed input length; the batch is padded to
  its longest session and ``lengths`` masks the padding, which changes nothing in the result);
* item IDs not in the catalogue are skipped by the signature (the state is left unchanged) and counted; for
  int64 models an ID that is not an integer is such an unknown ID too;
* ``k`` is clipped to the export's ``max_k``; a session without a known item gets no recommendation.

The items and their order are those of a one-session request; the scores agree with it to float32 rounding (a
few ulp: a batch of one session takes another matrix kernel than a batch of many, as with TF Serving's own
request batching).

Elements are ``(session_id, item IDs as text, oldest first)``; each prediction is a record
``{"session_id", "item_ids", "scores", "model_version"}``. Beam metrics counters (namespace
:data:`METRICS_NAMESPACE`): ``sessions``, ``unknown_items``, ``sessions_without_results``.

Example (an illustration: it needs an exported model)::

    handler = SessionModelHandler("models/gru4rec/1", k=20, exclude_seen=True, id_dtype="int64", model_version="1")
    records = sessions | RunInference(handler)      # sessions: (session_id, ("100042", "100007")) elements
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

from gru4rec_tf.export import signatures

__all__ = ["SessionModelHandler", "session_inputs", "METRICS_NAMESPACE", "RECORD_FIELDS"]

METRICS_NAMESPACE = "gru4rec_recommend"
RECORD_FIELDS = ("session_id", "item_ids", "scores", "model_version")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PROGRESS_EVERY_S = 30.0


def _int_id(text: str, pad: int) -> int:
    """An int64 item ID from its text; ``pad`` (never in the catalogue, so an unknown ID) when it is not one."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        return pad
    return value if _INT64_MIN <= value <= _INT64_MAX else pad


def session_inputs(item_lists: Sequence[Sequence[str]], id_dtype: str, k: int, exclude_seen: bool) -> dict:
    """Numpy inputs of ``serving_default`` for a batch of sessions, right-padded with the dtype's ``PAD_ID``.

    Example::

        >>> out = session_inputs([["5", "7"], ["9"]], "int64", k=3, exclude_seen=False)
        >>> out["items"].tolist(), out["lengths"].tolist(), out["k"].tolist()
        ([[5, 7], [9, -1]], [2, 1], [3, 3])
    """
    pad = signatures.pad_id(id_dtype)
    width = max([len(items) for items in item_lists] + [1])
    if id_dtype == "int64":
        rows = [[_int_id(i, pad) for i in items] + [pad] * (width - len(items)) for items in item_lists]
        items_array = np.array(rows, dtype=np.int64).reshape(len(item_lists), width)
    else:
        rows = [[str(i).encode("utf-8") for i in items] + [b""] * (width - len(items)) for items in item_lists]
        items_array = np.array(rows, dtype=object).reshape(len(item_lists), width)
    n = len(item_lists)
    return {signatures.ITEMS: items_array,
            signatures.LENGTHS: np.array([len(items) for items in item_lists], np.int32),
            signatures.K: np.full(n, k, np.int32),
            signatures.EXCLUDE_SEEN: np.full(n, bool(exclude_seen))}


class SessionModelHandler(ModelHandler):
    """RunInference handler: ``(session_id, items)`` elements -> recommendation records, via ``serving_default``.

    ``id_dtype`` is the export's item-ID dtype (``"int64"`` or ``"string"``, from its export info); batches hold
    ``max_batch_size`` sessions (``batch_elements_kwargs``; fewer at the end of a bundle).

    Example (an illustration: it needs an exported model)::

        handler = SessionModelHandler("models/gru4rec/1", k=20, exclude_seen=False, id_dtype="int64",
                                      model_version="1", max_batch_size=64)
        model = handler.load_model()
        [record] = handler.run_inference([("s1", ("100042", "100007"))], model)
    """

    def __init__(self, model_path: str, *, k: int, exclude_seen: bool, id_dtype: str, model_version: str,
                 max_batch_size: int = 64):
        super().__init__()
        signatures.pad_id(id_dtype)  # raises ValueError for an unknown dtype
        if k < 1 or max_batch_size < 1:
            raise ValueError(f"k and max_batch_size must be >= 1, got k={k}, max_batch_size={max_batch_size}")
        self._model_path = model_path
        self._k, self._exclude_seen, self._id_dtype = int(k), bool(exclude_seen), id_dtype
        self._model_version = str(model_version)
        self._max_batch_size = int(max_batch_size)
        self._sessions_counter = Metrics.counter(METRICS_NAMESPACE, "sessions")
        self._unknown_counter = Metrics.counter(METRICS_NAMESPACE, "unknown_items")
        self._empty_counter = Metrics.counter(METRICS_NAMESPACE, "sessions_without_results")
        self._done, self._started, self._logged = 0, None, 0.0

    def load_model(self):
        import gru4rec_tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (legacy Keras first)
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        return tf.saved_model.load(self._model_path)

    def batch_elements_kwargs(self):
        # a fixed size: Beam's adaptive sizing (from 1 up) stayed at 1-2 sessions per call on the DirectRunner, 20x
        # slower with a 100k-item catalogue; the last batch of a bundle is smaller
        return {"min_batch_size": self._max_batch_size, "max_batch_size": self._max_batch_size}

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE

    def run_inference(self, batch: Sequence, model, inference_args=None) -> Iterable[dict]:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        if not batch:
            return []
        inputs = session_inputs([items for _, items in batch], self._id_dtype, self._k, self._exclude_seen)
        serve = model.signatures[signatures.SIGNATURE_SESSION]
        out = {name: value.numpy() for name, value in serve(**{n: tf.constant(v) for n, v in inputs.items()}).items()}
        records = []
        for row, (session_id, _) in enumerate(batch):
            n = int(out[signatures.NUM_RESULTS][row])
            ids = out[signatures.ITEM_IDS][row, :n]
            item_ids = [int(i) for i in ids] if self._id_dtype == "int64" else [i.decode("utf-8") for i in ids]
            records.append({"session_id": session_id, "item_ids": item_ids,
                            "scores": [float(s) for s in out[signatures.SCORES][row, :n]],
                            "model_version": self._model_version})
        self._sessions_counter.inc(len(batch))
        self._unknown_counter.inc(int(out[signatures.NUM_UNKNOWN].sum()))
        self._empty_counter.inc(int((out[signatures.NUM_RESULTS] == 0).sum()))
        self._progress(len(batch))
        return records

    def _progress(self, n: int) -> None:
        """Logs this worker's sessions and rate every 30 s (long runs show progress)."""
        now = time.monotonic()
        if self._started is None:
            self._started = self._logged = now
        self._done += n
        if now - self._logged >= _PROGRESS_EVERY_S:
            self._logged = now
            logging.info("recommend: %d sessions scored in this worker (%.0f sessions/s)", self._done,
                         self._done / max(now - self._started, 1e-9))
