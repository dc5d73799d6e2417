"""Tests for gru4rec_tf.model.losses against independent float64 NumPy references written from spec §4-§5.

Conventions of the references: ``scores`` is a ``[B, N]`` matrix (N >= B) whose diagonal holds the positives;
masked columns are handled by physically deleting them (and the rows of the same index) before calling the
reference, so the references never see a mask.
"""
import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import zlib

import numpy as np
import pytest
import tensorflow as tf

from gru4rec_tf.model import losses

EPS_LOG = 1e-24
XE_LOSSES = {"cross-entropy": "softmax", "xe_logit": "softmax_logit"}
RANKING_LOSSES = ("top1", "bpr", "top1-max", "bpr-max")
ALL_LOSSES = tuple(XE_LOSSES) + RANKING_LOSSES
RANKING_ACTS = ("linear", "relu", "tanh", "leaky-0.1", "elu-0.5", "elu-1", "selu-1.05-1.67")
SHAPES = [(1, 3), (3, 5), (4, 11), (7, 20), (16, 16)]


# ------------------------------------------------------------------------------------------ NumPy references
def np_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def np_act(name, x):
    """Final activations of spec §4 (ranking forms) in float64."""
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    parts = name.split("-")
    kind, args = parts[0], [float(a) for a in parts[1:]]
    neg = np.minimum(x, 0.0)
    if kind == "leaky":
        return np.where(x >= 0, x, args[0] * x)
    if kind == "elu":
        return np.where(x >= 0, x, args[0] * (np.exp(neg) - 1.0))
    if kind == "selu":
        return args[0] * np.where(x >= 0, x, args[1] * (np.exp(neg) - 1.0))
    raise AssertionError(name)


def np_row_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_negative_softmax(r):
    """Spec §5: m_ij = 0 on the diagonal; x = r·m; s = m·exp(x − max x) / Σ m·exp(x − max x)."""
    b, n = r.shape
    m = np.ones((b, n))
    m[np.arange(b), np.arange(b)] = 0.0
    x = r * m
    e = m * np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_loss(loss, final_act, scores, log_q=None, logq=0.0, bpreg=0.0):
    """Per-row loss ℓ_i (spec §5) for float64 ``[B, N]`` scores with positives on the diagonal."""
    o = np.asarray(scores, dtype=np.float64)
    b, n = o.shape
    idx = np.arange(b)
    if loss in XE_LOSSES:
        if log_q is not None:
            o = o - logq * np.asarray(log_q, dtype=np.float64)[None, :]
        if loss == "cross-entropy":
            p = np_row_softmax(o)
            return -np.log(p[idx, idx] + EPS_LOG)
        # xe_logit: r = logsumexp_row(o) − o = −log softmax(o); ℓ_i = r_ii
        mx = o.max(axis=1, keepdims=True)
        r = (mx + np.log(np.exp(o - mx).sum(axis=1, keepdims=True))) - o
        return r[idx, idx]
    # The official ports apply logQ only inside the XE loss: log_q / logq are ignored here on purpose.
    r = np_act(final_act, o)
    pos = r[idx, idx][:, None]
    if loss == "top1":
        return (np_sigmoid(r - pos) + np_sigmoid(r ** 2)).sum(axis=1) / n - np_sigmoid(pos[:, 0] ** 2) / n
    if loss == "bpr":
        return (-np.log(np_sigmoid(pos - r))).sum(axis=1)
    s = np_negative_softmax(r)
    if loss == "top1-max":
        return (s * (np_sigmoid(r - pos) + np_sigmoid(r ** 2))).sum(axis=1)
    if loss == "bpr-max":
        return -np.log((s * np_sigmoid(pos - r)).sum(axis=1) + EPS_LOG) + bpreg * (s * r ** 2).sum(axis=1)
    raise AssertionError(loss)


# ------------------------------------------------------------------------------------------ helpers
def seed_of(*key):
    """Deterministic per-case seed (``hash`` of str is salted per process)."""
    return zlib.crc32(repr(key).encode())


def default_act(loss):
    return XE_LOSSES.get(loss, "linear")


