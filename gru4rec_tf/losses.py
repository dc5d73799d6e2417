"""Top-k gain ranking losses on sampled output columns (spec §4-§5).

The score matrix of a training step is ``[B, N]``: row ``i`` is slot ``i``'s hidden state scored against the
``N = B + S`` output columns ``[targets of the B slots, S shared samples]``; the diagonal holds the positives.
Rows whose slot is inactive (end of data) and their target columns are masked out, which is the same computation
as removing them (see :mod:`gru4rec_tf.batching`).

tensorflow-recommenders' ``SamplingProbablityCorrection`` clips the probabilities into ``[1e-6, 1]`` whereas the
specification corrects with raw (unnormalised) support counts scaled by ``logq``; its retrieval losses have no
BPR-max / TOP1-max. Neither matches the spec exactly, so these losses are written here.
"""
import tensorflow as tf
import tf_keras

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


def _negative_softmax(r, neg_mask):
    """Softmax over each row's negatives (diagonal and masked columns excluded, spec §5); not detached.

    The max is taken over the negatives only. That is mathematically the same softmax as the reference (which
    includes the masked 0 in the max) but cannot underflow to 0/0 when every score of a row is very negative.
    """
    return _masked_softmax(r, neg_mask)


def ranking_loss_per_row(loss: str, final_act: str, scores: tf.Tensor, col_valid: tf.Tensor,
                         log_q: tf.Tensor = None, logq: float = 0.0, bpreg: float = 0.0) -> tf.Tensor:
    """Per-row loss ``ℓ_i`` of spec §5 for ``[B, N]`` raw scores whose diagonal holds the positives.

    Args:
      loss: one of ``cross-entropy, xe_logit, top1, bpr, top1-max, bpr-max``.
      final_act: the final activation paired with the loss.
      scores: raw scores ``o_ij = h_i · W_y[Y_j] + b_y[Y_j]``, shape ``[B, N]`` with ``N >= B``.
      col_valid: bool ``[N]``; False for the target columns of inactive rows.
      log_q: ``[N]`` log sampling weights of the columns (logQ correction, applied by the XE losses only, as in the
        official ports).
      logq: logQ scale in ``[0, 1]``.
      bpreg: BPR-max score regularisation λ.

    Returns:
      ``[B]`` per-row losses; rows of inactive slots hold finite values that the caller must mask.
    """
    batch = tf.shape(scores)[0]
    n_cols = tf.shape(scores)[1]
    diag = tf.eye(batch, n_cols, dtype=tf.bool)
    valid = tf.broadcast_to(col_valid[tf.newaxis, :], tf.shape(scores))
    if loss in ("cross-entropy", "xe_logit") and log_q is not None and logq:
        scores = scores - logq * log_q[tf.newaxis, :]
    r = final_activation(final_act, scores, col_valid)
    if loss == "cross-entropy":
        return -tf.math.log(tf.linalg.diag_part(r) + _EPS_LOG)
    if loss == "xe_logit":
        return tf.linalg.diag_part(r)
    positive = tf.linalg.diag_part(r)[:, tf.newaxis]
    valid_f = tf.cast(valid, r.dtype)
    if loss == "top1":
        n_valid = tf.reduce_sum(tf.cast(col_valid, r.dtype))
        terms = (tf.sigmoid(r - positive) + tf.sigmoid(tf.square(r))) * valid_f
        return (tf.reduce_sum(terms, axis=1) - tf.sigmoid(tf.square(positive[:, 0]))) / n_valid
    if loss == "bpr":
        return tf.reduce_sum(tf.nn.softplus(r - positive) * valid_f, axis=1)
    softmax_neg = _negative_softmax(r, tf.logical_and(valid, tf.logical_not(diag)))
    if loss == "top1-max":
        return tf.reduce_sum(softmax_neg * (tf.sigmoid(r - positive) + tf.sigmoid(tf.square(r))), axis=1)
    if loss == "bpr-max":
        bpr = -tf.math.log(tf.reduce_sum(softmax_neg * tf.sigmoid(positive - r), axis=1) + _EPS_LOG)
        return bpr + bpreg * tf.reduce_sum(softmax_neg * tf.square(r), axis=1)
    raise ValueError(f"unknown loss {loss!r}")


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
                 **kwargs):
        super().__init__(**kwargs)
        params_lib.check_loss_pairing(loss, final_act)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.loss_name, self.final_act, self.batch_size = loss, final_act, batch_size
        self.bpreg, self.logq = float(bpreg), float(logq)

    def call(self, scores, col_valid, row_valid, log_q=None):
        per_row = ranking_loss_per_row(self.loss_name, self.final_act, scores, col_valid, log_q=log_q,
                                       logq=self.logq, bpreg=self.bpreg)
        per_row = tf.where(row_valid, per_row, tf.zeros_like(per_row))
        return tf.reduce_sum(per_row) / self.batch_size

    def get_config(self):
        return {**super().get_config(), "loss": self.loss_name, "final_act": self.final_act,
                "batch_size": self.batch_size, "bpreg": self.bpreg, "logq": self.logq}
