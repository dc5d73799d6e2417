"""Batched distinct rows against np.unique, step by step."""
import numpy as np
import pytest

from gru4rec_tf.train import distinct_rows as distinct_rows_lib


def _check_against_numpy(values, mask, n_items):
    rows = distinct_rows_lib.distinct_rows(values, mask, n_items)
    n_steps, width = values.shape
    assert rows.unique.shape == (n_steps, min(width, n_items)) and rows.position.shape == values.shape
    for k in range(n_steps):
        kept = values[k][mask[k]]
        expected = np.unique(kept)
        assert rows.n_unique[k] == len(expected)
        np.testing.assert_array_equal(rows.unique[k, :len(expected)], expected)
        padding = rows.unique[k, len(expected):]
        unused = np.setdiff1d(np.arange(len(expected) + len(padding)), expected)[:len(padding)]  # all below that
        np.testing.assert_array_equal(padding, unused)  # the smallest items the step does not use
        assert len(np.unique(rows.unique[k])) == rows.unique.shape[1]
        looked_up = rows.unique[k][rows.position[k]]
        np.testing.assert_array_equal(looked_up[mask[k]], kept)
        if len(kept):  # dropped occurrences point to the first kept occurrence's row
            assert np.all(looked_up[~mask[k]] == kept[0])
        assert np.all(rows.position[k] < max(len(expected), 1))


@pytest.mark.parametrize("n_items", [7, 300, 3000, 5_000_000])
def test_matches_numpy_unique_per_step(n_items):
    rng = np.random.RandomState(n_items % 1000)
    values = rng.zipf(1.3, size=(50, 300)) % n_items  # popular items repeat, as popularity samples do
    mask = rng.rand(50, 300) < 0.9
    mask[3] = False  # a step with nothing kept
    mask[4] = True
    values[5, ~mask[5]] = -1  # dropped occurrences may hold anything
    _check_against_numpy(values.astype(np.int32), mask, n_items)


def test_every_item_used_leaves_no_padding():
    rows = distinct_rows_lib.distinct_rows(np.array([[2, 0, 1, 2]]), np.ones((1, 4), bool), n_items=3)
    assert rows.unique.tolist() == [[0, 1, 2]] and rows.position.tolist() == [[2, 0, 1, 2]]


def test_steps_slices_every_field():
    rows = distinct_rows_lib.distinct_rows(np.array([[1, 2], [3, 3], [5, 6]]), np.ones((3, 2), bool), n_items=9)
    part = rows.steps(1, 3)
    assert part.unique.tolist() == [[3, 0], [5, 6]] and part.n_unique.tolist() == [1, 2]


@pytest.mark.parametrize("values,mask,message", [
    (np.zeros((2, 3), np.int32), np.ones((2, 2), bool), "one shape"),
    (np.zeros(3, np.int32), np.ones(3, bool), r"\[K, N\]"),
    (np.zeros((2, 0), np.int32), np.ones((2, 0), bool), "1 to 2\\*\\*20"),
    (np.array([[1, -2]]), np.ones((1, 2), bool), r"in \[0, 5\)"),
    (np.array([[1, 5]]), np.ones((1, 2), bool), r"in \[0, 5\)"),
])
def test_bad_input_is_rejected(values, mask, message):
    with pytest.raises(ValueError, match=message):
        distinct_rows_lib.distinct_rows(values, mask, n_items=5)


@pytest.mark.parametrize("method", ["bitmap", "sort"])
@pytest.mark.parametrize("n_items", [7, 300, 3000, 70_000])
def test_in_graph_step_rows_equal_the_host_rows(method, n_items):
    """The compiled loop's per-step distinct rows (XLA) are exactly the host's, masked occurrences included."""
    import tensorflow as tf
    rng = np.random.RandomState(n_items % 997)
    values = (rng.zipf(1.3, size=(12, 300)) % n_items).astype(np.int32)
    mask = rng.rand(12, 300) < 0.9
    mask[3] = False  # a step with nothing kept
    mask[4] = True
    values[5, ~mask[5]] = -1  # dropped occurrences may hold anything
    mask[6] = False
    mask[6, 7] = True  # a single kept occurrence
    host = distinct_rows_lib.distinct_rows(values, mask, n_items)
    step = tf.function(lambda v, m: distinct_rows_lib.step_distinct_rows(v, m, n_items, method), jit_compile=True)
    for k in range(len(values)):
        unique, position, n_unique = (t.numpy() for t in step(values[k], mask[k]))
        np.testing.assert_array_equal(unique, host.unique[k])
        np.testing.assert_array_equal(position, host.position[k])
        assert n_unique == host.n_unique[k]


def test_in_graph_step_rows_reject_an_unknown_method():
    with pytest.raises(ValueError, match="bitmap"):
        distinct_rows_lib.step_distinct_rows(np.zeros(3, np.int32), np.ones(3, bool), 5, method="hash")
