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
