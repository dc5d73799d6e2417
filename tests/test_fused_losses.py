"""The hand-derived loss gradients equal TensorFlow's gradients of the reference losses."""
import numpy as np
import pytest
import tensorflow as tf

from gru4rec_tf.model import fused_losses
from gru4rec_tf.model import losses

CASES = [("bpr-max", "elu-0.5"), ("bpr-max", "elu-1"), ("bpr-max", "linear"), ("bpr-max", "tanh"),
         ("bpr-max", "relu"), ("bpr-max", "leaky-0.1"), ("cross-entropy", "softmax"),
         ("xe_logit", "softmax_logit")]


def _step(seed, n_rows=6, n_items=11):
    """Scores of a step's distinct items with repeated columns, unused items and a row whose target is repeated."""
    rng = np.random.default_rng(seed)
    target_weight = rng.integers(0, 3, n_items).astype(np.float32)
    sample_weight = rng.integers(0, 3, n_items).astype(np.float32)
    positive = rng.integers(0, n_items, n_rows)
    target_weight[positive] = np.maximum(target_weight[positive], 1.0)
    target_weight[positive[0]] = 2.0  # the first row's target is also another row's target
    log_q = rng.normal(size=n_items).astype(np.float32)
    return (tf.constant(rng.normal(size=(n_rows, n_items)) * 2, tf.float32), tf.constant(target_weight),
            tf.constant(sample_weight), tf.constant(positive, tf.int32), tf.constant(log_q),
            tf.constant(0.5 * log_q), tf.constant(rng.normal(size=n_rows), tf.float32))


def _loss_and_grad(fn, loss, final_act, scores, target_weight, sample_weight, positive, lq_target, lq_sample,
                   upstream, logq):
    with tf.GradientTape() as tape:
        tape.watch(scores)
        per_row = fn(loss, final_act, scores, target_weight, sample_weight, positive, lq_target, lq_sample,
                     logq=logq, bpreg=0.7)
        total = tf.reduce_sum(per_row * upstream)
    return per_row.numpy(), tape.gradient(total, scores).numpy()


@pytest.mark.parametrize("loss,final_act", CASES)
@pytest.mark.parametrize("logq", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_fused_equals_reference(loss, final_act, logq, seed):
    step = _step(seed)
    want = _loss_and_grad(losses.weighted_loss_per_row, loss, final_act, *step[:6], step[6], logq)
    got = _loss_and_grad(fused_losses.fused_loss_per_row, loss, final_act, *step[:6], step[6], logq)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-5 * np.abs(want[1]).max())
    assert np.abs(want[1]).max() > 0.1  # a gradient worth comparing


def test_layer_uses_fused_gradient_only_where_derived():
    assert losses.TopKRankingLoss("bpr-max", "elu-0.5", batch_size=2).fused_gradient
    assert losses.TopKRankingLoss("cross-entropy", "softmax", batch_size=2).fused_gradient
    assert not losses.TopKRankingLoss("top1-max", "linear", batch_size=2).fused_gradient
    assert not losses.TopKRankingLoss("bpr-max", "elu-0.5", batch_size=2, fused_gradient=False).fused_gradient
    with pytest.raises(ValueError, match="no fused gradient for loss 'top1'"):
        fused_losses.fused_loss_per_row("top1", "linear", *_step(0)[:4])
