"""BPR-max and cross-entropy step losses with hand-derived gradients, for the compiled training step.

:func:`gru4rec_tf.model.losses.weighted_loss_per_row` is the reference: it is written for clarity and differentiated by
TensorFlow, whose gradient graph re-materialises several ``[B, U]`` temporaries and reductions (about a quarter of a
config-A step on CPU). The functions here compute the same per-row losses and return the closed-form gradient of
the scores (spec §5), so that the backward pass is a handful of fused elementwise passes. Tests check both against
the reference (values and gradients to float tolerance).

Derivations (row ``i`` implicit; ``s`` = softmax over the weighted negatives, ``σ_j = sigmoid(r_pos − r_j)``,
``A = Σ s·σ``, ``R = Σ s·r²``, ``ℓ = −log(A + ε) + λR`` for BPR-max)::

    ∂ℓ/∂r_j   = −[s_j(σ_j − A) − s_j σ_j(1 − σ_j)] / (A + ε) + λ[s_j(r_j² − R) + 2 s_j r_j]
    ∂ℓ/∂r_pos = −Σ_j s_j σ_j(1 − σ_j) / (A + ε)          (added to the positive's column)
    ∂ℓ/∂x     = ∂ℓ/∂r · f'(x)                            (f: the final activation)

and, for cross-entropy over the weighted columns with softmax weights ``p`` and ``P = p_pos``:
``∂ℓ/∂x_j = −P/(P + ε)·([j = pos] − p_j)`` (``xe_logit``: ``p_j − [j = pos]``).

Example (two rows, three distinct items; row ``i``'s positive is item ``positive[i]``):
  >>> scores = tf.constant([[2.0, 0.1, -1.0], [0.3, 1.5, 0.2]])
  >>> target_weight, sample_weight = tf.constant([1.0, 1.0, 0.0]), tf.constant([0.0, 1.0, 2.0])
  >>> positive = tf.constant([0, 1])
  >>> loss = fused_loss_per_row("bpr-max", "elu-0.5", scores, target_weight, sample_weight, positive, bpreg=1.0)
  >>> loss.numpy().round(4)
  array([0.1669, 1.7101], dtype=float32)
  >>> from gru4rec_tf.model.losses import weighted_loss_per_row   # the reference: same values
  >>> reference = weighted_loss_per_row("bpr-max", "elu-0.5", scores, target_weight, sample_weight, positive,
  ...                                   bpreg=1.0)
  >>> float(tf.reduce_max(tf.abs(loss - reference))) < 1e-6
  True
"""
import tensorflow as tf

from gru4rec_tf import params as params_lib

_EPS_LOG = 1e-24
_NEG_LARGE = -1e30
_XE = ("cross-entropy", "xe_logit")


def supports(loss: str, final_act: str) -> bool:
    """Whether :func:`fused_loss_per_row` has a closed-form gradient for this loss and final activation."""
    if loss in _XE:
        return True
    return loss == "bpr-max" and params_lib.parse_final_act(final_act)[0] in ("linear", "elu", "relu", "tanh",
                                                                              "leaky")


def fused_loss_per_row(loss: str, final_act: str, scores, target_weight, sample_weight, positive,
                       log_q_target=None, log_q_sample=None, logq: float = 0.0, bpreg: float = 0.0):
    """Per-row losses of :func:`gru4rec_tf.model.losses.weighted_loss_per_row`, with a hand-derived score gradient.

    Only ``scores`` receives a gradient (the weights and logQ terms are constants of the step).
    """
    if not supports(loss, final_act):
        raise ValueError(f"no fused gradient for loss {loss!r} with final_act {final_act!r}")
    positive_mask = tf.one_hot(positive, tf.shape(scores)[1], dtype=scores.dtype)
    if loss in _XE:
        return _cross_entropy(loss, scores, target_weight, sample_weight, positive_mask, log_q_target,
                              log_q_sample, logq)
    return _bpr_max(final_act, scores, target_weight + sample_weight, positive_mask, bpreg)