def lib_loss(loss, final_act, scores, col_valid=None, log_q=None, logq=0.0, bpreg=0.0):
    scores = tf.constant(np.asarray(scores, dtype=np.float32))
    n = scores.shape[1]
    col_valid = tf.ones([n], tf.bool) if col_valid is None else tf.constant(col_valid)
    if log_q is not None:
        log_q = tf.constant(np.asarray(log_q, dtype=np.float32))
    return losses.ranking_loss_per_row(loss, final_act, scores, col_valid, log_q=log_q, logq=logq,
                                       bpreg=bpreg).numpy()


def random_scores(rng, b, n, scale=2.0):
    """float32-representable scores (the reference then sees exactly the values TensorFlow sees)."""
    return rng.normal(0.0, scale, size=(b, n)).astype(np.float32).astype(np.float64)


def assert_close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ the references themselves
def test_reference_sanity_on_hand_computed_values():
    """Guards the references: a 1×2 matrix has one negative, so the *-max softmax puts weight 1 on it."""
    o = np.array([[1.0, -0.5]])
    assert np.allclose(np_loss("bpr-max", "linear", o, bpreg=0.0), -np.log(np_sigmoid(1.5)))
    assert np.allclose(np_loss("bpr-max", "linear", o, bpreg=2.0), -np.log(np_sigmoid(1.5)) + 2 * 0.25)
    assert np.allclose(np_loss("top1-max", "linear", o), np_sigmoid(-1.5) + np_sigmoid(0.25))
    assert np.allclose(np_loss("bpr", "linear", o), np.log(2.0) - np.log(np_sigmoid(1.5)))
    assert np.allclose(np_loss("top1", "linear", o), (0.5 + np_sigmoid(-1.5) + np_sigmoid(0.25)) / 2)
    p = np.exp(1.0) / (np.exp(1.0) + np.exp(-0.5))
    assert np.allclose(np_loss("cross-entropy", "softmax", o), -np.log(p))
    assert np.allclose(np_loss("xe_logit", "softmax_logit", o), -np.log(p))


# ------------------------------------------------------------------------------------------ every loss
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_loss_matches_reference(loss, shape):
    rng = np.random.RandomState(seed_of(loss, shape))
    o = random_scores(rng, *shape)
    bpreg = 0.7 if loss == "bpr-max" else 0.0
    assert_close(lib_loss(loss, default_act(loss), o, bpreg=bpreg), np_loss(loss, default_act(loss), o, bpreg=bpreg))


@pytest.mark.parametrize("loss", ("top1-max", "bpr-max"))
def test_max_losses_exclude_the_diagonal_from_the_negative_softmax(loss):
    """A huge positive score would dominate the negative softmax if the diagonal were not excluded."""
    rng = np.random.RandomState(3)
    o = random_scores(rng, 4, 9, scale=1.0)
    o[np.arange(4), np.arange(4)] = 30.0
    got = lib_loss(loss, "linear", o, bpreg=1.0)
    assert_close(got, np_loss(loss, "linear", o, bpreg=1.0))
    # the including-the-diagonal variant is far away (it would give ≈ σ(0)+σ(900) / −log σ(0) + 900)
    assert np.all(got < 20.0)


@pytest.mark.parametrize("bpreg", [0.0, 0.5, 1.0, 1.95])
def test_bpr_max_bpreg(bpreg):
    rng = np.random.RandomState(int(bpreg * 100))
    o = random_scores(rng, 6, 15)
    assert_close(lib_loss("bpr-max", "linear", o, bpreg=bpreg), np_loss("bpr-max", "linear", o, bpreg=bpreg))
    assert_close(lib_loss("bpr-max", "elu-0.5", o, bpreg=bpreg), np_loss("bpr-max", "elu-0.5", o, bpreg=bpreg))


@pytest.mark.parametrize("loss", RANKING_LOSSES)
@pytest.mark.parametrize("act", RANKING_ACTS)
def test_every_final_activation_with_every_ranking_loss(loss, act):
    rng = np.random.RandomState(seed_of(loss, act))
    o = random_scores(rng, 5, 13)
    o[0, :3] = [0.0, -0.0, 1e-3]  # exercise the x = 0 branch point
    assert_close(lib_loss(loss, act, o, bpreg=0.8), np_loss(loss, act, o, bpreg=0.8))


