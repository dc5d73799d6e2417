"""Sliced full-catalogue evaluation: Recall@k and MRR@k per slice of the test events, with bootstrap intervals.

Every ranked test event (a target: each event after the first of a test session, spec §7) belongs to one slice of
each family:

* **target item**: ``target_new`` when the target is in the given set of *new* item IDs, else ``target_known``
  (only when such a set is given; the pipeline passes the items of the candidate's catalogue that the baseline, the
  last blessed model, does not know; ``gru4rec evaluate --slices --previous_model DIR`` the items that model lacks);
* **session position**: the events so far in the session before the target: ``position_1``, ``position_2-3``,
  ``position_4-7``, ``position_8+``;
* **target popularity**, by the items' share of training events: the most popular items that together make the
  first 20% of training events are ``popularity_head``, the next ones up to 50% ``popularity_torso``, the rest
  (and items without training events) ``popularity_tail``. An item belongs to the head when the items before it
  (by support, descending) make less than 20% of the events, so a single item that alone makes 60% is the head.

``all`` is every event. Each figure comes with a 95% percentile-bootstrap interval over test *sessions*
(:mod:`gru4rec_tf.evaluation.bootstrap`); with two rank columns (candidate and baseline on the same events) the
paired difference and its interval come from the same resamples, which is what a gate on a slice should use.

Example (a hand-built case: three sessions, the targets' ranks and positions given):
    >>> frame = pd.DataFrame({"session": [1, 1, 2, 3, 3, 3], "position": [1, 2, 1, 1, 2, 3],
    ...                       "item": [10, 11, 10, 12, 10, 11], "rank": [1.0, 30.0, 2.0, 4.0, 1.0, 50.0]})
    >>> popularity = pd.Series({10: 20, 11: 20, 12: 10, 13: 10, 14: 10, 15: 10})   # item ID -> training events
    >>> masks = slice_masks(frame, popularity, new_items={12})
    >>> {name: int(mask.sum()) for name, mask in masks.items() if mask.any()}
    {'all': 6, 'target_new': 1, 'target_known': 5, 'position_1': 3, 'position_2-3': 3, 'popularity_head': 3, \
'popularity_torso': 2, 'popularity_tail': 1}
    >>> table = slice_table(frame, masks, cutoffs=(20,), n_resamples=100)
    >>> row = table["position_1"]                                # ranks 1, 2 and 4: MRR (1 + 1/2 + 1/4) / 3
    >>> row["events"], row["sessions"], round(row["recall@20"], 4), round(row["mrr@20"], 4)
    (3, 3, 1.0, 0.5833)
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from gru4rec_tf.evaluation import bootstrap

POSITION_BINS = (("position_1", 1, 1), ("position_2-3", 2, 3), ("position_4-7", 4, 7), ("position_8+", 8, None))
HEAD_SHARE, TORSO_SHARE = 0.2, 0.5  # cumulative shares of training events that end the head and the torso
POPULARITY_SLICES = ("popularity_head", "popularity_torso", "popularity_tail")
ITEM_SLICES = ("target_new", "target_known")
SLICE_NAMES = ("all",) + ITEM_SLICES + tuple(b[0] for b in POSITION_BINS) + POPULARITY_SLICES


@dataclasses.dataclass(frozen=True)
class RankedEvents:
    """The ranked events of one evaluation, aligned: rank, target (vocabulary index), session (index in the test
    data's session order), position (events so far in the session before the target, >= 1) and, when asked for,
    the top-k recommended items (vocabulary indices, best first).

    Example:
        >>> ranked = RankedEvents(np.array([1.0, 3.0]), np.array([2, 0]), np.array([0, 0]), np.array([1, 2]))
        >>> ranked.n_events, ranked.top_items is None
        (2, True)
    """

    ranks: np.ndarray
    targets: np.ndarray
    sessions: np.ndarray
    positions: np.ndarray
    top_items: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        return len(self.ranks)


def positions_in_sessions(sessions: np.ndarray) -> np.ndarray:
    """Events so far (1, 2, ...) of each event, given each event's session and events of a session in order.

    >>> positions_in_sessions(np.array([0, 1, 0, 0, 1])).tolist()
    [1, 1, 2, 3, 2]
    """
    sessions = np.asarray(sessions)
    order = np.argsort(sessions, kind="stable")
    grouped = sessions[order]
    starts = np.r_[0, np.flatnonzero(np.diff(grouped)) + 1] if len(grouped) else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(grouped)]))
    out = np.empty(len(sessions), dtype=np.int64)
    out[order] = np.arange(len(grouped)) - first + 1
    return out


def original_positions(events: pd.DataFrame, vocab, data) -> np.ndarray:
    """For each event of ``data`` (``SessionData.from_events(events, vocab)``, aligned with ``data.item_idx``): its
    index in its session of ``events`` with every event counted, those of items unknown to ``vocab`` included.

    Two models with different vocabularies drop different events; this index names the same event for both.
    """
    sessions = events["SessionId"].to_numpy()
    codes, _ = pd.factorize(sessions, sort=False)
    order = np.lexsort((events["Time"].to_numpy(dtype=np.float64), codes))  # as SessionData: by time, stable
    index_in_session = positions_in_sessions(codes[order]) - 1
    known = vocab.lookup(events["ItemId"].to_numpy()[order]) >= 0
    kept = pd.DataFrame({"rank": pd.Index(data.session_ids).get_indexer(sessions[order][known]),
                         "index": index_in_session[known]})
    kept = kept[kept["rank"] >= 0].sort_values("rank", kind="stable")
    if len(kept) != len(data.item_idx):
        raise ValueError(f"{len(kept)} events of the log map to {len(data.item_idx)} events of the session data; "
                         "was it built from these events and this vocabulary?")
    return kept["index"].to_numpy(dtype=np.int64)


def event_frame(ranked: RankedEvents, data, vocab, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ranked events as a frame: ``session`` (ID), ``position`` (events so far), ``item`` (target ID), ``rank``.

    With ``events`` (the log ``data`` was built from), ``position`` counts every event of the session in the log,
    also those the model dropped as unknown, so that frames of two models on the same log can be aligned.
    """
    position = ranked.positions.astype(np.int64)
    if events is not None:
        targets_at = data.session_offsets[ranked.sessions] + ranked.positions
        position = original_positions(events, vocab, data)[targets_at]
    return pd.DataFrame({"session": data.session_ids[ranked.sessions], "position": position,
                         "item": vocab.item_ids[ranked.targets], "rank": ranked.ranks.astype(np.float64)})


def align(candidate: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Both models' events on one frame (``rank`` of the candidate, ``baseline_rank``): an event that one model
    could not rank (its target, or its whole session, unknown to that model) is a miss for it (rank +inf)."""
    keys = ["session", "position", "item"]
    merged = candidate[keys + ["rank"]].merge(baseline[keys + ["rank"]].rename(columns={"rank": "baseline_rank"}),
                                              on=keys, how="outer", sort=False)
    return merged.fillna({"rank": np.inf, "baseline_rank": np.inf})


def popularity_classes(popularity: pd.Series) -> pd.Series:
    """Item ID -> ``head``, ``torso`` or ``tail`` from training events per item (``popularity``, indexed by ID).

    >>> popularity_classes(pd.Series({"a": 30, "b": 20, "c": 20, "d": 15, "e": 15})).to_dict()
    {'a': 'head', 'b': 'torso', 'c': 'tail', 'd': 'tail', 'e': 'tail'}
    """
    counts = popularity.astype(np.float64)
    order = np.argsort(-counts.to_numpy(), kind="stable")
    sorted_counts = counts.to_numpy()[order]
    total = sorted_counts.sum()
    before = (np.cumsum(sorted_counts) - sorted_counts) / total if total > 0 else np.ones(len(order))
    labels = np.where(before < HEAD_SHARE, "head", np.where(before < TORSO_SHARE, "torso", "tail"))
    labels[sorted_counts <= 0] = "tail"
    return pd.Series(labels, index=counts.index[order]).reindex(counts.index)


def slice_masks(frame: pd.DataFrame, popularity: pd.Series, new_items=None) -> dict[str, np.ndarray]:
    """Slice name -> boolean mask over the rows of ``frame`` (columns ``position`` and ``item``), in
    ``SLICE_NAMES`` order; the target-item slices only when ``new_items`` (a collection of item IDs) is given."""
    masks = {"all": np.ones(len(frame), dtype=bool)}
    if new_items is not None:
        new = frame["item"].isin(pd.Index(list(new_items))).to_numpy()
        masks.update(target_new=new, target_known=~new)
    position = frame["position"].to_numpy()
    for name, low, high in POSITION_BINS:
        masks[name] = (position >= low) & (position <= (high if high is not None else np.inf))
    classes = frame["item"].map(popularity_classes(popularity)).fillna("tail").to_numpy()
    for name in POPULARITY_SLICES:
        masks[name] = classes == name.split("_", 1)[1]
    return masks


def _session_columns(rank_columns, masks, cutoffs, sessions, n_sessions) -> tuple[np.ndarray, list]:
    """Per-session totals ``[n_sessions, c]`` (per slice: its event count, then per model and cutoff: hits and
    reciprocal ranks) and the (slice, count column, [(model, k, hit column, rr column)]) layout. Column by column,
    so memory follows the sessions, not the events."""
    columns, layout = [], []

    def add(values) -> int:
        columns.append(np.bincount(sessions, weights=values, minlength=n_sessions))
        return len(columns) - 1

    for name, mask in masks.items():
        count_column, metrics = add(mask.astype(np.float64)), []
        for model, ranks in enumerate(rank_columns):
            for k in cutoffs:
                hit = mask & (ranks <= k)
                metrics.append((model, k, add(hit.astype(np.float64)), add(np.where(hit, 1.0 / ranks, 0.0))))
        layout.append((name, count_column, metrics))
    return np.stack(columns, axis=1), layout


def _statistic(layout, n_models):
    """The figures' function of resampled totals: every (slice, model, metric) ratio, then the differences
    model 0 - model 1 of every (slice, metric) when there are two models."""
    numerators, denominators, firsts, seconds, paired = [], [], [], [], []
    for _, count_column, metrics in layout:
        for _, _, hit_column, rr_column in metrics:
            numerators += [hit_column, rr_column]
            denominators += [count_column, count_column]
        if n_models == 2:
            half = len(metrics) // 2
            for (_, _, hit0, rr0), (_, _, hit1, rr1) in zip(metrics[:half], metrics[half:], strict=True):
                firsts += [hit0, rr0]
                seconds += [hit1, rr1]
                paired += [count_column, count_column]
    numerators, denominators, firsts, seconds, paired = (
        np.array(c, dtype=np.int64) for c in (numerators, denominators, firsts, seconds, paired))

    def statistic(totals):
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = totals[:, numerators] / totals[:, denominators]
            diffs = (totals[:, firsts] - totals[:, seconds]) / totals[:, paired]
        return np.concatenate([ratios, diffs], axis=1)

    return statistic


def _value(x) -> float | None:
    return None if np.isnan(x) else float(x)


def _figures(point, lo, hi, se, start, metrics) -> dict:
    out = {}
    for i, (_, k, _, _) in enumerate(metrics):
        for j, name in enumerate(("recall", "mrr")):
            at = start + 2 * i + j
            out[f"{name}@{k}"] = _value(point[at])
            out[f"{name}@{k}_ci"] = [_value(lo[at]), _value(hi[at])]
            out[f"{name}@{k}_se"] = _value(se[at])  # the bootstrap standard error (a gate's corrected interval)
    return out


def _slice_figures(frame, rank_names, masks, cutoffs, n_resamples, seed, confidence) -> dict:
    rank_columns = [frame[name].to_numpy(dtype=np.float64) for name in rank_names]
    codes, uniques = pd.factorize(frame["session"].to_numpy(), sort=False)
    totals, layout = _session_columns(rank_columns, masks, cutoffs, codes, len(uniques))
    statistic = _statistic(layout, len(rank_columns))
    with np.errstate(invalid="ignore", divide="ignore"):
        point = statistic(totals.sum(axis=0, keepdims=True))[0]
    lo, hi, se = bootstrap.intervals_and_errors(totals, statistic, n_resamples, seed, confidence)
    out, start, n_per_model = {}, 0, 2 * len(cutoffs)
    diff_start = sum(len(m) * 2 for _, _, m in layout)
    for name, count_column, metrics in layout:
        row = {"events": int(round(totals[:, count_column].sum())),
               "sessions": int(np.count_nonzero(totals[:, count_column]))}
        models = []
        for model in range(len(rank_columns)):
            models.append(_figures(point, lo, hi, se, start, metrics[model * len(cutoffs):(model + 1) * len(cutoffs)]))
            start += n_per_model
        if len(rank_columns) == 2:
            row["difference"] = _figures(point, lo, hi, se, diff_start, metrics[:len(cutoffs)])
            diff_start += n_per_model
        out[name] = (row, models)
    return out


def slice_table(frame: pd.DataFrame, masks: dict, cutoffs, n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
                seed: int = 0, confidence: float = bootstrap.DEFAULT_CONFIDENCE) -> dict:
    """``{slice: {"events", "sessions", "recall@K", "recall@K_ci": [lo, hi], "recall@K_se", "mrr@K", "mrr@K_ci",
    "mrr@K_se"}}`` of the ``rank`` column of ``frame`` (an empty slice has None figures; ``_se``: the bootstrap
    standard error)."""
    figures = _slice_figures(frame, ["rank"], masks, tuple(cutoffs), n_resamples, seed, confidence)
    return {name: {**row, **models[0]} for name, (row, models) in figures.items()}


def paired_slice_table(frame: pd.DataFrame, masks: dict, cutoffs, n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
                       seed: int = 0, confidence: float = bootstrap.DEFAULT_CONFIDENCE) -> dict:
    """The candidate (``rank``) against the baseline (``baseline_rank``) on the same events (:func:`align`):
    ``{slice: {"events", "sessions", "candidate": {...}, "baseline": {...}, "difference": {...}}}``, each figure
    with its interval; the difference (candidate - baseline) and its interval come from the same resampled
    sessions (a paired bootstrap)."""
    figures = _slice_figures(frame, ["rank", "baseline_rank"], masks, tuple(cutoffs), n_resamples, seed, confidence)
    return {name: {"events": row["events"], "sessions": row["sessions"], "candidate": models[0],
                   "baseline": models[1], "difference": row["difference"]}
            for name, (row, models) in figures.items()}


def recommendation_figures(top_items: np.ndarray, item_ids: np.ndarray, popularity: pd.Series) -> dict:
    """``coverage@K``: the share of the catalogue (``item_ids``, the model's items) recommended at least once in
    the top K (``top_items [n_events, K]``, vocabulary indices); ``mean_rec_popularity@K``: the mean number of
    training events (``popularity``, by item ID; 0 when absent) of the recommended items."""
    k = top_items.shape[1]
    recommended = np.unique(top_items)
    counts = popularity.reindex(item_ids).fillna(0).to_numpy(dtype=np.float64)
    return {f"coverage@{k}": float(len(recommended) / len(item_ids)) if len(item_ids) else 0.0,
            f"mean_rec_popularity@{k}": float(counts[top_items].mean()) if top_items.size else 0.0}


def _cell(row, metric) -> str:
    value, (lo, hi) = row.get(metric), row.get(f"{metric}_ci", (None, None))
    if value is None:
        return f"{'-':>24}"
    bounds = f"[{lo:.4f}, {hi:.4f}]" if lo is not None else "[-, -]"
    return f"{value:.4f} {bounds:>17}"


def format_table(table: dict, k: int) -> str:
    """The table of :func:`slice_table` as text (Recall@k and MRR@k with their intervals)."""
    lines = [f"{'slice':<18}{'events':>8}{'sessions':>9}  {f'Recall@{k} [95% CI]':>24}  {f'MRR@{k} [95% CI]':>24}"]
    for name, row in table.items():
        lines.append(f"{name:<18}{row['events']:>8}{row['sessions']:>9}  {_cell(row, f'recall@{k}')}  "
                     f"{_cell(row, f'mrr@{k}')}")
    return "\n".join(lines)
