"""A seeded random sample of test sessions, for test sets too large to rank in full (``--eval_sample_sessions``).

The sample is of *sessions*, drawn without replacement, and each sampled session keeps all its events; every
target of a sampled session is still ranked against the whole catalogue (never sampled negatives). The
bootstrap intervals of the sliced evaluation, which resample sessions, then show what the sample costs.

Example:
    >>> events = pd.DataFrame({"SessionId": [1, 1, 2, 2, 3, 3], "ItemId": [5, 6, 5, 7, 6, 7],
    ...                        "Time": [0., 1., 2., 3., 4., 5.]})
    >>> sorted(sample_sessions(events, 2, seed=0)["SessionId"].unique().tolist())
    [2, 3]
    >>> sample_sessions(events, 10, seed=0) is events      # at least every session: the log as it is
    True
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gru4rec_tf.option_fields import positive_int


def sample_sessions(events: pd.DataFrame, n_sessions: int | None, seed: int = 0) -> pd.DataFrame:
    """The events of ``n_sessions`` sessions of ``events`` drawn at random without replacement (``seed``), in the
    log's order; ``events`` itself when ``n_sessions`` is None or at least the number of sessions."""
    if n_sessions is None:
        return events
    positive_int("eval_sample_sessions", n_sessions)
    sessions = pd.unique(events["SessionId"])
    if n_sessions >= len(sessions):
        return events
    chosen = np.random.default_rng(seed).choice(len(sessions), size=n_sessions, replace=False)
    return events[events["SessionId"].isin(sessions[np.sort(chosen)])]
