"""Top-k gain ranking losses on sampled output columns (spec §4-§5).

The score matrix of a training step is ``[B, N]``: row ``i`` is slot ``i``'s hidden state scored against the
``N = B + S`` output columns ``[targets of the B slots, S shared samples]``; the diagonal holds the positives.
Rows whose slot is inactive (end of data) and their target columns are masked out, which is the same computation
as removing them (see :mod:`gru4rec_tf.data.batching`).

tensorflow-recommenders' ``SamplingProbablityCorrection`` clips the probabilities into ``[1e-6, 1]`` whereas the
specification corrects with raw (unnormalised) support counts scaled by ``logq``; its retrieval losses have no
BPR-max / TOP1-max. Neither matches the spec exactly, so these losses are written here.
"""
import tensorflow as tf
import tf_keras

from gru4rec_tf.model import fused_losses
from gru4rec_tf import params as params_lib

_EPS_LOG = 1e-24
_NEG_LARGE = -1e30  # stands for -inf in masked softmaxes; exp() of it minus any finite max is exactly 0


def final_activation(name: str, scores: tf.Tensor, col_valid: tf.Tensor) -> tf.Tensor:
    """Applies the final activation ``name`` (spec §4) to ``[B, N]`` scores; ``col_valid`` masks columns."""
    kind, args = params_lib.parse_final_act(name)
    if kind == "linear":
        return scores
    if kind == "relu":
        return tf.nn.relu(scores)
    if kind == "tanh":
        return tf.tanh(scores)
    if kind == "leaky":
        return tf.where(scores >= 0, scores, args[0] * scores)
    if kind == "elu":
        return tf.where(scores >= 0, scores, args[0] * tf.math.expm1(tf.minimum(scores, 0.0)))
    if kind == "selu":
        return args[0] * tf.where(scores >= 0, scores, args[1] * tf.math.expm1(tf.minimum(scores, 0.0)))
    if kind == "softmax":
        return _masked_softmax(scores, col_valid[tf.newaxis, :])
    if kind == "softmax_logit":
        return -_masked_log_softmax(scores, col_valid[tf.newaxis, :])
    raise ValueError(f"unknown final activation {name!r}")


def _masked_softmax(x, mask):
    x = tf.where(mask, x, _NEG_LARGE)
    e = tf.exp(x - tf.reduce_max(x, axis=1, keepdims=True)) * tf.cast(mask, x.dtype)
    return e / tf.reduce_sum(e, axis=1, keepdims=True)


def _masked_log_softmax(x, mask):
    x = tf.where(mask, x, _NEG_LARGE)
    shifted = x - tf.reduce_max(x, axis=1, keepdims=True)
    log_z = tf.math.log(tf.reduce_sum(tf.exp(shifted) * tf.cast(mask, x.dtype), axis=1, keepdims=True))
    return shifted - log_z


def ranking_loss_per_row(loss: str, final_act: str, scores: tf.Tensor, col_valid: tf.Tensor,
                         log_q: tf.Tensor = None, logq: float = 0.0, bpreg: float = 0.0) -> tf.Tensor:
    """Per-row loss ``ℓ_i`` of spec §5 for ``[B, N]`` raw scores whose diagonal holds the positives.

    Args:
      loss: one of ``cross-entropy, xe_logit, top1, bpr, top1-max, bpr-max``.
      final_act: the final activation paired with the loss.
      scores: raw scores ``o_ij = h_i · W_y[Y_j] + b_y[Y_j]``, shape ``[B, N]`` with ``N >= B``: columns
        ``[targets of the B rows, shared samples]``.
      col_valid: bool ``[N]``; False for the target columns of inactive rows.
      log_q: ``[N]`` log sampling weights of the columns (logQ correction, applied by the XE losses only, as in the
        official ports).
      logq: logQ scale in ``[0, 1]``.
      bpreg: BPR-max score regularisation λ.

    Returns:
      ``[B]`` per-row losses; rows of inactive slots hold finite values that the caller must mask.
    """
    batch, n_cols = tf.shape(scores)[0], tf.shape(scores)[1]
    valid = tf.cast(col_valid, scores.dtype)
    is_target = tf.cast(tf.range(n_cols) < batch, scores.dtype)
    return weighted_loss_per_row(loss, final_act, scores, valid * is_target, valid * (1.0 - is_target),
                                 tf.range(batch), log_q, log_q, logq=logq, bpreg=bpreg)


