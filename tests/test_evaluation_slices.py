"""Tests for gru4rec_tf.evaluation.slices (and the Evaluator's per-event output it slices, and session_sample):
slice membership and figures on hand-built cases, alignment of two models' events, the paired table."""
import gru4rec_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.evaluation import session_sample, slices
from gru4rec_tf.evaluation.full_catalogue import Evaluator
from gru4rec_tf.model.network import GRU4Rec
from gru4rec_tf.params import GRU4RecParams


# ------------------------------------------------------------------------------------------------ hand-built
def hand_frame():
    """Sessions 1 (2 targets), 2 (1) and 3 (9 targets: positions 1..9), ranks chosen by hand."""
    rows = [(1, 1, 10, 1.0), (1, 2, 11, 30.0), (2, 1, 12, 3.0)]
    rows += [(3, p, 13 if p % 2 else 10, float(p)) for p in range(1, 10)]  # rank = position
    return pd.DataFrame(rows, columns=["session", "position", "item", "rank"])


POPULARITY = pd.Series({10: 20, 11: 20, 12: 10, 13: 10, 14: 10, 15: 10})  # 10 head, 11 torso, the rest tail


def test_slice_membership_by_hand():
    frame = hand_frame()
    masks = slices.slice_masks(frame, POPULARITY, new_items=[13, 99])
    assert list(masks) == list(slices.SLICE_NAMES)
    members = {name: frame.index[mask].tolist() for name, mask in masks.items()}
    assert members["target_new"] == [3, 5, 7, 9, 11]
    assert members["position_1"] == [0, 2, 3]
    assert members["position_2-3"] == [1, 4, 5]
    assert members["position_4-7"] == [6, 7, 8, 9]
    assert members["position_8+"] == [10, 11]
    assert members["popularity_head"] == [0, 4, 6, 8, 10]
    assert members["popularity_torso"] == [1]
    assert members["popularity_tail"] == [2, 3, 5, 7, 9, 11]
    assert "target_new" not in slices.slice_masks(frame, POPULARITY)  # no set of new items: no such slices


def test_slice_figures_by_hand():
    frame = hand_frame()
    table = slices.slice_table(frame, slices.slice_masks(frame, POPULARITY, new_items=[13]), cutoffs=(1, 5),
                               n_resamples=200, seed=0)
    row = table["position_4-7"]  # ranks 4, 5, 6, 7 of session 3
    assert (row["events"], row["sessions"]) == (4, 1)
    assert row["recall@5"] == pytest.approx(2 / 4) and row["mrr@5"] == pytest.approx((1 / 4 + 1 / 5) / 4)
    assert row["recall@5_ci"] == [pytest.approx(0.5), pytest.approx(0.5)]  # one session: no spread
    row = table["all"]  # 12 events; ranks <= 5: 1, 3, 1, 2, 3, 4, 5
    assert row["recall@5"] == pytest.approx(7 / 12)
    assert row["mrr@1"] == pytest.approx(2 / 12) and row["recall@1"] == row["mrr@1"]
    lo, hi = row["recall@5_ci"]
    assert lo <= row["recall@5"] <= hi and hi - lo > 0.1
    assert table["target_new"]["events"] == 5 and table["target_known"]["events"] == 7
    assert table["popularity_torso"]["recall@5"] == 0.0  # the one rank-30 event


def test_an_empty_slice_has_no_figures():
    frame = hand_frame().iloc[:3]
    table = slices.slice_table(frame, slices.slice_masks(frame, POPULARITY), cutoffs=(20,), n_resamples=20)
    assert table["position_8+"] == {"events": 0, "sessions": 0, "recall@20": None, "recall@20_ci": [None, None],
                                    "recall@20_se": None, "mrr@20": None, "mrr@20_ci": [None, None], "mrr@20_se": None}


def test_popularity_classes_follow_the_cumulative_event_share():
    classes = slices.popularity_classes(pd.Series({"solo": 60, "b": 30, "c": 10, "d": 0}))
    assert classes.to_dict() == {"solo": "head", "b": "tail", "c": "tail", "d": "tail"}
    flat = slices.popularity_classes(pd.Series(np.full(10, 5), index=np.arange(10)))
    assert flat.value_counts().to_dict() == {"head": 2, "torso": 3, "tail": 5}
    assert (slices.popularity_classes(pd.Series({1: 0, 2: 0})) == "tail").all()


def test_paired_table_difference_and_interval():
    frame = hand_frame()
    frame["baseline_rank"] = frame["rank"]
    frame.loc[frame["item"] == 13, "rank"] = np.inf  # the candidate misses every new-item target
    table = slices.paired_slice_table(frame, slices.slice_masks(frame, POPULARITY, new_items=[13]), cutoffs=(5,),
                                      n_resamples=200, seed=0)
    new, known = table["target_new"], table["target_known"]
    assert new["baseline"]["recall@5"] == pytest.approx(3 / 5) and new["candidate"]["recall@5"] == 0.0
    assert new["difference"]["recall@5"] == pytest.approx(-3 / 5)
    assert known["difference"]["recall@5"] == 0.0 and known["difference"]["recall@5_ci"] == [0.0, 0.0]
    assert new["difference"]["recall@5_ci"] == [pytest.approx(-3 / 5), pytest.approx(-3 / 5)]  # one session
    point, (lo, hi) = table["all"]["difference"]["mrr@5"], table["all"]["difference"]["mrr@5_ci"]
    assert lo < point < 0 and hi == 0.0  # resamples without session 3 lose nothing


