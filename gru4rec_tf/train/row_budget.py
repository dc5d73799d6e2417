"""The distinct-row budget: how many output item rows a compiled training step computes on.

Popularity sampling repeats items, so a step has far fewer distinct output rows than ``B + n_sample`` columns (e.g.
~1,360 of 2,112 for rsc15_100k config A). The compiled loops run on a static budget sized from simulated draws,
which almost every step stays within, and fall back to the full size for a step above it; both give the same
result. :mod:`.host_steps` splits a chunk into runs of steps of either size (:meth:`RowBudget.segments`),
:mod:`.device_steps` chooses per step inside the loop.
"""
import numpy as np

from gru4rec_tf.train import compile_cache
from gru4rec_tf.train import distinct_rows as distinct_rows_lib


class RowBudget:
    """The output-row sizes of a training step: the full size and the (smaller) budget, if any.

    ``budget`` is the simulated budget (None without sampling, or when it would save under 10%); it may be set
    (e.g. to None to run every step at full size). ``table_rows`` is the rows of the item tables (capacity padding
    included), ``n_items`` the catalogue the sampler draws from, ``sampler_cdf`` its cumulative distribution.

    Example:
      >>> from gru4rec_tf.train import sampling
      >>> cdf = sampling.popularity_cdf(1.0 / np.arange(1, 5001), 1.0)   # 5,000 items of Zipf popularity
      >>> budget = RowBudget(batch_size=32, n_sample=2048, shared_embedding=True, table_rows=5000, n_items=5000,
      ...                    sampler_cdf=cdf)
      >>> budget.full_rows, budget.loop_rows         # most steps compute on 960 distinct rows instead of 2,112
      (2112, 960)
    """

    def __init__(self, batch_size: int, n_sample: int, shared_embedding: bool, table_rows: int, n_items: int,
                 sampler_cdf, n_draws: int = 200):
        # occurrences of output-table rows in a step: targets, samples and, with a shared embedding, inputs
        self.output_row_width = batch_size * (2 if shared_embedding else 1) + n_sample
        self.full_rows = min(self.output_row_width, table_rows)  # distinct rows a step can have
        self.budget = (None if n_sample == 0 else
                       simulated_budget(self.output_row_width, n_sample, n_items, sampler_cdf, n_draws))

    @property
    def budget_rows(self) -> int | None:
        """The budget when it is below the full size, else None (every step runs at full size)."""
        return self.budget if self.budget is not None and self.budget < self.full_rows else None

    @property
    def loop_rows(self) -> int:
        """The rows of the loop that almost every chunk runs: the budget, or the full size without one."""
        return self.budget_rows or self.full_rows

    def segments(self, output_rows: distinct_rows_lib.ChunkRows) -> list[tuple[int, int, int]]:
        """``(begin, end, n_rows)`` runs of steps: the budget where steps stay within it, else the full size."""
        full, n_steps, budget = output_rows.unique.shape[1], len(output_rows.n_unique), self.budget_rows
        if budget is None:
            return [(0, n_steps, full)]
        sizes = np.where(output_rows.n_unique <= budget, budget, full)
        bounds = np.flatnonzero(np.diff(sizes)) + 1
        begins, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [n_steps]])
        return [(int(b), int(e), int(sizes[b])) for b, e in zip(begins, ends, strict=True)]


def simulated_budget(output_row_width: int, n_sample: int, n_items: int, sampler_cdf, n_draws: int = 200):
    """A static number of distinct item rows that almost every step stays within, or None.

    The most distinct samples of ``n_draws`` simulated draws, plus the targets (and, with a shared embedding, the
    inputs), plus 2%, rounded up to a granularity (64 for config A's 2,112 columns and inputs); with the persistent
    compile cache on, rounded up further to a quarter octave (so that the next day's loop has the same shapes).
    None when that is not below 90% of the full width.
    """
    granularity = max(8, 2 ** int(np.log2(output_row_width / 32)))
    draws = np.sort(np.searchsorted(sampler_cdf, np.random.default_rng(0).random((n_draws, n_sample))), axis=1)
    distinct = 1 + int(np.max(np.count_nonzero(np.diff(draws, axis=1), axis=1)))  # distinct values per draw
    extra = output_row_width - n_sample  # the targets (and, with a shared embedding, the inputs)
    budget = min(n_items, -(-int(distinct * 1.02 + extra) // granularity) * granularity)
    if compile_cache.enabled():
        budget = min(n_items, compile_cache.round_up(budget))
    return budget if budget < 0.9 * output_row_width else None
