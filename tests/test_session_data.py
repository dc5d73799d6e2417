"""Tests for gru4rec_tf.data.session_data: session layout for session-parallel batching."""
import numpy as np
import pandas as pd
import pytest

from gru4rec_tf.data.event_log import load_events
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.vocabulary import ItemVocabulary


def frame(sessions, items, times):
    return pd.DataFrame({"SessionId": sessions, "ItemId": items, "Time": np.asarray(times, dtype=float)})


def sessions_as_lists(sd, vocab):
    offsets = sd.session_offsets
    return [vocab.item_ids[sd.item_idx[a:b]].tolist() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def test_session_order_by_first_timestamp_not_id():
    # session IDs 1 < 2 < 3, but first timestamps order them 2, 3, 1
    ev = frame([1, 1, 2, 2, 3, 3], [10, 11, 12, 13, 14, 15], [30, 31, 10, 11, 20, 21])
    v = ItemVocabulary.from_events(ev)
    sd = SessionData.from_events(ev, v)
    assert sd.session_ids.tolist() == [2, 3, 1]
    assert sessions_as_lists(sd, v) == [[12, 13], [14, 15], [10, 11]]
    assert sd.session_offsets.tolist() == [0, 2, 4, 6]
    assert sd.item_idx.dtype == np.int32 and sd.session_offsets.dtype == np.int64
    assert sd.times.tolist() == [10, 11, 20, 21, 30, 31]


def test_session_ties_broken_by_session_id():
    ev = frame([9, 9, 4, 4], [1, 2, 3, 4], [5, 6, 5, 7])
    sd = SessionData.from_events(ev, ItemVocabulary.from_events(ev))
    assert sd.session_ids.tolist() == [4, 9]
    ev = frame(["b", "b", "a", "a"], [1, 2, 3, 4], [5, 6, 5, 7])
    sd = SessionData.from_events(ev, ItemVocabulary.from_events(ev))
    assert sd.session_ids.tolist() == ["a", "b"]


def test_within_session_time_order_is_stable():
    # file order inside session 1 is not time order; items 12 and 13 have equal times and keep file order
    ev = frame([1, 1, 1, 1, 2, 2], [10, 11, 12, 13, 20, 21], [4, 1, 2, 2, 0, 9])
    v = ItemVocabulary.from_events(ev)
    sd = SessionData.from_events(ev, v)
    assert sd.session_ids.tolist() == [2, 1]
    assert sessions_as_lists(sd, v) == [[20, 21], [11, 12, 13, 10]]
    assert sd.times.tolist() == [0, 9, 1, 2, 2, 4]


def test_unknown_items_dropped_before_sessions_are_built():
    train = frame([1, 1, 1], [1, 2, 3], [0, 1, 2])
    v = ItemVocabulary.from_events(train)
    test = frame(
        [5, 5, 5, 6, 6, 7, 7, 8, 8],
        [1, 99, 3, 2, 98, 97, 96, 1, 2],  # session 5: middle unknown; 6: left with 1; 7: all unknown
        [0, 1, 2, 3, 4, 5, 6, 7, 8],
    )
    sd = SessionData.from_events(test, v)
    assert sd.session_ids.tolist() == [5, 8]
    assert sessions_as_lists(sd, v) == [[1, 3], [1, 2]]  # neighbours of the dropped event are joined
    assert sd.n_dropped_unknown == 4
    assert sd.n_dropped_short_sessions == 2
    assert (sd.n_sessions, sd.n_events, sd.n_transitions) == (2, 4, 2)


def test_training_data_drops_length_one_sessions():
    ev = frame([1, 2, 2, 3], [1, 1, 2, 3], [0, 1, 2, 3])
    v = ItemVocabulary.from_events(ev)
    assert len(v) == 3  # item 3 stays in the vocabulary (only seen in a length-1 session)
    sd = SessionData.from_events(ev, v)
    assert sd.session_ids.tolist() == [2]
    assert sd.n_dropped_unknown == 0 and sd.n_dropped_short_sessions == 2


def test_all_dropped_gives_empty_data():
    v = ItemVocabulary([1, 2])
    sd = SessionData.from_events(frame([1, 1], [5, 6], [0, 1]), v)
    assert (sd.n_sessions, sd.n_events) == (0, 0)
    assert sd.session_offsets.tolist() == [0]


def test_session_data_matches_reference_on_random_events():
    rng = np.random.default_rng(0)
    n = 400
    ev = frame(rng.integers(0, 60, n), rng.integers(0, 40, n), rng.integers(0, 50, n))
    vocab = ItemVocabulary.from_events(ev[ev.ItemId < 30])
    sd = SessionData.from_events(ev, vocab)

    # reference: filter unknown, stable sort by time within session, drop short, order by (first time, id)
    known = ev[ev.ItemId < 30]
    ref = known.assign(pos=np.arange(len(known))).sort_values(["SessionId", "Time", "pos"], kind="stable")
    groups = {sid: g for sid, g in ref.groupby("SessionId") if len(g) >= 2}
    order = sorted(groups, key=lambda sid: (groups[sid].Time.min(), sid))
    assert sd.session_ids.tolist() == order
    assert sd.item_idx.tolist() == vocab.lookup(pd.concat([groups[s] for s in order]).ItemId).tolist()
    assert sd.n_dropped_unknown == int((ev.ItemId >= 30).sum())
    assert sd.n_dropped_short_sessions == ev.SessionId.nunique() - len(order)

    offs = sd.session_offsets
    assert offs[0] == 0 and offs[-1] == sd.n_events == len(sd.item_idx) == len(sd.times)
    assert (np.diff(offs) >= 2).all()
    first_times = sd.times[offs[:-1]]
    assert (np.diff(first_times) >= 0).all()
    for a, b in zip(offs[:-1], offs[1:], strict=True):
        assert (np.diff(sd.times[a:b]) >= 0).all()
    assert sd.n_transitions == sd.n_events - sd.n_sessions


# ---------------------------------------------------------------------------------------------------------------
# real data (skipped when ../shared/data is absent)


@pytest.mark.slow
def test_rsc15_100k(shared_data):
    base = shared_data / "rsc15_100k"
    train = load_events(base / "train_full.tsv")
    assert len(train) == 70_278
    vocab = ItemVocabulary.from_events(train)
    assert len(vocab) == 2_933
    assert int(vocab.support.sum()) == 70_278
    sd = SessionData.from_events(train, vocab)
    assert (sd.n_events, sd.n_sessions) == (70_278, 17_794)
    assert sd.n_dropped_unknown == 0 and sd.n_dropped_short_sessions == 0

    test = SessionData.from_events(load_events(base / "test.tsv"), vocab)
    assert (test.n_events, test.n_sessions) == (13_568, 3_416)
    assert test.n_dropped_unknown == 0
    assert test.item_idx.min() >= 0 and test.item_idx.max() < len(vocab)
    assert (np.diff(test.times[test.session_offsets[:-1]]) >= 0).all()
