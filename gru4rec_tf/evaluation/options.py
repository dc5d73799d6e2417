"""Options of the full-catalogue evaluation (cut-offs, tie mode, batch size): their one definition, no TensorFlow.

:class:`EvalOptions` holds each option's default, description (``metadata["help"]``) and allowed values
(``metadata["choices"]``); the ``--cutoffs``, ``--eval_mode`` and ``--eval_batch_size`` flags of ``gru4rec train``,
``gru4rec evaluate``, ``gru4rec tune`` and ``gru4rec pipeline run`` are derived from it
(:func:`gru4rec_tf.commands.option_flags.define_option_flags`). The training options, which build on these, are in
:mod:`gru4rec_tf.train.options`.

Example::

    >>> EvalOptions(cutoffs=("5", "20"), eval_mode="conservative").cutoffs
    (5, 20)
    >>> metric_cutoff("mrr@20", "early_stopping_metric")
    20
"""
from __future__ import annotations

import dataclasses
import re

from gru4rec_tf.option_fields import option_field, positive_int

__all__ = ["DEFAULT_CUTOFFS", "DEFAULT_EVAL_BATCH_SIZE", "DEFAULT_EVAL_MODE", "EVAL_MODES", "EvalOptions",
           "SliceOptions", "metric_cutoff"]

DEFAULT_CUTOFFS = (1, 5, 10, 20)  # the K of Recall@K and MRR@K reported by default
EVAL_MODES = ("standard", "conservative", "median")  # how ties with the target's score are ranked (spec §7)
DEFAULT_EVAL_MODE = "standard"
DEFAULT_EVAL_BATCH_SIZE = 512
_METRIC = re.compile(r"(recall|mrr)@([1-9][0-9]*)")


def metric_cutoff(metric, name: str) -> int:
    """The ``K`` of ``metric`` (``recall@K`` or ``mrr@K``, as the evaluation computes them); a ValueError naming the
    option ``name`` otherwise."""
    match = _METRIC.fullmatch(metric) if isinstance(metric, str) else None
    if match is None:
        raise ValueError(f"{name} must be recall@K or mrr@K, got {metric!r}")
    return int(match.group(2))


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """How the full-catalogue evaluation ranks and what it reports (spec §7). Validated on construction.

    ``cutoffs`` may be given as integers or digit strings (a ``--cutoffs`` flag's values); they are kept as a tuple
    of integers.

    Example::

        >>> EvalOptions().cutoffs, EvalOptions().eval_mode
        ((1, 5, 10, 20), 'standard')
        >>> EvalOptions(eval_mode="optimistic")
        Traceback (most recent call last):
        ValueError: eval_mode must be one of ('standard', 'conservative', 'median'), got 'optimistic'
    """

    cutoffs: tuple[int, ...] = option_field(DEFAULT_CUTOFFS, help="Cut-offs K of Recall@K and MRR@K.")
    eval_mode: str = option_field(DEFAULT_EVAL_MODE, choices=EVAL_MODES,
                                  help="How ties with the target's score are ranked (spec §7).")
    eval_batch_size: int = option_field(DEFAULT_EVAL_BATCH_SIZE,
                                        help="Session-parallel batch size of the evaluation.")

    def __post_init__(self):
        object.__setattr__(self, "cutoffs", _cutoffs(self.cutoffs))
        if self.eval_mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {self.eval_mode!r}")
        positive_int("eval_batch_size", self.eval_batch_size)


@dataclasses.dataclass(frozen=True)
class SliceOptions:
    """How the sliced evaluation samples test sessions and computes its intervals
    (:mod:`gru4rec_tf.evaluation.slices`); the flags of ``gru4rec evaluate --slices`` and ``gru4rec pipeline run``.

    Example::

        >>> SliceOptions(eval_sample_sessions=1000).bootstrap_resamples
        500
        >>> SliceOptions(eval_sample_sessions=0)
        Traceback (most recent call last):
        ValueError: eval_sample_sessions must be an integer >= 1, got 0
    """

    eval_sample_sessions: int | None = option_field(
        None, help="Rank the whole catalogue exactly for a random sample of this many test sessions (seeded; never "
        "sampled negatives); the confidence intervals then include the cost of sampling. Default: every session.")
    bootstrap_resamples: int = option_field(
        500, help="Resamples of the test sessions behind each 95% bootstrap confidence interval.")
    eval_seed: int = option_field(0, help="Seed of the session sample and of the bootstrap resamples.")

    def __post_init__(self):
        if self.eval_sample_sessions is not None:
            positive_int("eval_sample_sessions", self.eval_sample_sessions)
        positive_int("bootstrap_resamples", self.bootstrap_resamples)
        if isinstance(self.eval_seed, bool) or not isinstance(self.eval_seed, int) or self.eval_seed < 0:
            raise ValueError(f"eval_seed must be an integer >= 0, got {self.eval_seed!r}")


def _cutoffs(values) -> tuple[int, ...]:
    values = tuple(values) if not isinstance(values, str) else tuple(values.split(","))
    shown = ",".join(str(v) for v in values)
    try:
        cutoffs = tuple(int(v.strip()) if isinstance(v, str) else v for v in values)
    except ValueError:
        raise ValueError(f"cutoffs must be integers, got {shown}") from None
    if not cutoffs or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in cutoffs):
        raise ValueError(f"cutoffs must be positive integers, got {shown}")
    return cutoffs
