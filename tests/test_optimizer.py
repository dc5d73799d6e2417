"""Tests for gru4rec_tf.train.optimizer.AdagradMomentum against a float64 NumPy reference written from spec §6.

Reference (per parameter, or per touched row after coalescing duplicate rows)::

    acc ← acc + g²;  ĝ = g / sqrt(acc + 1e−6)
    μ > 0:  v ← μ·v − η·ĝ;  θ ← θ + v        μ = 0:  θ ← θ − η·ĝ
"""
import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import numpy as np
import pytest
import tensorflow as tf

from gru4rec_tf.train import distinct_rows as distinct_rows_lib
from gru4rec_tf.train import optimizer as optimizer_lib
from gru4rec_tf.train.optimizer import AdagradMomentum

EPS = 1e-6
RTOL, ATOL = 1e-5, 1e-7


class NpAdagradMomentum:
    """Float64 reference state for one variable."""

    def __init__(self, theta, lr, momentum):
        self.theta = np.array(theta, dtype=np.float64)
        self.acc = np.zeros_like(self.theta)
        self.vel = np.zeros_like(self.theta)
        self.lr, self.mu = lr, momentum

    def _update(self, theta, acc, vel, g):
        acc = acc + g ** 2
        g_hat = g / np.sqrt(acc + EPS)
        if self.mu > 0:
            vel = self.mu * vel - self.lr * g_hat
            theta = theta + vel
        else:
            theta = theta - self.lr * g_hat
        return theta, acc, vel

    def dense(self, g):
        self.theta, self.acc, self.vel = self._update(self.theta, self.acc, self.vel, np.asarray(g, np.float64))

    def sparse(self, indices, values):
        values = np.asarray(values, np.float64)
        rows = sorted(set(int(i) for i in indices))
        for row in rows:  # coalesce: sum the gradient rows of every occurrence, then one update
            g = sum(values[k] for k, i in enumerate(indices) if int(i) == row)
            self.theta[row], self.acc[row], self.vel[row] = self._update(self.theta[row], self.acc[row],
                                                                         self.vel[row], g)


def make(shape, lr, momentum, seed=0):
    rng = np.random.RandomState(seed)
    init = rng.normal(size=shape).astype(np.float32)
    var = tf.Variable(init)
    opt = AdagradMomentum(learning_rate=lr, momentum=momentum)
    opt.build([var])
    return var, opt, NpAdagradMomentum(init, lr, momentum), rng