def weighted_loss_per_row(loss: str, final_act: str, scores, target_weight, sample_weight, positive,
                          log_q_target=None, log_q_sample=None, logq: float = 0.0, bpreg: float = 0.0):
    """Per-row losses of spec §5 on the *distinct* items of a step, each weighted by its number of columns.

    A step's output columns ``[targets, samples]`` often repeat items; a repeated item has the same score in every
    one of its columns, so every sum over columns is a sum over distinct items weighted by their column counts.
    Only column ``i`` of row ``i`` (its positive) is special: it is removed from that row's negatives. This is
    exactly the column formulation (``ranking_loss_per_row`` calls this with one "item" per column) on a smaller
    ``[B, U]`` matrix, and its gradients come out summed per distinct item.

    Args:
      scores: ``[B, U]`` raw scores of the distinct items.
      target_weight: ``[U]`` number of active target columns holding each item (logQ uses ``log supp``).
      sample_weight: ``[U]`` number of sample columns holding each item (logQ uses ``α·log supp``).
      positive: ``[B]`` index in ``[0, U)`` of each row's target item.
      log_q_target, log_q_sample: ``[U]`` logQ of the item as a target column and as a sample column.
    """
    weight = target_weight + sample_weight
    positive_mask = tf.one_hot(positive, tf.shape(scores)[1], dtype=scores.dtype)
    if loss in ("cross-entropy", "xe_logit"):
        return _softmax_loss(loss, scores, target_weight, sample_weight, positive_mask, log_q_target, log_q_sample,
                             logq)
    r = final_activation(final_act, scores, weight > 0)
    r_pos = tf.reduce_sum(r * positive_mask, axis=1, keepdims=True)
    w = weight[tf.newaxis, :]
    if loss == "top1":
        terms = w * (tf.sigmoid(r - r_pos) + tf.sigmoid(tf.square(r)))
        return (tf.reduce_sum(terms, axis=1) - tf.sigmoid(tf.square(r_pos[:, 0]))) / tf.reduce_sum(weight)
    if loss == "bpr":
        return tf.reduce_sum(w * tf.nn.softplus(r - r_pos), axis=1)
    softmax_neg = _weighted_softmax(r, tf.maximum(w - positive_mask, 0.0))
    if loss == "top1-max":
        return tf.reduce_sum(softmax_neg * (tf.sigmoid(r - r_pos) + tf.sigmoid(tf.square(r))), axis=1)
    if loss == "bpr-max":
        bpr = -tf.math.log(tf.reduce_sum(softmax_neg * tf.sigmoid(r_pos - r), axis=1) + _EPS_LOG)
        return bpr + bpreg * tf.reduce_sum(softmax_neg * tf.square(r), axis=1)
    raise ValueError(f"unknown loss {loss!r}")


def _weighted_softmax(x, weights):
    """``weights·exp(x) / Σ weights·exp(x)`` per row; entries of weight 0 are excluded, including from the max.

    With weights 0/1 this is the softmax over a row's negatives of spec §5 (not detached). Taking the max over the
    negatives only is the same softmax as the reference (which includes a masked 0) but cannot underflow to 0/0
    when every score of a row is very negative.
    """
    kept = weights > 0
    x = tf.where(kept, x, _NEG_LARGE)
    e = weights * tf.exp(x - tf.reduce_max(x, axis=1, keepdims=True))
    return e / tf.reduce_sum(e, axis=1, keepdims=True)