@pytest.mark.parametrize("act", RANKING_ACTS + ("softmax",))
def test_final_activation_values(act):
    """final_activation itself, elementwise (softmax is checked row-wise)."""
    rng = np.random.RandomState(11)
    o = random_scores(rng, 4, 9)
    got = losses.final_activation(act, tf.constant(o.astype(np.float32)), tf.ones([9], tf.bool)).numpy()
    want = np_row_softmax(o) if act == "softmax" else np_act(act, o)
    assert_close(got, want)
    logit = losses.final_activation("softmax_logit", tf.constant(o.astype(np.float32)), tf.ones([9], tf.bool))
    assert_close(logit.numpy(), -np.log(np_row_softmax(o)))


# ------------------------------------------------------------------------------------------ logQ
def _log_q_vector(rng, b, n, alpha=0.5):
    """Columns = [B targets, N−B samples]; log q = log supp for targets, α·log supp for samples (spec §4)."""
    supp = rng.randint(1, 5000, size=n).astype(np.float64)
    log_q = np.log(supp)
    log_q[b:] *= alpha
    return log_q.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("logq", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("loss", tuple(XE_LOSSES))
@pytest.mark.parametrize("shape", [(3, 8), (8, 30)])
def test_logq_correction_for_xe_losses(loss, logq, shape):
    rng = np.random.RandomState(int(logq * 10) + shape[1])
    o = random_scores(rng, *shape)
    log_q = _log_q_vector(rng, *shape)
    act = XE_LOSSES[loss]
    got = lib_loss(loss, act, o, log_q=log_q, logq=logq)
    assert_close(got, np_loss(loss, act, o, log_q=log_q, logq=logq))
    if logq:
        # the correction really changed something (positive column included)
        assert not np.allclose(got, np_loss(loss, act, o))
    # o' = o − logq·log q: equivalent to pre-correcting the scores
    assert_close(got, lib_loss(loss, act, o - logq * log_q[None, :]))


@pytest.mark.parametrize("loss", RANKING_LOSSES)
def test_logq_has_no_effect_on_ranking_losses(loss):
    """As in the official ports (README: logQ 'has no effect with BPR-max'), logQ is applied by the XE losses only."""
    rng = np.random.RandomState(5)
    o = random_scores(rng, 5, 12)
    log_q = _log_q_vector(rng, 5, 12)
    with_q = lib_loss(loss, "elu-0.5", o, log_q=log_q, logq=1.0, bpreg=1.0)
    without = lib_loss(loss, "elu-0.5", o, bpreg=1.0)
    np.testing.assert_array_equal(with_q, without)
    assert_close(with_q, np_loss(loss, "elu-0.5", o, bpreg=1.0))


# ------------------------------------------------------------------------------------------ masking
def _masked_case(rng, b, n_samples, inactive, masked_samples=()):
    n = b + n_samples
    o = random_scores(rng, b, n)
    col_valid = np.ones(n, bool)
    col_valid[list(inactive)] = False  # target columns of inactive rows
    col_valid[[b + k for k in masked_samples]] = False
    row_valid = np.ones(b, bool)
    row_valid[list(inactive)] = False
    kept_rows = np.flatnonzero(row_valid)
    deleted = o[kept_rows][:, col_valid]  # diagonal stays aligned: kept rows keep their own target columns
    return o, col_valid, row_valid, deleted


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("case", [(6, 5, (1, 4), ()), (5, 0, (0, 3, 4), ()), (8, 12, (7,), (0, 5)),
                                  (4, 3, (0, 1, 2), ())])
def test_masked_columns_equal_deleted_columns(loss, case):
    b, n_samples, inactive, masked_samples = case
    rng = np.random.RandomState(seed_of(loss, case))
    o, col_valid, row_valid, deleted = _masked_case(rng, b, n_samples, inactive, masked_samples)
    act = "elu-0.5" if loss in RANKING_LOSSES else XE_LOSSES[loss]
    masked = lib_loss(loss, act, o, col_valid=col_valid, bpreg=0.9)
    assert np.all(np.isfinite(masked)), "rows of inactive slots must hold finite values too"
    valid_rows = masked[row_valid]
    assert_close(valid_rows, lib_loss(loss, act, deleted, bpreg=0.9))
    assert_close(valid_rows, np_loss(loss, act, deleted, bpreg=0.9))


@pytest.mark.parametrize("loss", tuple(XE_LOSSES))
def test_masked_columns_with_logq(loss):
    rng = np.random.RandomState(21)
    o, col_valid, row_valid, deleted = _masked_case(rng, 6, 7, (2, 5))
    log_q = _log_q_vector(rng, 6, 13)
    act = XE_LOSSES[loss]
    masked = lib_loss(loss, act, o, col_valid=col_valid, log_q=log_q, logq=1.0)
    want = np_loss(loss, act, deleted, log_q=log_q[col_valid], logq=1.0)
    assert_close(masked[row_valid], want)


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_masked_column_values_do_not_matter(loss):
    """Whatever sits in a masked column (even ±1e15, whose square is still a finite float32) changes nothing for the
    valid rows."""
    rng = np.random.RandomState(8)
    o, col_valid, row_valid, _ = _masked_case(rng, 5, 4, (1, 3))
    act = "linear" if loss in RANKING_LOSSES else XE_LOSSES[loss]
    base = lib_loss(loss, act, o, col_valid=col_valid, bpreg=1.0)
    for junk in (1e15, -1e15, 1e4, 0.0):
        o2 = o.copy()
        o2[:, ~col_valid] = junk
        assert_close(lib_loss(loss, act, o2, col_valid=col_valid, bpreg=1.0)[row_valid], base[row_valid])


# ------------------------------------------------------------------------------------------ TopKRankingLoss layer
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_layer_sums_valid_rows_and_divides_by_configured_batch_size(loss):
    b = 6
    rng = np.random.RandomState(13)
    o, col_valid, row_valid, deleted = _masked_case(rng, b, 5, (0, 4))
    act = "elu-1" if loss in RANKING_LOSSES else XE_LOSSES[loss]
    log_q = _log_q_vector(rng, b, b + 5)
    layer = losses.TopKRankingLoss(loss, act, batch_size=b, bpreg=1.3, logq=1.0)
    got = float(layer(tf.constant(o.astype(np.float32)), col_valid=tf.constant(col_valid),
                      row_valid=tf.constant(row_valid), log_q=tf.constant(log_q.astype(np.float32))))
    per_row = np_loss(loss, act, deleted, log_q=log_q[col_valid], logq=1.0, bpreg=1.3)
    want = per_row.sum() / b  # configured B = 6, not the 4 active rows
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # full batch too
    full = float(layer(tf.constant(o.astype(np.float32)), col_valid=tf.ones([b + 5], tf.bool),
                       row_valid=tf.ones([b], tf.bool), log_q=tf.constant(log_q.astype(np.float32))))
    np.testing.assert_allclose(full, np_loss(loss, act, o, log_q=log_q, logq=1.0, bpreg=1.3).sum() / b,
                               rtol=1e-5, atol=1e-6)


def test_layer_rejects_bad_pairing_and_batch_size():
    with pytest.raises(ValueError):
        losses.TopKRankingLoss("bpr-max", "softmax", batch_size=4)
    with pytest.raises(ValueError):
        losses.TopKRankingLoss("cross-entropy", "linear", batch_size=4)
    with pytest.raises(ValueError):
        losses.TopKRankingLoss("bpr-max", "linear", batch_size=0)


# ------------------------------------------------------------------------------------------ saturation
def _saturated_matrices():
    rng = np.random.RandomState(99)
    b, n = 4, 10
    mixed = np.where(rng.rand(b, n) < 0.5, 1e4, -1e4)
    mixed[0, 0], mixed[0, 1:] = -1e4, 1e4  # positive at the bottom, all negatives at the top
    mixed[1, 1], mixed[1, :1], mixed[1, 2:] = 1e4, -1e4, -1e4  # the reverse
    return {"all_neg": np.full((b, n), -1e4), "all_pos": np.full((b, n), 1e4), "mixed": mixed,
            "huge_spread": rng.normal(0, 1e4, size=(b, n))}


SATURATED = _saturated_matrices()
SATURATION_CASES = [(loss, act) for loss in RANKING_LOSSES for act in RANKING_ACTS] + \
                   [(loss, act) for loss, act in XE_LOSSES.items()]


@pytest.mark.parametrize("name", sorted(SATURATED))
@pytest.mark.parametrize("loss,act", SATURATION_CASES)
def test_saturated_scores_give_finite_losses_and_gradients(loss, act, name):
    o = tf.constant(SATURATED[name].astype(np.float32))
    b, n = o.shape
    col_valid = tf.constant([True] * (n - 2) + [False, True])  # one masked sample column too
    col_valid = tf.tensor_scatter_nd_update(col_valid, [[b - 1]], [False])  # and one inactive row's target
    with tf.GradientTape() as tape:
        tape.watch(o)
        per_row = losses.ranking_loss_per_row(loss, act, o, col_valid, bpreg=1.0)
        total = tf.reduce_sum(per_row[: b - 1])
    grad = tape.gradient(total, o)
    assert np.all(np.isfinite(per_row.numpy())), per_row.numpy()
    assert np.all(np.isfinite(grad.numpy())), grad.numpy()


@pytest.mark.parametrize("loss,act", SATURATION_CASES)
def test_huge_logq_gives_finite_losses_and_gradients(loss, act):
    rng = np.random.RandomState(4)
    b, n = 4, 9
    o = tf.constant(random_scores(rng, b, n).astype(np.float32))
    log_q = tf.constant(np.array([1e4, -1e4, 0.0, 5e3, 1e4, 1e4, -1e4, 30.0, 2e4], np.float32))
    layer = losses.TopKRankingLoss(loss, act, batch_size=b, bpreg=1.0, logq=1.0)
    with tf.GradientTape() as tape:
        tape.watch(o)
        total = layer(o, col_valid=tf.ones([n], tf.bool), row_valid=tf.ones([b], tf.bool), log_q=log_q)
    grad = tape.gradient(total, o)
    assert np.isfinite(float(total))
    assert np.all(np.isfinite(grad.numpy()))


def test_saturated_values_are_the_limits():
    """All scores equal (−1e4, linear): uniform negative softmax, σ(0) = ½ everywhere."""
    o = np.full((3, 7), -1e4)
    bprmax = lib_loss("bpr-max", "linear", o, bpreg=0.0)
    np.testing.assert_allclose(bprmax, np.log(2.0), rtol=1e-6)
    top1max = lib_loss("top1-max", "linear", o)
    np.testing.assert_allclose(top1max, 1.5, rtol=1e-6)  # σ(0) + σ(1e8)
    xe = lib_loss("cross-entropy", "softmax", o)
    np.testing.assert_allclose(xe, np.log(7.0), rtol=1e-5)
    # positive at −1e4, negatives at +1e4: bpr-max hits the ε floor, −log(1e−24)
    o = np.full((2, 5), 1e4)
    o[[0, 1], [0, 1]] = -1e4
    np.testing.assert_allclose(lib_loss("bpr-max", "linear", o, bpreg=0.0), -np.log(EPS_LOG), rtol=1e-5)


# ------------------------------------------------------------------------------------------ gradients
def _numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("loss,act,bpreg", [("bpr-max", "linear", 1.0), ("bpr-max", "elu-0.5", 0.5),
                                            ("cross-entropy", "softmax", 0.0), ("top1-max", "tanh", 0.0)])
def test_gradient_matches_finite_differences(loss, act, bpreg):
    rng = np.random.RandomState(17)
    b, n = 3, 7
    o = random_scores(rng, b, n, scale=1.0)
    log_q = _log_q_vector(rng, b, n)
    logq = 1.0 if loss in XE_LOSSES else 0.0
    row_w = np.array([1.0, 0.5, 2.0])  # weight rows differently so row mix-ups would show
    o_tf = tf.constant(o.astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(o_tf)
        per_row = losses.ranking_loss_per_row(loss, act, o_tf, tf.ones([n], tf.bool),
                                              log_q=tf.constant(log_q.astype(np.float32)), logq=logq, bpreg=bpreg)
        total = tf.reduce_sum(per_row * row_w.astype(np.float32))
    got = tape.gradient(total, o_tf).numpy()
    want = _numeric_grad(lambda x: (np_loss(loss, act, x, log_q=log_q, logq=logq, bpreg=bpreg) * row_w).sum(), o)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.abs(want).max() > 1e-2  # the check is not vacuous