def check(var, opt, ref):
    acc, vel = opt.slots(var)
    np.testing.assert_allclose(var.numpy(), ref.theta, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(acc.numpy(), ref.acc, rtol=RTOL, atol=ATOL)
    if ref.mu > 0:
        np.testing.assert_allclose(vel.numpy(), ref.vel, rtol=RTOL, atol=ATOL)
    else:
        assert vel is None


def grad_like(rng, shape):
    return rng.normal(scale=0.5, size=shape).astype(np.float32)


# ------------------------------------------------------------------------------------------ dense
@pytest.mark.parametrize("shape", [(5, 3), (7,)])
@pytest.mark.parametrize("momentum", [0.0, 0.4, 0.9])
def test_dense_updates_match_reference(shape, momentum):
    var, opt, ref, rng = make(shape, lr=0.1, momentum=momentum)
    for _ in range(3):
        g = grad_like(rng, shape)
        g.flat[0] = 0.0  # a zero gradient with acc = 0 must not divide by zero (ε inside the sqrt)
        opt.apply_dense(var, tf.constant(g))
        ref.dense(g)
        check(var, opt, ref)
    assert np.all(np.isfinite(var.numpy()))


def test_dense_first_step_is_sign_sized():
    """With acc = 0, the first step is η·g/sqrt(g² + 1e−6) ≈ η·sign(g): the accumulator starts at 0, not 0.1."""
    var = tf.Variable([1.0, 1.0, 1.0])
    opt = AdagradMomentum(learning_rate=0.5)
    opt.build([var])
    opt.apply_dense(var, tf.constant([2.0, -0.01, 0.0]))
    want = np.array([1.0 - 0.5 * 2.0 / np.sqrt(4.0 + EPS), 1.0 + 0.5 * 0.01 / np.sqrt(1e-4 + EPS), 1.0])
    np.testing.assert_allclose(var.numpy(), want, rtol=1e-6)


def test_momentum_is_heavy_ball_not_nesterov():
    """Two steps of the same gradient: v2 = μ·v1 − η·ĝ2, θ2 = θ1 + v2 (classical momentum)."""
    var = tf.Variable([0.0])
    opt = AdagradMomentum(learning_rate=1.0, momentum=0.5)
    opt.build([var])
    for _ in range(2):
        opt.apply_dense(var, tf.constant([1.0]))
    g1 = 1.0 / np.sqrt(1.0 + EPS)
    g2 = 1.0 / np.sqrt(2.0 + EPS)
    v1 = -g1
    v2 = 0.5 * v1 - g2
    np.testing.assert_allclose(var.numpy(), [v1 + v2], rtol=1e-6)
    np.testing.assert_allclose(opt.slots(var)[1].numpy(), [v2], rtol=1e-6)


# ------------------------------------------------------------------------------------------ sparse
@pytest.mark.parametrize("shape", [(8, 3), (8,)])
@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_sparse_updates_match_reference_with_duplicates(shape, momentum):
    var, opt, ref, rng = make(shape, lr=0.2, momentum=momentum, seed=1)
    batches = [[1, 3, 1, 6], [3, 3, 3], [0, 6, 2, 6, 1]]
    for indices in batches:
        values = grad_like(rng, (len(indices),) + shape[1:])
        opt.apply_sparse(var, tf.constant(indices, tf.int32), tf.constant(values))
        ref.sparse(indices, values)
        check(var, opt, ref)


@pytest.mark.parametrize("momentum", [0.0, 0.7])
def test_duplicates_are_coalesced_before_squaring(momentum):
    """Two occurrences g, g of a row: acc gains (2g)², not 2g² (per-occurrence accumulation)."""
    var = tf.Variable(np.zeros((3, 2), np.float32))
    opt = AdagradMomentum(learning_rate=0.1, momentum=momentum)
    opt.build([var])
    g = np.array([0.3, -0.4], np.float32)
    opt.apply_sparse(var, tf.constant([2, 2]), tf.constant(np.stack([g, g])))
    acc, _ = opt.slots(var)
    np.testing.assert_allclose(acc.numpy()[2], (2 * g.astype(np.float64)) ** 2, rtol=1e-6)
    want_row = -0.1 * 2 * g / np.sqrt((2 * g.astype(np.float64)) ** 2 + EPS)
    np.testing.assert_allclose(var.numpy()[2], want_row, rtol=1e-5)
    np.testing.assert_array_equal(var.numpy()[:2], 0.0)


@pytest.mark.parametrize("shape", [(6, 4), (6,)])
def test_untouched_rows_keep_value_accumulator_and_velocity(shape):
    var, opt, ref, rng = make(shape, lr=0.1, momentum=0.8, seed=2)
    # a dense step first gives every row a non-zero accumulator and velocity
    g = grad_like(rng, shape)
    opt.apply_dense(var, tf.constant(g))
    ref.dense(g)
    acc, vel = opt.slots(var)
    before = [x.numpy().copy() for x in (var, acc, vel)]
    assert np.all(before[2] != 0.0)
    touched = [4, 1, 4]
    values = grad_like(rng, (3,) + shape[1:])
    opt.apply_sparse(var, tf.constant(touched), tf.constant(values))
    ref.sparse(touched, values)
    check(var, opt, ref)
    untouched = [r for r in range(shape[0]) if r not in touched]
    for old, new in zip(before, (var, acc, vel), strict=True):
        np.testing.assert_array_equal(new.numpy()[untouched], old[untouched])  # no decay, no application of v
        assert not np.array_equal(new.numpy()[[1, 4]], old[[1, 4]])
    # a later sparse step on other rows still leaves rows 1 and 4 alone
    mid = [x.numpy().copy() for x in (var, acc, vel)]
    values = grad_like(rng, (1,) + shape[1:])
    opt.apply_sparse(var, tf.constant([0]), tf.constant(values))
    ref.sparse([0], values)
    check(var, opt, ref)
    for old, new in zip(mid, (var, acc, vel), strict=True):
        np.testing.assert_array_equal(new.numpy()[1:], old[1:])


@pytest.mark.parametrize("shape", [(7, 3), (7,)])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("indices,mask", [
    ([5, 2, 5, 0], [True, True, True, True]),
    ([3, 6, 1, 1], [True, False, True, True]),
    ([4, 4, 2, 2], [False, False, False, False]),  # a step with no rows at all: nothing may change, velocity too
])
def test_distinct_row_writes_equal_exact_writes(shape, momentum, indices, mask):
    """The compiled loop's static write (padding = unused rows) leaves what writing only the real rows leaves."""
    results = []
    for write in ("write_rows", "write_distinct_rows"):
        var, opt, _, rng = make(shape, lr=0.1, momentum=momentum, seed=4)
        opt.apply_dense(var, tf.constant(grad_like(rng, shape)))  # non-zero accumulator and velocity everywhere
        values = grad_like(rng, (len(indices),) + shape[1:]) * np.reshape(mask, [-1] + [1] * (len(shape) - 1))
        if write == "write_rows":
            rows = optimizer_lib.unique_rows(tf.constant(indices, tf.int32), tf.constant(mask))
        else:
            chunk = distinct_rows_lib.distinct_rows(np.array([indices]), np.array([mask]), n_items=shape[0])
            rows = optimizer_lib.UniqueRows(*(tf.constant(field[0]) for field in chunk))
        grad = tf.math.unsorted_segment_sum(tf.constant(values, tf.float32), rows.position,
                                            tf.shape(rows.unique)[0])
        getattr(opt, write)(var, opt.coalesced_rows(var, rows, grad))
        results.append([x.numpy() for x in (var, *opt.slots(var)) if x is not None])
    for exact, padded in zip(*results, strict=True):
        np.testing.assert_array_equal(padded, exact)


def test_sparse_on_all_rows_equals_dense():
    """Touching every row exactly once is the dense update."""
    a, opt_a, _, rng = make((5, 3), lr=0.05, momentum=0.3, seed=3)
    b = tf.Variable(a.numpy())
    opt_b = AdagradMomentum(learning_rate=0.05, momentum=0.3)
    opt_b.build([b])
    for _ in range(3):
        g = grad_like(rng, (5, 3))
        perm = rng.permutation(5)
        opt_a.apply_dense(a, tf.constant(g))
        opt_b.apply_sparse(b, tf.constant(perm), tf.constant(g[perm]))
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)


def test_bad_arguments():
    with pytest.raises(ValueError):
        AdagradMomentum(learning_rate=0.0)
    with pytest.raises(ValueError):
        AdagradMomentum(learning_rate=0.1, momentum=1.0)
    with pytest.raises(ValueError):
        AdagradMomentum(learning_rate=0.1, momentum=-0.1)
