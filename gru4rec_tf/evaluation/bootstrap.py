"""Bootstrap confidence intervals over test sessions (numpy only, no TensorFlow).

The unit of resampling is the *session*, not the event: the events of one session share a hidden state and a
user, so they are not independent, and an interval over events would be too narrow. Each resample draws
``n_sessions`` sessions with replacement (multinomial counts ``w``); a figure that is a ratio of per-session totals
(Recall@k = hits / events, MRR@k = reciprocal ranks / events, per slice) is then ``(w @ numerators) / (w @ events)``,
so all figures of all slices (and of several models on the same sessions, for paired differences) come from one
matrix product per block of resamples. The interval is the percentile interval of the resampled statistic.

Example (two sessions of equal size, one all hits and one all misses: Recall lies in [0, 1] and the point is 0.5):
    >>> totals = session_totals(np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]]), np.array([0, 0, 1, 1]), 2)
    >>> totals.tolist()
    [[2.0, 2.0], [0.0, 2.0]]
    >>> ratio = lambda t: t[:, :1] / t[:, 1:]
    >>> lo, hi = intervals(totals, ratio, n_resamples=200, seed=0)
    >>> float(lo[0]), float(hi[0]), float(ratio(totals.sum(0, keepdims=True))[0, 0])
    (0.0, 1.0, 0.5)
"""
from __future__ import annotations

import numpy as np

DEFAULT_RESAMPLES = 500
DEFAULT_CONFIDENCE = 0.95
_BLOCK_ELEMENTS = 1 << 22  # resamples x sessions per block of multinomial weights (32 MiB of float64)


def session_totals(values: np.ndarray, sessions: np.ndarray, n_sessions: int) -> np.ndarray:
    """Per-session sums ``[n_sessions, m]`` of per-event ``values [n_events, m]``; ``sessions`` are 0-based indices."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, np.newaxis]
    sessions = np.asarray(sessions, dtype=np.int64)
    if len(sessions) != len(values):
        raise ValueError(f"{len(sessions)} session indices for {len(values)} events")
    if len(sessions) and (sessions.min() < 0 or sessions.max() >= n_sessions):
        raise ValueError(f"session indices must lie in [0, {n_sessions})")
    totals = np.zeros((n_sessions, values.shape[1]), dtype=np.float64)
    np.add.at(totals, sessions, values)
    return totals


def resampled_totals(totals: np.ndarray, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0):
    """Yields blocks ``[b, m]`` of column totals over sessions resampled with replacement (``n_resamples`` rows in
    all, the same for every call with the same ``seed`` and number of sessions)."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    n_sessions = len(totals)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // max(1, n_sessions))
    done = 0
    while done < n_resamples:
        size = min(block, n_resamples - done)
        weights = rng.multinomial(n_sessions, np.full(n_sessions, 1.0 / n_sessions), size=size) if n_sessions \
            else np.zeros((size, 0))
        yield weights.astype(np.float64) @ totals
        done += size


def intervals(totals: np.ndarray, statistic, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
              confidence: float = DEFAULT_CONFIDENCE):
    """Percentile bootstrap interval ``(lo, hi)`` of ``statistic``, a function of resampled column totals
    ``[b, m] -> [b, q]``; NaN where a resample has no value for a column (e.g. an empty slice) is left out,
    and a column without any value gets NaN bounds."""
    lo, hi, _ = intervals_and_errors(totals, statistic, n_resamples, seed, confidence)
    return lo, hi


def intervals_and_errors(totals: np.ndarray, statistic, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                         confidence: float = DEFAULT_CONFIDENCE):
    """:func:`intervals` and the bootstrap standard error of each column (the resamples' standard deviation):
    ``(lo, hi, se)``. The error gives a normal interval at any confidence, also beyond what ``n_resamples``
    percentiles can resolve (a family-wise corrected gate needs 99.9%: the 0.05th percentile of 500 resamples
    is not a number the resamples know)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    samples = np.concatenate([statistic(block) for block in resampled_totals(totals, n_resamples, seed)])
    tail = 100.0 * (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):
        defined = ~np.isnan(samples).all(axis=0)
        lo = np.full(samples.shape[1], np.nan)
        hi = np.full(samples.shape[1], np.nan)
        se = np.full(samples.shape[1], np.nan)
        if defined.any():
            lo[defined], hi[defined] = np.nanpercentile(samples[:, defined], [tail, 100.0 - tail], axis=0)
            se[defined] = np.nanstd(samples[:, defined], axis=0)
    return lo, hi, se
