"""Distinct item rows of many training steps at once, found before the compiled training loop runs.

A training step reads and updates only the item rows its columns name (targets, shared samples and, with a shared
embedding, the inputs). Popularity sampling repeats items, so a step names far fewer distinct rows than columns.
Finding them needs a sort, which XLA does slowly on CPU and ``tf.unique`` cannot do inside an XLA computation, so
the rows of a whole chunk of steps are found here with one vectorised NumPy sort (in the trainer's prefetch thread,
while the previous chunk trains) and handed to the compiled loop as padded, static-shape arrays.
"""
import collections

import numpy as np


class ChunkRows(collections.namedtuple("ChunkRows", "unique position n_unique")):
    """Distinct rows of ``K`` steps with ``N`` occurrences each, over a table of ``n_items`` rows.

    Attributes:
      unique: int32 ``[K, min(N, n_items)]``; row ``k`` holds step ``k``'s distinct values in ascending order, then,
        as padding, the smallest items step ``k`` does not use.
      position: int32 ``[K, N]``; ``unique[k, position[k, j]]`` is occurrence ``j`` of step ``k`` (masked
        occurrences point to the first kept occurrence's row).
      n_unique: int32 ``[K]``; the number of distinct kept values of each step (0 when a step keeps none).
    """

    def steps(self, begin: int, end: int) -> "ChunkRows":
        """The rows of steps ``[begin, end)``."""
        return ChunkRows(self.unique[begin:end], self.position[begin:end], self.n_unique[begin:end])


def distinct_rows(values, mask, n_items: int) -> ChunkRows:
    """Distinct kept values of every row of ``values``: the batched form of ``tf.unique`` per training step.

    Args:
      values: int ``[K, N]`` item indices in ``[0, n_items)`` (``N < 2**20``).
      mask: bool ``[K, N]``; False drops an occurrence. A dropped occurrence is mapped to the row of its step's
        first kept occurrence, so it adds no row of its own (its values in the step must be zero, as the gradients
        of inactive slots are). Dropped occurrences may hold any value.
      n_items: the number of rows of the table the values index.

    Returns:
      :class:`ChunkRows` whose ``unique`` has ``min(N, n_items)`` columns: a step's distinct values in ascending
      order, then, as padding, the smallest items the step does not use. So every index of a row is distinct, and
      a padding row (zero gradient) can be written back unchanged without clashing with a real one.

    Example:
      >>> rows = distinct_rows(np.array([[5, 2, 5, 9]]), np.array([[True, True, True, False]]), n_items=10)
      >>> rows.unique.tolist(), rows.position.tolist(), rows.n_unique.tolist()
      ([[2, 5, 0, 1]], [[1, 0, 1, 1]], [2])
    """
    values, mask = np.asarray(values), np.asarray(mask, dtype=bool)
    if values.ndim != 2 or values.shape != mask.shape:
        raise ValueError(f"values and mask must be [K, N] arrays of one shape, got {values.shape} and {mask.shape}")
    n_steps, width = values.shape
    if not 1 <= width < 2 ** 20:
        raise ValueError(f"a step must have 1 to 2**20 - 1 occurrences, got {width}")
    any_kept = mask.any(axis=1)
    first_kept = values[np.arange(n_steps), mask.argmax(axis=1)]
    kept_values = np.where(mask, values, first_kept[:, np.newaxis]).astype(np.int64)
    if np.any(kept_values[any_kept] < 0) or np.any(kept_values[any_kept] >= n_items):
        raise ValueError(f"item indices must be in [0, {n_items})")
    # One sort of (value << bits | occurrence) keys gives both the sorted values and the permutation; int32 keys
    # (a faster sort) whenever the values leave room for the occurrence bits.
    bits = max(1, (width - 1).bit_length())
    key_type = np.int32 if kept_values.max(initial=0) < 2 ** (31 - bits) else np.int64
    keys = (kept_values.astype(key_type) << bits) | np.arange(width, dtype=key_type)
    keys.sort(axis=1)
    order, sorted_values = keys & (2 ** bits - 1), (keys >> bits).astype(np.int32)
    starts = np.ones((n_steps, width), dtype=bool)
    np.not_equal(sorted_values[:, 1:], sorted_values[:, :-1], out=starts[:, 1:])
    group = np.cumsum(starts, axis=1, dtype=np.int32) - 1
    step_offset = (np.arange(n_steps) * width)[:, np.newaxis]
    position = np.empty(n_steps * width, dtype=np.int32)
    position[(order + step_offset).ravel()] = group.ravel()
    unique = np.zeros(n_steps * width, dtype=np.int32)
    unique[(group + step_offset).ravel()] = sorted_values.ravel()  # every copy of a value writes the same value
    n_unique = np.where(any_kept, group[:, -1] + 1, 0).astype(np.int32)
    unique = unique.reshape(n_steps, width)[:, :min(width, n_items)]
    return ChunkRows(_pad_with_unused(unique, n_unique, n_items), position.reshape(n_steps, width), n_unique)