# ------------------------------------------------------------------------------------------------ with a model
def _events():
    rng = np.random.RandomState(3)
    rows = []
    for sid, length in enumerate([3, 2, 9, 4, 2, 5, 3, 10, 2, 4]):
        rows += [(sid + 1, 100 + rng.randint(0, 12), sid * 100.0 + k) for k in range(length)]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


@pytest.fixture(scope="module")
def setup():
    events = _events()
    vocab = ItemVocabulary.from_events(events)
    model = GRU4Rec(vocab.n_items, GRU4RecParams.from_string("layers=8"), seed=5)
    model((tf.constant([0], tf.int32), model.initial_states(1)))  # build
    return events, vocab, model


def test_ranked_events_are_the_ranks_with_their_sessions_positions_and_top_items(setup):
    events, vocab, model = setup
    data = SessionData.from_events(events, vocab)
    evaluator = Evaluator(model, batch_size=3, steps_per_call=2)
    ranked = evaluator.ranked_events(data, "standard", top_k=5)
    ranks, targets = evaluator.ranks_and_targets(data, "standard")
    np.testing.assert_array_equal(ranked.ranks, ranks)
    np.testing.assert_array_equal(ranked.targets, targets)
    for s, p, target in zip(ranked.sessions, ranked.positions, ranked.targets, strict=True):  # the event itself
        assert data.item_idx[data.session_offsets[s] + p] == target
    assert sorted(zip(ranked.sessions.tolist(), ranked.positions.tolist(), strict=True)) == [
        (s, p) for s in range(data.n_sessions) for p in range(1, int(np.diff(data.session_offsets)[s]))]
    assert ranked.top_items.shape == (ranked.n_events, 5)
    for row, rank, target in zip(ranked.top_items, ranked.ranks, ranked.targets, strict=True):
        assert len(set(row.tolist())) == 5
        if rank <= 5:
            assert row[int(rank) - 1] == target  # the target sits at its rank in the top-k list
        else:
            assert target not in row
    assert evaluator.ranked_events(data, "standard").top_items is None


def test_sampling_every_session_is_the_full_evaluation(setup):
    events, vocab, model = setup
    evaluator = Evaluator(model)
    full = evaluator.ranked_events(SessionData.from_events(events, vocab))
    every = session_sample.sample_sessions(events, 10, seed=3)
    same = evaluator.ranked_events(SessionData.from_events(every, vocab))
    np.testing.assert_array_equal(full.ranks, same.ranks)
    part = session_sample.sample_sessions(events, 4, seed=3)
    assert part["SessionId"].nunique() == 4
    pd.testing.assert_frame_equal(part, session_sample.sample_sessions(events, 4, seed=3))
    # each sampled session is ranked exactly as in the full evaluation (whole catalogue, its own events)
    full_frame = slices.event_frame(full, SessionData.from_events(events, vocab), vocab)
    part_data = SessionData.from_events(part, vocab)
    part_frame = slices.event_frame(evaluator.ranked_events(part_data), part_data, vocab)
    merged = part_frame.merge(full_frame, on=["session", "position", "item"], suffixes=("", "_full"))
    assert len(merged) == len(part_frame) and (merged["rank"] == merged["rank_full"]).all()
    with pytest.raises(ValueError, match="eval_sample_sessions must be an integer >= 1, got 0"):
        session_sample.sample_sessions(events, 0)


def test_frames_of_two_vocabularies_align_on_the_same_events(setup):
    events, vocab, model = setup
    known = events[events["ItemId"] != events["ItemId"].iloc[5]]  # a vocabulary without one of the items
    small = ItemVocabulary.from_events(known)
    small_model = GRU4Rec(small.n_items, GRU4RecParams.from_string("layers=8"), seed=5)
    small_model((tf.constant([0], tf.int32), small_model.initial_states(1)))
    frames = []
    for v, m in ((vocab, model), (small, small_model)):
        data = SessionData.from_events(events, v)
        frames.append(slices.event_frame(Evaluator(m).ranked_events(data), data, v, events=events))
    full, reduced = frames
    assert len(reduced) < len(full)
    # positions count every event of the session in the log, so both frames name the same events
    ordered = events.sort_values(["SessionId", "Time"], kind="stable")
    target = ordered.groupby("SessionId").cumcount()
    keys = lambda frame: set(zip(frame["session"], frame["position"], frame["item"], strict=True))  # noqa: E731
    expected = set(zip(ordered["SessionId"][target > 0], target[target > 0], ordered["ItemId"][target > 0],
                       strict=True))
    assert keys(full) == expected and keys(reduced) <= expected
    aligned = slices.align(full, reduced)
    assert len(aligned) == len(full)
    missing = ~aligned["item"].isin(small.item_ids) | ~aligned.set_index(["session", "position"]).index.isin(
        reduced.set_index(["session", "position"]).index)
    assert np.isinf(aligned["baseline_rank"][missing]).all() and np.isfinite(aligned["baseline_rank"][~missing]).all()
    assert sorted(aligned["rank"]) == sorted(full["rank"])  # the candidate keeps its own events and ranks


def test_recommendation_figures():
    top = np.array([[0, 1], [1, 2]])
    figures = slices.recommendation_figures(top, np.array([10, 11, 12, 13]), pd.Series({10: 8, 11: 2, 12: 1}))
    assert figures == {"coverage@2": 0.75, "mean_rec_popularity@2": (8 + 2 + 2 + 1) / 4}
