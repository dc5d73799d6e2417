"""The exported model's top-k: exact scoring of the whole catalogue, the blocked top-k kernel, exclusions, candidates.

:class:`ItemTopK` scores ``h·W_yᵀ + b_y`` with the model's own variables and takes an exact top-k
(:func:`blocked_top_k`); :func:`top_k_items` picks how exclusions and candidate lists are applied (a filter after a
wider top-k for short exclusion lists, an additive ``[B, n_items]`` mask otherwise) and gives the same results on
every path. The serving module (:mod:`.serving_module`) calls these inside its traced signatures.

Example (three items; the hidden state scores them 2.0, 1.0 and 3.0 - 0.5):
  >>> top = ItemTopK(tf.Variable([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), tf.Variable([0.0, 0.0, -0.5]),
  ...                tf.constant([100, 200, 300], tf.int64))
  >>> scores, ids, n_rankable = top_k_items(top, tf.constant([[2.0, 1.0]]), width=2, k=tf.constant([2]),
  ...                                       excluded_idx=tf.constant([[2, -1]]))  # without item index 2 (ID 300)
  >>> ids.numpy().tolist(), scores.numpy().tolist(), n_rankable.numpy().tolist()
  ([[100, 200]], [[2.0, 1.0]], [2])
"""
import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

# Exclusion lists up to this width are applied after a top-(k + E) ([B, k + E, E] comparisons); longer ones by a
# [B, n_items] mask before the top-k. Both give the same results.
MAX_FILTERED_EXCLUSIONS = 256


class ItemTopK(tfrs.layers.factorized_top_k.BruteForce):
    """Exact top-k over the catalogue: tfrs ``BruteForce`` scoring ``h·W_yᵀ + b_y`` plus an additive mask.

    ``BruteForce.call`` does the scoring, the top-k and the index → original-ID gather. Three departures, for
    exactness, memory and speed:

    * ``BruteForce.index`` copies the candidate matrix into new variables; this layer uses the model's own ``W_y``
      and ``b_y`` variables (the GPU holds the item vectors once) and adds the item bias, so scores equal
      :meth:`GRU4Rec.score_all`.
    * Exclusions and candidate lists are an additive ``penalty`` (0 / -inf, see :func:`penalty_from_masks`) applied
      before the top-k, not ``query_with_exclusions``: that method reads the exclusion width statically (a
      signature with variable-length sessions fails to trace with a TypeError), raises when ``k`` plus the number
      of exclusions exceeds the catalogue (under TF Serving's batching that would fail every merged request), and
      returns excluded items when fewer than ``k`` others remain. It also cannot restrict to candidates.
    * The top-k is :func:`blocked_top_k` (two stages over blocks of ``block`` items; ``None`` = plain
      ``tf.math.top_k``): the same values and indices, ties included, at a fraction of the cost on CPU.

    The query is a pair ``(hidden [B, h], penalty [B, n] or None)``.

    Example (in an export: ``ItemTopK(model.item_vectors, model.item_bias, identifiers, block=80)``):
      >>> top = ItemTopK(tf.Variable([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), tf.Variable([0.0, 0.0, -0.5]),
      ...                tf.constant([100, 200, 300], tf.int64))
      >>> scores, ids = top((tf.constant([[2.0, 1.0]]), None), k=2)
      >>> ids.numpy().tolist(), scores.numpy().tolist()
      ([[300, 100]], [[2.5, 2.0]])
    """

    def __init__(self, item_vectors: tf.Variable, item_bias: tf.Variable, identifiers, name: str = "item_top_k",
                 block: int | None = None):
        super().__init__(k=10, name=name)
        if identifiers.shape[0] != item_vectors.shape[0]:
            raise ValueError(f"{identifiers.shape[0]} identifiers for {item_vectors.shape[0]} item vectors")
        self._candidates = item_vectors
        self._item_bias = item_bias
        self._identifiers = identifiers
        self.block = block

    @property
    def n_items(self) -> int:
        """Number of items in the catalogue (rows of the item vectors)."""
        return int(self._candidates.shape[0])

    def _compute_score(self, queries, candidates):
        hidden, penalty = queries
        scores = tf.matmul(hidden, candidates, transpose_b=True) + self._item_bias
        return scores if penalty is None else scores + penalty

    def top_indices(self, queries, k):
        """``(scores [B, k], item indices [B, k])``, best first, ties by lower index (as ``tf.math.top_k``)."""
        return blocked_top_k(self._compute_score(queries, self._candidates), k, self.block)

    def identifiers_of(self, indices):
        """Original item IDs of item indices."""
        return tf.gather(self._identifiers, indices)

    def call(self, queries, k=None):
        values, indices = self.top_indices(queries, self._k if k is None else k)
        return values, self.identifiers_of(indices)