def _activation(final_act: str, x):
    """``(f(x), f'(x))`` of a final activation."""
    kind, args = params_lib.parse_final_act(final_act)
    if kind == "linear":
        return x, tf.ones_like(x)
    if kind == "elu":
        negative = args[0] * tf.math.expm1(tf.minimum(x, 0.0))
        return tf.where(x >= 0, x, negative), tf.where(x >= 0, 1.0, negative + args[0])
    if kind == "relu":
        return tf.nn.relu(x), tf.cast(x > 0, x.dtype)
    if kind == "tanh":
        r = tf.tanh(x)
        return r, 1.0 - tf.square(r)
    if kind == "leaky":
        return tf.where(x >= 0, x, args[0] * x), tf.where(x >= 0, 1.0, args[0])
    raise ValueError(f"no fused gradient for final_act {final_act!r}")


def _bpr_max(final_act, scores, weight, positive_mask, bpreg):
    @tf.custom_gradient
    def bpr_max(x):
        r, dr = _activation(final_act, x)
        negative_weight = tf.maximum(weight[tf.newaxis, :] - positive_mask, 0.0)
        r_kept = tf.where(negative_weight > 0, r, _NEG_LARGE)
        e = negative_weight * tf.exp(r_kept - tf.reduce_max(r_kept, axis=1, keepdims=True))
        s = tf.math.divide_no_nan(e, tf.reduce_sum(e, axis=1, keepdims=True))
        r_pos = tf.reduce_sum(r * positive_mask, axis=1, keepdims=True)
        sig = tf.sigmoid(r_pos - r)
        s_sig = s * sig
        a = tf.reduce_sum(s_sig, axis=1, keepdims=True)
        r2 = tf.square(r)
        reg = tf.reduce_sum(s * r2, axis=1, keepdims=True)
        per_row = -tf.math.log(a + _EPS_LOG) + bpreg * reg

        def grad(upstream):
            inv = 1.0 / (a + _EPS_LOG)
            s_slope = s_sig * (1.0 - sig)
            g = -inv * (s_sig - s * a - s_slope) - positive_mask * (inv * tf.reduce_sum(s_slope, 1, keepdims=True))
            if bpreg:
                g += bpreg * s * (r2 - reg + 2.0 * r)
            return upstream[:, tf.newaxis] * g * dr

        return per_row[:, 0], grad

    return bpr_max(scores)


def _cross_entropy(loss, scores, target_weight, sample_weight, positive_mask, log_q_target, log_q_sample, logq):
    use_logq = bool(logq) and log_q_target is not None

    @tf.custom_gradient
    def cross_entropy(x):
        x_target = x - logq * log_q_target[tf.newaxis, :] if use_logq else x
        x_sample = x - logq * log_q_sample[tf.newaxis, :] if use_logq else x
        x_target = tf.where((target_weight > 0)[tf.newaxis, :], x_target, _NEG_LARGE)
        x_sample = tf.where((sample_weight > 0)[tf.newaxis, :], x_sample, _NEG_LARGE)
        top = tf.maximum(tf.reduce_max(x_target, axis=1, keepdims=True),
                         tf.reduce_max(x_sample, axis=1, keepdims=True))
        mass = target_weight * tf.exp(x_target - top) + sample_weight * tf.exp(x_sample - top)
        denominator = tf.reduce_sum(mass, axis=1, keepdims=True)
        x_positive = tf.reduce_sum(x_target * positive_mask, axis=1, keepdims=True) - top
        if loss == "xe_logit":
            per_row = tf.math.log(denominator) - x_positive
        else:
            p_positive = tf.exp(x_positive) / denominator
            per_row = -tf.math.log(p_positive + _EPS_LOG)

        def grad(upstream):
            g = mass / denominator - positive_mask
            if loss != "xe_logit":
                g *= p_positive / (p_positive + _EPS_LOG)
            return upstream[:, tf.newaxis] * g

        return per_row[:, 0], grad

    return cross_entropy(scores)