def _softmax_loss(loss, scores, target_weight, sample_weight, positive_mask, log_q_target, log_q_sample, logq):
    """Cross-entropy (``-log(p_ii + 1e-24)``) or xe_logit (``-log p_ii``) over the weighted columns.

    With logQ, an item's target columns and sample columns have different corrections, so they enter the
    softmax denominator as two weighted terms.
    """
    if logq and log_q_target is not None:
        x_target = scores - logq * log_q_target[tf.newaxis, :]
        x_sample = scores - logq * log_q_sample[tf.newaxis, :]
    else:
        x_target = x_sample = scores
    x_target = tf.where((target_weight > 0)[tf.newaxis, :], x_target, _NEG_LARGE)
    x_sample = tf.where((sample_weight > 0)[tf.newaxis, :], x_sample, _NEG_LARGE)
    top = tf.maximum(tf.reduce_max(x_target, axis=1, keepdims=True), tf.reduce_max(x_sample, axis=1, keepdims=True))
    denominator = tf.reduce_sum(target_weight * tf.exp(x_target - top) + sample_weight * tf.exp(x_sample - top),
                                axis=1)
    x_positive = tf.reduce_sum(x_target * positive_mask, axis=1) - top[:, 0]
    if loss == "xe_logit":
        return tf.math.log(denominator) - x_positive
    return -tf.math.log(tf.exp(x_positive) / denominator + _EPS_LOG)


class TopKRankingLoss(tf_keras.layers.Layer):
    """Keras layer computing the GRU4Rec step loss ``Σ_i ℓ_i / B`` on sampled columns (spec §5).

    The sum runs over active rows only and is divided by the *configured* batch size ``B`` even when fewer rows are
    active, as in all official versions.

    Example:
      >>> layer = TopKRankingLoss("bpr-max", "elu-0.5", batch_size=2, bpreg=1.0)
      >>> scores = tf.constant([[2.0, 0.1, -1.0], [0.3, 1.5, 0.2]])
      >>> loss = layer(scores, col_valid=tf.constant([True, True, True]), row_valid=tf.constant([True, True]))
    """

    def __init__(self, loss: str, final_act: str, batch_size: int, bpreg: float = 0.0, logq: float = 0.0,
                 fused_gradient: bool = True, **kwargs):
        super().__init__(**kwargs)
        params_lib.check_loss_pairing(loss, final_act)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.loss_name, self.final_act, self.batch_size = loss, final_act, batch_size
        self.bpreg, self.logq = float(bpreg), float(logq)
        # BPR-max and cross-entropy have closed-form score gradients (fused_losses): same values, fewer passes.
        self.fused_gradient = fused_gradient and fused_losses.supports(loss, final_act)

    def call(self, scores, col_valid, row_valid, log_q=None):
        """Step loss from ``[B, N]`` column scores (diagonal = positives); see :func:`ranking_loss_per_row`."""
        per_row = ranking_loss_per_row(self.loss_name, self.final_act, scores, col_valid, log_q=log_q,
                                       logq=self.logq, bpreg=self.bpreg)
        return self._reduce(per_row, row_valid)

    def from_item_scores(self, scores, target_weight, sample_weight, positive, row_valid, log_q_target=None,
                         log_q_sample=None):
        """Step loss from ``[B, U]`` scores of the distinct items; see :func:`weighted_loss_per_row`."""
        per_row_fn = fused_losses.fused_loss_per_row if self.fused_gradient else weighted_loss_per_row
        per_row = per_row_fn(self.loss_name, self.final_act, scores, target_weight, sample_weight,
                                        positive, log_q_target, log_q_sample, logq=self.logq, bpreg=self.bpreg)
        return self._reduce(per_row, row_valid)

    def _reduce(self, per_row, row_valid):
        per_row = tf.where(row_valid, per_row, tf.zeros_like(per_row))
        return tf.reduce_sum(per_row) / self.batch_size

    def get_config(self):
        return {**super().get_config(), "loss": self.loss_name, "final_act": self.final_act,
                "batch_size": self.batch_size, "bpreg": self.bpreg, "logq": self.logq,
                "fused_gradient": self.fused_gradient}