def _pad_with_unused(unique, n_unique, n_items: int):
    """Replaces the entries from ``n_unique`` on by the smallest values missing from each row's real entries.

    In a sorted row ``u``, ``u[i] - i`` counts the values missing below ``u[i]``; the ``k``-th missing value is
    ``k`` plus the number of real entries with ``u[i] - i <= k``. Rows are offset so that one ``searchsorted``
    answers every row at once.
    """
    n_steps, width = unique.shape
    column = np.arange(width)
    real = column < n_unique[:, np.newaxis]
    row_offset = np.arange(n_steps, dtype=np.int64)[:, np.newaxis] * (width + n_items + 1)
    real_keys = (unique - column + row_offset)[real]  # ascending: within a row and from row to row
    k = column - n_unique[:, np.newaxis]
    padding = ~real
    real_before = np.repeat(np.cumsum(n_unique) - n_unique, width - n_unique)
    n_real_at_most_k = np.searchsorted(real_keys, (k + row_offset)[padding], side="right") - real_before
    unique = unique.copy()
    unique[padding] = k[padding] + n_real_at_most_k
    return unique


# Up to this many items, the distinct rows of a step are found with a bitmap over the catalogue (O(n_items) per step,
# no sort); above it with a sort of the step's occurrences. Measured on CPU inside XLA (one thread, 2,112
# occurrences a step): bitmap 216 µs vs sort 353 µs at 37k items, 528 vs 398 µs at 100k.
BITMAP_MAX_ITEMS = 65_536


def step_distinct_rows(values, mask, n_items: int, method: str = None):
    """:func:`distinct_rows` of one step, as TensorFlow ops that run inside a compiled (XLA) training loop.

    Args:
      values: int32 ``[N]`` item indices (masked occurrences may hold anything); mask: bool ``[N]``.
      n_items: the number of rows of the table; method: ``"bitmap"`` (scatter marks into ``[n_items]``, cumsum,
        scatter: O(n_items)), ``"sort"`` (a sort of the ``N`` occurrences) or None (bitmap up to
        :data:`BITMAP_MAX_ITEMS` items).

    Returns:
      ``(unique [min(N, n_items)], position [N], n_unique)``, exactly the step's row of :func:`distinct_rows`.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (the host path needs only NumPy)
    method = method or ("bitmap" if n_items <= BITMAP_MAX_ITEMS else "sort")
    width = int(values.shape[0])
    size = min(width, n_items)
    any_kept = tf.reduce_any(mask)
    first_kept = tf.gather(values, tf.argmax(tf.cast(mask, tf.int32), output_type=tf.int32))
    kept = tf.where(any_kept, tf.where(mask, values, first_kept), 0)  # a step keeping nothing: all rows 0
    if method == "bitmap":
        marks = tf.scatter_nd(kept[:, tf.newaxis], tf.cast(tf.broadcast_to(any_kept, [width]), tf.int32), [n_items])
        present = marks > 0
        rank = tf.cumsum(tf.cast(present, tf.int32))  # distinct kept values <= each item
        n_unique = rank[-1]
        position = tf.where(any_kept, tf.gather(rank, kept) - 1, 0)
        # every occurrence writes its value to its row (copies write the same value: max is exact)
        real = tf.tensor_scatter_nd_max(tf.zeros([width], tf.int32), position[:, tf.newaxis], kept)[:size]
        return _with_padding(real, position, n_unique, size)
    if method != "sort":
        raise ValueError(f"method must be 'bitmap' or 'sort', got {method!r}")
    bits = max(1, (width - 1).bit_length())
    key_type = tf.int32 if n_items < 2 ** (31 - bits) else tf.int64
    occurrence = tf.range(width, dtype=key_type)
    keys = tf.sort(tf.bitwise.bitwise_or(tf.bitwise.left_shift(tf.cast(kept, key_type), bits), occurrence))
    order = tf.cast(tf.bitwise.bitwise_and(keys, 2 ** bits - 1), tf.int32)
    sorted_values = tf.cast(tf.bitwise.right_shift(keys, bits), tf.int32)
    starts = tf.concat([[True], tf.not_equal(sorted_values[1:], sorted_values[:-1])], axis=0)
    group = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    position = tf.scatter_nd(order[:, tf.newaxis], group, [width])
    n_unique = tf.where(any_kept, group[-1] + 1, 0)
    # each group's value, written once (at its start); the spare last slot takes the other occurrences' zeros
    real = tf.scatter_nd(tf.where(starts, group, width)[:, tf.newaxis], tf.where(starts, sorted_values, 0),
                         [width + 1])[:size]
    return _with_padding(real, position, n_unique, size)


def _with_padding(real, position, n_unique, size: int):
    """``real``'s entries from ``n_unique`` on replaced by the smallest items missing from its first ``n_unique``.

    All of them lie below ``size`` (at most ``n_unique`` items are used), so a bitmap of ``size`` finds them.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    column = tf.range(size, dtype=tf.int32)
    is_real = column < n_unique
    used = tf.scatter_nd(tf.where(is_real & (real < size), real, size)[:, tf.newaxis], tf.ones([size], tf.int32),
                         [size + 1])[:size] > 0
    free_rank = tf.cumsum(tf.cast(~used, tf.int32)) - 1
    pad_slot = tf.where(~used & (n_unique + free_rank < size), n_unique + free_rank, size)
    padding = tf.scatter_nd(pad_slot[:, tf.newaxis], column, [size + 1])[:size]
    return tf.where(is_real, real, padding), position, n_unique