# ---- the kernel ----------------------------------------------------------------------------------------------------


def default_top_k_block(n_items: int, typical_k: int = 20) -> int | None:
    """Block size of :func:`blocked_top_k` for a catalogue: about ``sqrt(n_items / typical_k)`` (which balances the
    two stages), preferring a divisor of ``n_items`` (no padding); ``None`` (plain top-k) for small catalogues.

    Example:
      >>> default_top_k_block(100_000), default_top_k_block(1000)
      (80, None)
    """
    if n_items < 4096:
        return None
    target = max(2, round((n_items / typical_k) ** 0.5))
    for delta in range(target // 2):
        for block in (target + delta, target - delta):
            if n_items % block == 0:
                return block
    return target


def blocked_top_k(scores, k, block: int | None):
    """``tf.math.top_k(scores, k)`` of ``[B, n]`` scores (``n`` static), computed in two exact stages.

    The maxima of blocks of ``block`` consecutive items are ranked first; the ``k`` best blocks (ties: lower block
    first, as ``top_k``) hold the top-k items *with ``top_k``'s tie order*: every block holding a selected item
    either has a maximum above the k-th value (fewer than k such blocks) or, at that value, a lower-indexed one than
    any block left out, which would otherwise give k items ranked before it. Those blocks, in index order, are
    ranked in full, so ties among their items again resolve by lower index. Returns the same values and indices as
    ``tf.math.top_k`` for ``0 <= k <= n`` (NaN scores aside); ``block`` None or >= n is ``tf.math.top_k`` itself.

    Example (a tie at 0.9: the lower index first, as ``tf.math.top_k``):
      >>> values, indices = blocked_top_k(tf.constant([[0.1, 0.9, 0.3, 0.9, 0.5]]), 3, block=2)
      >>> indices.numpy().tolist()
      [[1, 3, 4]]
    """
    n = int(scores.shape[1])
    if block is None or block >= n:
        return tf.math.top_k(scores, k)
    n_blocks = -(-n // block)
    batch = tf.shape(scores)[0]
    if n_blocks * block != n:  # -inf padding at the end: never ranked before a real item, as 0 <= k <= n
        scores = tf.concat([scores, tf.fill([batch, n_blocks * block - n], tf.constant(-np.inf, tf.float32))], 1)
    blocks = tf.reshape(scores, [batch, n_blocks, block])
    n_best = tf.minimum(k, n_blocks)
    best = tf.math.top_k(tf.reduce_max(blocks, axis=2), n_best).indices
    best = (n_blocks - 1) - tf.math.top_k((n_blocks - 1) - best, n_best).values  # ascending block order
    pooled = tf.reshape(tf.gather(blocks, best, batch_dims=1), [batch, n_best * block])
    values, pos = tf.math.top_k(pooled, k)
    indices = tf.gather(best, pos // block, batch_dims=1) * block + pos % block
    return values, indices


# ---- masks ---------------------------------------------------------------------------------------------------------


def index_mask(idx, n_items: int):
    """``[B, n_items]`` bool: True where the item index appears in the row of ``idx`` ``[B, E]`` (-1 = nothing)."""
    rows = tf.broadcast_to(tf.range(tf.shape(idx)[0])[:, tf.newaxis], tf.shape(idx))
    valid = idx >= 0
    coords = tf.stack([tf.boolean_mask(rows, valid), tf.boolean_mask(idx, valid)], axis=1)
    counts = tf.scatter_nd(coords, tf.ones(tf.shape(coords)[:1], tf.int32), [tf.shape(idx)[0], n_items])
    return counts > 0


def count_distinct(idx):
    """``[B]`` int32: the number of distinct item indices (>= 0) in each row of ``idx`` ``[B, E]``."""
    ordered = tf.math.top_k(idx, tf.shape(idx)[1]).values  # descending, so equal indices are adjacent
    previous = tf.concat([tf.fill([tf.shape(idx)[0], 1], -1), ordered[:, :-1]], axis=1)
    return tf.reduce_sum(tf.cast(tf.logical_and(ordered >= 0, tf.not_equal(ordered, previous)), tf.int32), axis=1)


def penalty_from_masks(excluded, allowed=None):
    """Additive score mask (0 / -inf) and the number of rankable items per row."""
    rankable = tf.logical_not(excluded) if allowed is None else tf.logical_and(allowed, tf.logical_not(excluded))
    penalty = tf.where(rankable, tf.constant(0.0), tf.constant(-np.inf, tf.float32))
    return penalty, tf.reduce_sum(tf.cast(rankable, tf.int32), axis=1)


# ---- the ways to rank ----------------------------------------------------------------------------------------------
# Each returns (scores [B, width], original IDs [B, width], number of rankable items [B]).


def top_k_masked(top: ItemTopK, hidden, width, excluded_idx, candidate_idx=None):
    """Top-``width`` under an additive ``[B, n_items]`` mask of the exclusions (and of the candidate list)."""
    excluded = index_mask(excluded_idx, top.n_items)
    allowed = None if candidate_idx is None else index_mask(candidate_idx, top.n_items)
    penalty, n_rankable = penalty_from_masks(excluded, allowed)
    return (*top((hidden, penalty), k=width), n_rankable)


def top_k_filtered(top: ItemTopK, hidden, width, excluded_idx):
    """A short exclusion list: rank ``width + E`` items, then drop the excluded ones (no ``[B, n]`` mask)."""
    wide = tf.minimum(width + tf.shape(excluded_idx)[1], top.n_items)
    scores, idx = top.top_indices((hidden, None), k=wide)
    hit = tf.reduce_any(tf.equal(idx[:, :, tf.newaxis], excluded_idx[:, tf.newaxis, :]), axis=2)
    order = tf.math.top_k(tf.where(hit, -2 * wide, 0) - tf.range(wide)[tf.newaxis, :], width).indices
    n_rankable = top.n_items - count_distinct(excluded_idx)
    return (tf.gather(scores, order, batch_dims=1), top.identifiers_of(tf.gather(idx, order, batch_dims=1)),
            n_rankable)


def top_k_items(top: ItemTopK, hidden, width, k, excluded_idx, candidate_idx=None):
    """Top-``width`` items of the last layer's ``hidden`` state without the rows' excluded items.

    ``excluded_idx`` and ``candidate_idx`` are item indices ``[B, *]`` (-1 = none); ``k`` ``[B]`` only gives the
    batch shape of the rankable counts. Without a candidate list, a batch with nothing to exclude (the common case)
    skips the mask work, and exclusion lists up to :data:`MAX_FILTERED_EXCLUSIONS` wide are filtered out of a wider
    top-k; a candidate list always takes the mask. All paths give the same results.
    """
    if candidate_idx is not None:
        return top_k_masked(top, hidden, width, excluded_idx, candidate_idx)

    def masked():
        return top_k_masked(top, hidden, width, excluded_idx)

    def filtered():
        return top_k_filtered(top, hidden, width, excluded_idx)

    def excluding():
        return tf.cond(tf.less(tf.shape(excluded_idx)[1], MAX_FILTERED_EXCLUSIONS + 1), filtered, masked)

    def unmasked():  # nothing to exclude, whole catalogue (saves [B, n_items] of mask work)
        return (*top((hidden, None), k=width), tf.fill(tf.shape(k), top.n_items))

    return tf.cond(tf.reduce_any(excluded_idx >= 0), excluding, unmasked)
