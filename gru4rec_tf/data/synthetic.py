"""Synthetic session data: the project's built-in dataset.

Sessions have a Zipf-like item popularity and a sequential structure a GRU can learn: every item has a few
"successor" items, and the next item of a session is one of the current item's successors with probability
``p_follow`` (else a random item drawn by popularity). Numpy and pandas only; no TensorFlow.

Example::

    >>> from gru4rec_tf.data.synthetic import generate_sessions, train_test_split_by_time, write_dataset
    >>> events = generate_sessions(n_items=200, n_sessions=1000, seed=1)
    >>> list(events.columns)
    ['SessionId', 'ItemId', 'Time']
    >>> train, test = train_test_split_by_time(events, test_days=1.0)
    >>> stats = write_dataset("data/synthetic", n_items=1000, n_sessions=2000)   # train.tsv, test.tsv
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec_tf.data.event_columns import DEFAULT_ITEM_KEY, DEFAULT_SESSION_KEY, DEFAULT_TIME_KEY
from gru4rec_tf.fileio import atomic_write_path

__all__ = ["generate_sessions", "train_test_split_by_time", "write_dataset", "DAY_SECONDS"]

DAY_SECONDS = 86400.0


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value, low: float, high: float = math.inf, low_open: bool = False,
                 high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value}")
    return value


def _sampler(weights: np.ndarray):
    """Returns sample(rng, size) drawing indices with probability proportional to ``weights``."""
    cdf = np.cumsum(weights, dtype=np.float64)
    total = cdf[-1]

    def sample(rng: np.random.Generator, size: int) -> np.ndarray:
        idx = np.searchsorted(cdf, rng.random(size) * total, side="right")
        return np.minimum(idx, len(cdf) - 1)  # guards against rounding at the very top

    return sample


def generate_sessions(
    n_items: int = 1000,
    n_sessions: int = 20000,
    mean_length: float = 5.0,
    seed: int = 0,
    *,
    n_successors: int = 4,
    p_follow: float = 0.65,
    zipf_exponent: float = 1.0,
    successor_exponent: float = 0.5,
    max_length: int = 200,
    span_days: float = 10.0,
    start_time: float = 1_600_000_000.0,
    mean_gap_seconds: float = 30.0,
    item_id_offset: int = 100_000,
    session_id_offset: int = 1,
    new_items_per_day: int = 0,
    popularity_drift: float = 0.0,
) -> pd.DataFrame:
    """Generates a session event log with popularity skew and sequential structure.

    - Item popularity is Zipf-like: the item of popularity rank r (1-based) has weight ``r ** -zipf_exponent``;
      ranks are a random permutation of the items, so popularity is unrelated to the ID.
    - Each item has ``n_successors`` (at most ``n_items - 1``) distinct successor items (never itself), drawn with
      weight ``popularity ** successor_exponent`` (a milder popularity bias, so successors are not just the top items).
      Successor j of an item is picked with weight ``1 / (j + 1)``: the first successor is the most likely.
    - A session's first item is drawn by popularity; each next item is a successor of the current item with
      probability ``p_follow``, else an item drawn by popularity.
    - Session lengths are ``1 + Geometric(1 / (mean_length - 1))`` (so >= 2, mean ``mean_length``), capped at
      ``max_length``.
    - Session start times are sorted uniform draws over ``span_days`` days from ``start_time`` (unix seconds);
      events inside a session are ``1 + Exponential(mean_gap_seconds)`` seconds apart, rounded to milliseconds.
    - ``ItemId = item_id_offset + k`` and ``SessionId = session_id_offset + s`` (int64; sessions numbered in
      order of start time). Rows are grouped by session, in time order.

    A changing catalogue, day by day (day ``k`` = ``[start_time + k·86400, start_time + (k+1)·86400)``; a session
    belongs to the day it starts in; ``ceil(span_days)`` days). With both options at 0 (the default) nothing
    changes and the output is the same as without them.

    - ``new_items_per_day``: on every day after the first, that many new items are released (IDs after the
      ``n_items`` initial ones, in release order); no event uses an item before its release day. A new item enters
      at the popularity of the released item at a rank drawn uniformly from the top 10% (a "hot" release, so that
      it gets events on its first day); it can be the successor of older items and has successors of its own. A
      successor that is not released yet is replaced by a popularity draw.
    - ``popularity_drift``: every day, each released item's log-popularity takes a random-walk step
      ``popularity_drift · N(0, 1)``, so the popularity ranking changes over the days (the successor structure
      does not drift).

    Generation is vectorised over sessions (one loop step per position in a session), so millions of events
    take seconds. The same arguments always give the same frame.

    Example::

        >>> ev = generate_sessions(n_items=50, n_sessions=100, mean_length=4.0, seed=3)
        >>> bool(ev.groupby("SessionId").size().min() >= 2)
        True
    """
    n_items = _check_int("n_items", n_items, 2)
    n_sessions = _check_int("n_sessions", n_sessions, 1)
    mean_length = _check_float("mean_length", mean_length, 2.0)
    seed = _check_int("seed", seed, 0)
    n_successors = _check_int("n_successors", n_successors, 1)
    n_successors = min(n_successors, n_items - 1)  # an item cannot be its own successor
    p_follow = _check_float("p_follow", p_follow, 0.0, 1.0)
    zipf_exponent = _check_float("zipf_exponent", zipf_exponent, 0.0)
    successor_exponent = _check_float("successor_exponent", successor_exponent, 0.0)
    max_length = _check_int("max_length", max_length, 2)
    if mean_length > max_length:
        raise ValueError(f"mean_length ({mean_length}) must not exceed max_length ({max_length})")
    span_days = _check_float("span_days", span_days, 0.0, low_open=True)
    start_time = _check_float("start_time", start_time, 0.0)
    mean_gap_seconds = _check_float("mean_gap_seconds", mean_gap_seconds, 0.0)
    item_id_offset = _check_int("item_id_offset", item_id_offset, 0)
    session_id_offset = _check_int("session_id_offset", session_id_offset, 0)
    new_items_per_day = _check_int("new_items_per_day", new_items_per_day, 0)
    popularity_drift = _check_float("popularity_drift", popularity_drift, 0.0)

    rng = np.random.default_rng(seed)
    if new_items_per_day or popularity_drift:
        return _generate_changing(rng, n_items, n_sessions, mean_length, n_successors, p_follow, zipf_exponent,
                                  successor_exponent, max_length, span_days, start_time, mean_gap_seconds,
                                  item_id_offset, session_id_offset, new_items_per_day, popularity_drift)

    # popularity: Zipf weights assigned to a random permutation of the items
    ranks = rng.permutation(n_items) + 1.0
    popularity = ranks ** -zipf_exponent
    sample_popular = _sampler(popularity)

    # successors: n_items x n_successors distinct items, none equal to its row's item
    successors = _draw_successors(rng, popularity ** successor_exponent, n_items, n_successors)
    succ_weights = 1.0 / np.arange(1, n_successors + 1)
    sample_slot = _sampler(succ_weights)

    # session lengths and layout
    if mean_length == 2.0:
        lengths = np.full(n_sessions, 2, dtype=np.int64)
    else:
        lengths = 1 + rng.geometric(1.0 / (mean_length - 1.0), size=n_sessions).astype(np.int64)
        np.minimum(lengths, max_length, out=lengths)
    offsets = np.zeros(n_sessions + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n_events = int(offsets[-1])
    starts = offsets[:-1]

    items = np.empty(n_events, dtype=np.int32 if n_items < 2**31 else np.int64)
    items[starts] = sample_popular(rng, n_sessions)
    # visit sessions longest first so that the sessions still active at position t are a prefix
    by_length = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[by_length]
    sorted_starts = starts[by_length]
    for t in range(1, int(sorted_lengths[0])):
        n_active = int(np.searchsorted(-sorted_lengths, -t, side="left"))  # sessions with length > t
        pos = sorted_starts[:n_active] + t
        prev = items[pos - 1]
        follow = rng.random(n_active) < p_follow
        nxt = sample_popular(rng, n_active)
        n_follow = int(np.count_nonzero(follow))
        if n_follow:
            nxt[follow] = successors[prev[follow], sample_slot(rng, n_follow)]
        items[pos] = nxt

    # times: session starts spread over the span, small gaps inside sessions
    session_start = start_time + np.sort(rng.random(n_sessions)) * (span_days * DAY_SECONDS)
    gaps = 1.0 + rng.exponential(mean_gap_seconds, size=n_events) if mean_gap_seconds > 0 else np.ones(n_events)
    gaps[starts] = 0.0
    within = np.cumsum(gaps)
    within -= np.repeat(within[starts], lengths)  # restart the cumulative sum at each session
    times = np.round(np.repeat(session_start, lengths) + within, 3)

    session_ids = np.repeat(np.arange(n_sessions, dtype=np.int64) + session_id_offset, lengths)
    return pd.DataFrame(
        {
            DEFAULT_SESSION_KEY: session_ids,
            DEFAULT_ITEM_KEY: items.astype(np.int64) + item_id_offset,
            DEFAULT_TIME_KEY: times,
        }
    )


def _session_lengths(rng: np.random.Generator, n_sessions: int, mean_length: float, max_length: int) -> np.ndarray:
    if mean_length == 2.0:
        return np.full(n_sessions, 2, dtype=np.int64)
    lengths = 1 + rng.geometric(1.0 / (mean_length - 1.0), size=n_sessions).astype(np.int64)
    return np.minimum(lengths, max_length)


def _daily_popularity(rng, base_log_weight, release_day, new_ranks, n_days, drift):
    """``[n_days, n_total]`` popularity weights per day (0 before an item's release; see generate_sessions)."""
    current = base_log_weight.copy()
    weights = np.zeros((n_days, len(current)))
    for day in range(n_days):
        released_before = release_day < day
        if day > 0 and drift > 0:
            current[released_before] += drift * rng.standard_normal(int(released_before.sum()))
        new = np.flatnonzero(release_day == day) if day > 0 else np.zeros(0, dtype=np.int64)
        if len(new):
            by_popularity = np.sort(current[released_before])[::-1]
            current[new] = by_popularity[np.minimum(new_ranks[new - (len(current) - len(new_ranks))],
                                                    len(by_popularity)) - 1]
        released = release_day <= day
        weights[day, released] = np.exp(current[released] - current[released].max())
    return weights


def _generate_changing(rng, n_items, n_sessions, mean_length, n_successors, p_follow, zipf_exponent,
                       successor_exponent, max_length, span_days, start_time, mean_gap_seconds, item_id_offset,
                       session_id_offset, new_items_per_day, popularity_drift) -> pd.DataFrame:
    """:func:`generate_sessions` with new items every day and/or drifting popularity (validated arguments)."""
    n_days = max(1, math.ceil(span_days))
    n_new = new_items_per_day * (n_days - 1)
    n_total = n_items + n_new
    release_day = np.concatenate([np.zeros(n_items, dtype=np.int64),
                                  np.repeat(np.arange(1, n_days, dtype=np.int64), new_items_per_day)])

    ranks = rng.permutation(n_items) + 1.0
    new_ranks = rng.integers(1, max(1, n_items // 10) + 1, size=n_new)  # popularity rank at release
    base_log_weight = np.concatenate([-zipf_exponent * np.log(ranks), np.zeros(n_new)])
    daily = _daily_popularity(rng, base_log_weight, release_day, new_ranks, n_days, popularity_drift)
    samplers = [_sampler(daily[day]) for day in range(n_days)]

    def sample_popular(days: np.ndarray) -> np.ndarray:
        out = np.empty(len(days), dtype=np.int64)
        for day in np.unique(days):
            at = days == day
            out[at] = samplers[day](rng, int(np.count_nonzero(at)))
        return out

    successor_weight = np.concatenate([ranks, new_ranks.astype(np.float64)]) ** -(zipf_exponent * successor_exponent)
    n_successors = min(n_successors, n_total - 1)
    successors = _draw_successors(rng, successor_weight, n_total, n_successors)
    sample_slot = _sampler(1.0 / np.arange(1, n_successors + 1))

    lengths = _session_lengths(rng, n_sessions, mean_length, max_length)
    offsets = np.zeros(n_sessions + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n_events = int(offsets[-1])
    starts = offsets[:-1]
    session_start = start_time + np.sort(rng.random(n_sessions)) * (span_days * DAY_SECONDS)
    session_day = np.minimum(((session_start - start_time) // DAY_SECONDS).astype(np.int64), n_days - 1)

    items = np.empty(n_events, dtype=np.int64)
    items[starts] = sample_popular(session_day)
    by_length = np.argsort(-lengths, kind="stable")
    sorted_lengths, sorted_starts, sorted_days = lengths[by_length], starts[by_length], session_day[by_length]
    for t in range(1, int(sorted_lengths[0])):
        n_active = int(np.searchsorted(-sorted_lengths, -t, side="left"))  # sessions with length > t
        pos = sorted_starts[:n_active] + t
        days = sorted_days[:n_active]
        prev = items[pos - 1]
        nxt = sample_popular(days)
        follow = np.flatnonzero(rng.random(n_active) < p_follow)
        if len(follow):
            chosen = successors[prev[follow], sample_slot(rng, len(follow))]
            released = release_day[chosen] <= days[follow]
            nxt[follow[released]] = chosen[released]
        items[pos] = nxt

    gaps = 1.0 + rng.exponential(mean_gap_seconds, size=n_events) if mean_gap_seconds > 0 else np.ones(n_events)
    gaps[starts] = 0.0
    within = np.cumsum(gaps)
    within -= np.repeat(within[starts], lengths)
    times = np.round(np.repeat(session_start, lengths) + within, 3)
    session_ids = np.repeat(np.arange(n_sessions, dtype=np.int64) + session_id_offset, lengths)
    return pd.DataFrame({DEFAULT_SESSION_KEY: session_ids, DEFAULT_ITEM_KEY: items + item_id_offset,
                         DEFAULT_TIME_KEY: times})


def _draw_successors(rng: np.random.Generator, weights: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """n_items x k successor matrix: distinct entries per row, drawn by ``weights``, never the row's own item."""
    sample = _sampler(weights)
    succ = sample(rng, n_items * k).reshape(n_items, k)
    own = np.arange(n_items)[:, None]
    for _ in range(100):
        bad = succ == own
        if k > 1:  # later duplicates of an earlier entry in the same row
            srt = np.sort(succ, axis=1)
            has_dup = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
            if has_dup.any():
                rows = np.flatnonzero(has_dup)
                sub = succ[rows]
                dup = (sub[:, :, None] == sub[:, None, :]) & np.tri(k, k, -1, dtype=bool)[None]
                bad[rows] |= dup.any(axis=2)
        n_bad = int(np.count_nonzero(bad))
        if n_bad == 0:
            return succ
        succ[bad] = sample(rng, n_bad)
    # heavily skewed weights with few items: fill the remaining conflicts deterministically
    for row in np.flatnonzero((succ == own).any(axis=1) | _row_has_dup(succ)):
        chosen = []
        for v in list(succ[row]) + list(rng.permutation(n_items)):
            if v != row and v not in chosen:
                chosen.append(int(v))
            if len(chosen) == k:
                break
        succ[row] = chosen
    return succ


def _row_has_dup(a: np.ndarray) -> np.ndarray:
    srt = np.sort(a, axis=1)
    return (srt[:, 1:] == srt[:, :-1]).any(axis=1) if a.shape[1] > 1 else np.zeros(len(a), dtype=bool)


def train_test_split_by_time(events: pd.DataFrame, test_days: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-based split (spec §7, the 2023 datasets' rule).

    ``split = last timestamp - test_days * 86400``. Test = the sessions whose first event is at or after ``split``;
    train = the other sessions' events before ``split``, keeping sessions with >= 2 events. The test set is then
    restricted to items that occur in train, and to sessions with >= 2 events. Row order is preserved; both
    frames get a fresh index.

    Example::

        >>> ev = pd.DataFrame({"SessionId": [1, 1, 2, 2, 3, 3], "ItemId": [5, 6, 5, 6, 6, 7],
        ...                    "Time": [0., 10., 20., 30., 2 * 86400., 2 * 86400. + 5]})
        >>> train, test = train_test_split_by_time(ev, test_days=1.0)
        >>> sorted(train.SessionId.unique().tolist()), len(test)   # session 3 is in test, but item 7 is unknown
        ([1, 2], 0)
    """
    test_days = _check_float("test_days", test_days, 0.0, low_open=True)
    missing = [c for c in (DEFAULT_SESSION_KEY, DEFAULT_ITEM_KEY, DEFAULT_TIME_KEY) if c not in events.columns]
    if missing:
        raise ValueError(f"events lacks column(s) {missing}; columns: {list(events.columns)}")
    if len(events) == 0:
        raise ValueError("events is empty")
    times = events[DEFAULT_TIME_KEY].to_numpy(dtype=np.float64)
    split_time = float(np.max(times)) - test_days * DAY_SECONDS
    sessions = events[DEFAULT_SESSION_KEY]
    first = pd.Series(times, index=events.index).groupby(sessions.to_numpy()).transform("min").to_numpy()
    in_test = first >= split_time

    train = events[~in_test & (times < split_time)]
    train = train[train.groupby(DEFAULT_SESSION_KEY)[DEFAULT_SESSION_KEY].transform("size").to_numpy() >= 2]

    test = events[in_test]
    test = test[test[DEFAULT_ITEM_KEY].isin(pd.unique(train[DEFAULT_ITEM_KEY])).to_numpy()]
    test = test[test.groupby(DEFAULT_SESSION_KEY)[DEFAULT_SESSION_KEY].transform("size").to_numpy() >= 2]
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _split_stats(df: pd.DataFrame) -> dict[str, int]:
    return {
        "events": int(len(df)),
        "sessions": int(df[DEFAULT_SESSION_KEY].nunique()),
        "items": int(df[DEFAULT_ITEM_KEY].nunique()),
    }


def write_dataset(
    output_dir: str | Path,
    n_items: int = 1000,
    n_sessions: int = 20000,
    mean_length: float = 5.0,
    seed: int = 0,
    test_days: float = 1.0,
    **generator_kwargs,
) -> dict[str, object]:
    """Generates sessions, splits them by time and writes ``train.tsv`` and ``test.tsv`` into ``output_dir``.

    Files are tab-separated with the header ``SessionId ItemId Time`` and are written atomically (temporary
    file, then ``os.replace``). ``generator_kwargs`` go to :func:`generate_sessions` (for example ``span_days``).
    Raises ValueError when the split leaves train or test empty (for example ``test_days`` >= ``span_days``).

    Returns JSON-friendly stats::

        {"train": {"events": ..., "sessions": ..., "items": ...}, "test": {...},
         "split_time": float, "train_path": str, "test_path": str}

    Example::

        >>> stats = write_dataset("synth", n_items=500, n_sessions=5000, seed=0)
        >>> stats["test"]["sessions"] > 0
        True
    """
    events = generate_sessions(n_items, n_sessions, mean_length, seed, **generator_kwargs)
    train, test = train_test_split_by_time(events, test_days=test_days)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(
            f"the time split (test_days={test_days}) leaves {len(train)} train and {len(test)} test events; "
            "use a smaller test_days, a longer span_days or more sessions"
        )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in (("train", train), ("test", test)):
        path = out / f"{name}.tsv"
        with atomic_write_path(path) as tmp:
            df.to_csv(tmp, sep="\t", index=False, float_format="%.3f")
        paths[name] = str(path)
    split_time = float(events[DEFAULT_TIME_KEY].max()) - test_days * DAY_SECONDS
    return {
        "train": _split_stats(train),
        "test": _split_stats(test),
        "split_time": split_time,
        "train_path": paths["train"],
        "test_path": paths["test"],
    }
