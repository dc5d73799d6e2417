"""Popularity-based negative sampling shared by the mini-batch (spec §3)."""
import numpy as np
import tensorflow as tf


class PopularitySampler(tf.Module):
    """Draws item indices with ``P(v) ∝ support(v) ** alpha`` (with replacement), on the TensorFlow graph.

    Sampling follows the specification: the cumulative distribution of ``support ** alpha`` in item-index order is
    normalised, its last value is forced to exactly 1, and uniform randoms are binary-searched into it. Samples are
    drawn for many steps at once (``sample(n_steps)`` returns a ``[n_steps, n_sample]`` store, one row per step),
    so sampling never stalls the training loop.

    ``table_rows`` (at least ``len(support)``): the rows of the item tables the samples index (a training run with
    a persistent compile cache pads them, :mod:`gru4rec_tf.train.compile_cache`); :meth:`item_log_q` accepts any of them
    (padding rows get 0). Its ``log supp`` table is a variable, not a constant of the traced loop, so the compiled
    loop is the same program whatever the day's supports are.

    Example:
      >>> sampler = PopularitySampler(support=np.array([10, 1, 5]), alpha=0.5, n_sample=4, seed=1)
      >>> sampler.sample(3).shape
      TensorShape([3, 4])
    """

    def __init__(self, support, alpha: float, n_sample: int, seed: int = 42, name: str = "sampler",
                 table_rows: int | None = None):
        super().__init__(name=name)
        support = np.asarray(support, dtype=np.float64)
        if support.ndim != 1 or len(support) == 0 or np.any(support <= 0):
            raise ValueError("support must be a non-empty vector of positive counts")
        if alpha < 0:
            raise ValueError(f"sample_alpha must be >= 0, got {alpha}")
        if n_sample < 0:
            raise ValueError(f"n_sample must be >= 0, got {n_sample}")
        self.n_sample = int(n_sample)
        self.alpha = float(alpha)
        self.cdf = popularity_cdf(support, alpha)
        self._cdf = tf.constant(self.cdf, dtype=tf.float64)
        table_rows = len(support) if table_rows is None else int(table_rows)
        if table_rows < len(support):
            raise ValueError(f"table_rows ({table_rows}) must be at least the number of items ({len(support)})")
        log_support = np.zeros(table_rows, dtype=np.float32)
        log_support[:len(support)] = np.log(support)
        self.log_support = tf.Variable(log_support, trainable=False, name="log_support")
        self._rng = tf.random.Generator.from_seed(seed)
        self._support = support
        self._alias = None  # (acceptance probability, alias) tensors, built on first use of draw_in_graph

    def draw_in_graph(self) -> tf.Tensor:
        """One step's ``[n_sample]`` int32 samples by Walker's alias method, for use inside a compiled loop.

        The same distribution as :meth:`sample` (``P(v) ∝ support(v) ** alpha``) from the same random generator
        (so :meth:`rng_state` resumes it), but O(1) per draw and XLA-friendly: one uniform integer (a column of the
        table), one uniform float, two gathers. Not the same stream as the inverse-CDF :meth:`sample`.
        """
        if self._alias is None:
            accept, alias = alias_table(self._support, self.alpha)
            with tf.init_scope():  # eager tensors, captured by every function that draws
                self._alias = (tf.constant(accept, tf.float64), tf.constant(alias, tf.int32))
        accept, alias = self._alias
        column = self._rng.uniform([self.n_sample], 0, len(self.cdf), dtype=tf.int32)
        coin = self._rng.uniform([self.n_sample], dtype=tf.float64)
        return tf.where(coin < tf.gather(accept, column), column, tf.gather(alias, column))

    def sample(self, n_steps) -> tf.Tensor:
        """Returns an int32 ``[n_steps, n_sample]`` store of sampled item indices."""
        shape = tf.stack([n_steps, self.n_sample])
        uniform = self._rng.uniform(tf.reshape(tf.reduce_prod(shape), [1]), dtype=tf.float64)
        return tf.reshape(tf.searchsorted(self._cdf, uniform, side="left", out_type=tf.int32), shape)

    def rng_state(self) -> np.ndarray:
        """The random generator's state (to resume the same stream with :meth:`set_rng_state`)."""
        return self._rng.state.numpy()

    def set_rng_state(self, state) -> None:
        self._rng.reset(state)

    def log_q(self, targets: tf.Tensor, samples: tf.Tensor) -> tf.Tensor:
        """logQ of the output columns ``[targets, samples]``: log supp for targets, α·log supp for samples."""
        return tf.concat([self.item_log_q(targets)[0], self.item_log_q(samples)[1]], axis=0)

    def item_log_q(self, items: tf.Tensor):
        """``(logQ as a target column, logQ as a sample column)`` of ``items``: ``log supp`` and ``α·log supp``."""
        log_support = tf.gather(self.log_support, items)
        return log_support, self.alpha * log_support


def popularity_cdf(support, alpha: float) -> np.ndarray:
    """Normalised cumulative distribution of ``support ** alpha`` in item-index order, last value exactly 1."""
    weights = np.asarray(support, dtype=np.float64) ** alpha
    cdf = np.cumsum(weights) / weights.sum()
    cdf[-1] = 1.0
    return cdf


def alias_table(support, alpha: float):
    """Walker's alias table of ``P(v) ∝ support(v) ** alpha`` (Vose's construction, float64).

    Returns ``(accept, alias)``: draw a column ``i`` uniformly, then ``i`` with probability ``accept[i]``, else
    ``alias[i]``; so ``P(v) = (accept[v] + Σ_{i: alias[i] = v} (1 - accept[i])) / n``.
    """
    weights = np.asarray(support, dtype=np.float64) ** alpha
    n = len(weights)
    scaled = weights * (n / weights.sum())
    accept, alias = np.ones(n, dtype=np.float64), np.arange(n, dtype=np.int64)
    small, large = list(np.flatnonzero(scaled < 1.0)), list(np.flatnonzero(scaled >= 1.0))
    scaled_list = scaled.tolist()
    while small and large:
        s, g = small.pop(), large[-1]
        accept[s], alias[s] = scaled_list[s], g
        scaled_list[g] -= 1.0 - scaled_list[s]
        if scaled_list[g] < 1.0:
            small.append(large.pop())
    # what is left is 1 up to rounding: always accepted (accept 1, alias itself)
    return accept, alias.astype(np.int32)
