"""The exported signatures under TF Serving's server-side batching, simulated the way BatchingSession merges.

TF Serving (``--enable_batching`` with ``pad_variable_length_inputs: true``) pads every input of each request to
the batch's largest shape with the tensor's *first element*, concatenates the requests, pads the batch to an allowed
size by repeating the last request's first row, runs once and splits the outputs along dimension 0
(tensorflow_serving/batching/batching_session.cc, batching_util.cc). Each request must get the answer it gets alone.
"""
import numpy as np
import pytest

import serving_testlib as lib
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from serving import client as client_lib  # pylint: disable=g-import-not-at-top

ALLOWED_BATCH_SIZES = (4, 8, 16)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = lib.export_model(tmp_path_factory.mktemp("models"), version=1)
    client = client_lib.GRU4RecClient("127.0.0.1:1", lib.MODEL_NAME)  # builds requests only; never connects
    client._info = client_lib.ModelInfo(1, tf.int64, lib.STATE_SIZE, ())  # pylint: disable=protected-access
    return tf.saved_model.load(path), client


def merge_like_tf_serving(requests):
    """Pads, concatenates and pads the batch as BatchingSession does; returns merged inputs and the row counts."""
    sizes = [len(next(iter(r.values()))) for r in requests]
    merged = {}
    for name in requests[0]:
        tensors = [r[name] for r in requests]
        widths = [max(t.shape[d] for t in tensors) for d in range(tensors[0].ndim)]
        padded = [np.pad(t, [(0, 0)] + [(0, w - s) for w, s in zip(widths[1:], t.shape[1:], strict=True)],
                         constant_values=t.flat[0]) for t in tensors]
        total = sum(sizes)
        target = min(a for a in ALLOWED_BATCH_SIZES if a >= total)
        merged[name] = np.concatenate(padded + [padded[-1][:1]] * (target - total))
    return merged, sizes


def assert_same_answers(loaded, signature, requests):
    merged, sizes = merge_like_tf_serving(requests)
    batched = lib.run_signature(loaded, signature, merged)
    offset = 0
    for request, size in zip(requests, sizes, strict=True):
        alone = lib.run_signature(loaded, signature, request)
        part = {name: value[offset:offset + size] for name, value in batched.items()}
        offset += size
        for name in ("num_results", "num_unknown"):
            np.testing.assert_array_equal(part[name], alone[name], err_msg=name)
        # a matmul's last bits may depend on the batch shape (CPU and GPU kernels block differently)
        np.testing.assert_allclose(part["state"], alone["state"], rtol=1e-5, atol=1e-6)
        for row in range(size):
            (ids, scores), (ids_alone, scores_alone) = lib.top(part, row), lib.top(alone, row)
            assert ids == ids_alone
            np.testing.assert_allclose(scores, scores_alone, rtol=1e-5, atol=1e-6)


def test_session_signatures_are_batching_safe(setup):
    loaded, client = setup
    ids = lib.ITEM_IDS
    requests = [
        client.session_request([[ids[3], ids[4], lib.UNKNOWN, ids[5]], [ids[9]]], k=5, exclude_seen=True),
        client.session_request([[ids[1]]], k=12, exclude_seen=False),
        client.session_request([[ids[2], ids[6]], [lib.UNKNOWN], []], k=3, exclude_seen=True),
    ]
    assert_same_answers(loaded, "serving_default", [inputs for _, inputs in requests])
    requests = [
        client.session_request([[ids[3], ids[4]], [ids[9]]], k=4, candidates=[list(ids[:6]), [ids[20], ids[21]]]),
        client.session_request([[ids[1]]], k=8, candidates=[list(ids[10:30])]),
    ]
    assert_same_answers(loaded, "serving_candidates", [inputs for _, inputs in requests])


def test_step_signatures_are_batching_safe(setup):
    loaded, client = setup
    ids = lib.ITEM_IDS
    states = np.random.RandomState(1).uniform(-0.5, 0.5, [3, lib.STATE_SIZE]).astype(np.float32)
    requests = [
        client.step_request([ids[3], ids[8]], states[:2], k=6, exclude=[[ids[0], ids[1], ids[2]], [ids[5]]]),
        client.step_request([lib.UNKNOWN], states[2:], k=2, exclude=[[]]),
    ]
    assert_same_answers(loaded, "step", [inputs for _, inputs in requests])
    requests = [
        client.step_request([ids[3], ids[8]], states[:2], k=3, candidates=[list(ids[:9]), [ids[30]]]),
        client.step_request([ids[4]], states[2:], k=9, exclude=[[ids[11]]], candidates=[list(ids[5:25])]),
    ]
    assert_same_answers(loaded, "step_candidates", [inputs for _, inputs in requests])


def test_without_the_leading_pad_column_padding_would_leak_between_rows(setup):
    loaded, _ = setup
    ids = lib.ITEM_IDS
    state = np.zeros([2, lib.STATE_SIZE], np.float32)
    unsafe = lib.step_inputs([ids[3], ids[3]], state, k=1, exclude=[[ids[7]], [ids[8]]])  # no leading pad column
    top_item = lib.top(lib.run_signature(loaded, "step", lib.step_inputs([ids[3]], state[:1], k=1)))[0][0]
    unsafe["exclude"][0, 0] = top_item  # row 0 excludes the top item; row 1 does not
    wider = lib.step_inputs([ids[3]], state[:1], k=1, exclude=[[ids[1], ids[2], ids[3]]])
    merged, _ = merge_like_tf_serving([unsafe, wider])
    assert lib.top(lib.run_signature(loaded, "step", merged), 1)[0] != [top_item]  # row 1 lost its top item
