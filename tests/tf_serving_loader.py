"""TF Serving's own path through an exported version, in Python (issue 15 §4).

TF Serving loads a version with the C++ SavedModel loader into a *graph* session (tag ``serve``), runs each
signature by the tensor names of its ``SignatureDef`` (after the init op that fills the vocabulary table), and
replays the ``PredictionLog`` records of ``assets.extra/tf_serving_warmup_requests`` before serving.
:func:`tf1_session` does the same with ``tf.compat.v1.saved_model.loader.load`` (the Python face of that C++
loader), :func:`run_signature` feeds a request by tensor names, and :func:`check_version` compares every signature
with the eager ``tf.saved_model.load`` results and replays every warm-up record through the graph session.

Example::

    check_version("/models/gru4rec/3", requests={"serving_default": {...}})
"""
import os

import numpy as np

import gru4rec_tf  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from gru4rec_tf.export import signatures


def tf1_session(export_dir: str):
    """``(session, meta_graph_def)``: the version loaded as TF Serving loads it (graph mode, ``serve`` tag)."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, [tf.compat.v1.saved_model.tag_constants.SERVING],
                                                    export_dir)
    return session, meta


def run_signature(session, meta, name: str, inputs: dict) -> dict:
    """Runs signature ``name`` by its SignatureDef's tensor names (as TF Serving's Predict does)."""
    signature = meta.signature_def[name]
    missing = set(signature.inputs) - set(inputs)
    assert not missing, f"{name}: request lacks {missing}"
    feed = {signature.inputs[key].name: np.asarray(value) for key, value in inputs.items()}
    fetches = {key: info.name for key, info in signature.outputs.items()}
    return session.run(fetches, feed_dict=feed)


def warmup_records(export_dir: str) -> list:
    """``(signature_name, inputs)`` of every ``PredictionLog`` in ``assets.extra/tf_serving_warmup_requests``."""
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
    path = os.path.join(export_dir, "assets.extra", signatures.WARMUP_FILE)
    out = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        assert log.WhichOneof("log_type") == "predict_log", log
        request = log.predict_log.request
        out.append((request.model_spec.signature_name or "serving_default",
                    {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}))
    return out


def assert_same(graph_out: dict, eager_out: dict, where: str) -> None:
    assert set(graph_out) == set(eager_out), where
    for key, value in eager_out.items():
        value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        got = np.asarray(graph_out[key])
        assert got.shape == value.shape and got.dtype == value.dtype, (where, key, got.shape, value.shape)
        if got.dtype.kind in "fc":
            np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6, err_msg=f"{where}: {key}")
        else:
            np.testing.assert_array_equal(got, value, err_msg=f"{where}: {key}")


def check_version(export_dir: str, requests: dict = None) -> dict:
    """Every signature through TF Serving's loader == eager; every warm-up record replays. Returns the counts.

    ``requests``: signature name -> list of input dicts (numpy); the warm-up records are always replayed too.
    Every signature of the version must be exercised by ``requests`` or the warm-up records.
    """
    session, meta = tf1_session(export_dir)
    eager = tf.saved_model.load(export_dir)
    try:
        assert set(signatures.SIGNATURES) <= set(meta.signature_def), sorted(meta.signature_def)
        cases = [(name, inputs, "request") for name, batch in (requests or {}).items() for inputs in batch]
        warm = warmup_records(export_dir)
        cases += [(name, inputs, "warm-up record") for name, inputs in warm]
        for name, inputs, kind in cases:
            graph_out = run_signature(session, meta, name, inputs)
            eager_out = eager.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
            assert_same(graph_out, eager_out, f"{export_dir} {name} ({kind})")
        covered = {name for name, _, _ in cases}
        assert set(signatures.SIGNATURES) <= covered, f"signatures never run: {set(signatures.SIGNATURES) - covered}"
        return {"cases": len(cases), "warmup_records": len(warm)}
    finally:
        session.close()
