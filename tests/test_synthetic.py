"""Tests for gru4rec_tf.data.synthetic: the built-in synthetic dataset."""
import numpy as np
import pandas as pd
import pytest

from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.event_log import load_events
from gru4rec_tf.data.synthetic import DAY_SECONDS, generate_sessions, train_test_split_by_time, write_dataset

N_ITEMS, N_SESSIONS = 300, 3000


@pytest.fixture(scope="module")
def events():
    return generate_sessions(n_items=N_ITEMS, n_sessions=N_SESSIONS, mean_length=5.0, seed=7)


def test_columns_and_dtypes(events):
    assert list(events.columns) == ["SessionId", "ItemId", "Time"]
    assert events["SessionId"].dtype == np.int64
    assert events["ItemId"].dtype == np.int64
    assert events["Time"].dtype == np.float64
    assert events["ItemId"].min() >= 100_000 and events["ItemId"].max() < 100_000 + N_ITEMS


def test_deterministic_for_a_seed(events):
    again = generate_sessions(n_items=N_ITEMS, n_sessions=N_SESSIONS, mean_length=5.0, seed=7)
    pd.testing.assert_frame_equal(events, again)
    other = generate_sessions(n_items=N_ITEMS, n_sessions=N_SESSIONS, mean_length=5.0, seed=8)
    assert not events["ItemId"].equals(other["ItemId"])


def test_requested_sizes_roughly_met(events):
    lengths = events.groupby("SessionId").size()
    assert len(lengths) == N_SESSIONS
    assert lengths.min() >= 2
    assert abs(lengths.mean() - 5.0) < 0.3
    assert events["ItemId"].nunique() > 0.9 * N_ITEMS
    short = generate_sessions(n_items=50, n_sessions=200, mean_length=2.0, seed=0)
    assert (short.groupby("SessionId").size() == 2).all()


def test_times_increase(events):
    t = events["Time"].to_numpy()
    s = events["SessionId"].to_numpy()
    same = s[1:] == s[:-1]
    gaps = np.diff(t)
    assert (gaps[same] > 0).all() and np.median(gaps[same]) < 120  # tens of seconds inside a session
    first = events.groupby("SessionId")["Time"].min()
    assert first.is_monotonic_increasing  # session IDs are numbered by start time
    span = (t.max() - t.min()) / DAY_SECONDS
    assert 9.0 < span < 10.1  # default span_days=10


def test_popularity_skew(events):
    counts = events["ItemId"].value_counts().to_numpy()  # descending
    top_share = counts[: N_ITEMS // 10].sum() / len(events)
    assert top_share > 0.3  # uniform popularity would give about 0.1


def test_sequential_structure(events):
    nxt = events.groupby("SessionId")["ItemId"].shift(-1)
    pairs = pd.DataFrame({"a": events["ItemId"], "b": nxt}).dropna()
    per_pair = pairs.groupby(["a", "b"]).size()
    top = per_pair.groupby(level=0).max()
    total = per_pair.groupby(level=0).sum()
    frequent = total >= 30
    assert frequent.sum() >= 20
    share = (top / total)[frequent]
    # under popularity alone the most frequent follower would hold about the top item's share (about 0.09 here)
    pop_top = events["ItemId"].value_counts(normalize=True).iloc[0]
    assert share.median() > 0.25 > pop_top + 0.05


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_items"):
        generate_sessions(n_items=1)
    with pytest.raises(ValueError, match="n_sessions"):
        generate_sessions(n_sessions=0)
    with pytest.raises(ValueError, match="mean_length"):
        generate_sessions(mean_length=1.5)
    with pytest.raises(ValueError, match="p_follow"):
        generate_sessions(p_follow=1.5)
    with pytest.raises(ValueError, match="seed"):
        generate_sessions(seed=-1)
    with pytest.raises(ValueError, match="n_items"):
        generate_sessions(n_items=10.5)
    with pytest.raises(ValueError, match="test_days"):
        train_test_split_by_time(generate_sessions(n_items=5, n_sessions=3), test_days=0)


def test_tiny_catalogue():
    ev = generate_sessions(n_items=2, n_sessions=5, mean_length=3.0, seed=1)
    assert set(ev["ItemId"]) <= {100_000, 100_001}


def test_split_semantics(events):
    train, test = train_test_split_by_time(events, test_days=1.0)
    split = events["Time"].max() - DAY_SECONDS
    assert len(train) > 0 and len(test) > 0
    assert (test.groupby("SessionId")["Time"].min() >= split).all()
    assert (train["Time"] < split).all()
    assert set(test["ItemId"]) <= set(train["ItemId"])
    assert (train.groupby("SessionId").size() >= 2).all()
    assert (test.groupby("SessionId").size() >= 2).all()
    assert not set(train["SessionId"]) & set(test["SessionId"])
    # a session starting before the split keeps only its events before it
    straddling = events[(events.groupby("SessionId")["Time"].transform("min") < split)
                        & (events.groupby("SessionId")["Time"].transform("max") >= split)]
    kept = train[train["SessionId"].isin(straddling["SessionId"])]
    assert (kept["Time"] < split).all()
    # test maps through the train vocabulary with nothing dropped
    vocab = ItemVocabulary.from_events(train)
    sd = SessionData.from_events(test, vocab)
    assert sd.n_dropped_unknown == 0 and sd.n_events == len(test)


def test_split_handcrafted():
    ev = pd.DataFrame({
        "SessionId": [1, 1, 1, 2, 2, 3, 3, 4, 4, 4],
        "ItemId": [5, 6, 7, 5, 6, 6, 9, 5, 6, 5],
        "Time": [0.0, 10.0, 3 * DAY_SECONDS - 1, 20.0, 30.0, 3 * DAY_SECONDS - 5, 3 * DAY_SECONDS,
                 2 * DAY_SECONDS, 2 * DAY_SECONDS + 1, 2 * DAY_SECONDS + 2],
    })
    # split = 2 days: session 4 starts exactly at it -> test; item 7 occurs only after the split
    train, test = train_test_split_by_time(ev, test_days=1.0)
    assert train.values.tolist() == [[1, 5, 0.0], [1, 6, 10.0], [2, 5, 20.0], [2, 6, 30.0]]
    assert test["SessionId"].tolist() == [4, 4, 4]  # session 3 loses item 9 (not in train) -> length 1


def test_write_dataset(tmp_path):
    out = tmp_path / "synth"
    stats = write_dataset(out, n_items=100, n_sessions=800, seed=3, test_days=1.0)
    assert sorted(p.name for p in out.iterdir()) == ["test.tsv", "train.tsv"]  # no temp files left
    assert (out / "train.tsv").read_text().splitlines()[0] == "SessionId\tItemId\tTime"
    train = load_events(out / "train.tsv")
    test = load_events(out / "test.tsv")
    assert stats["train"] == {"events": len(train), "sessions": train.SessionId.nunique(),
                              "items": train.ItemId.nunique()}
    assert stats["test"]["events"] == len(test) > 0
    assert set(test["ItemId"]) <= set(train["ItemId"])
    assert (test.groupby("SessionId")["Time"].min() >= stats["split_time"] - 1e-3).all()
    # same seed, same files
    stats2 = write_dataset(tmp_path / "again", n_items=100, n_sessions=800, seed=3, test_days=1.0)
    assert (tmp_path / "again" / "train.tsv").read_bytes() == (out / "train.tsv").read_bytes()
    assert stats2["train"] == stats["train"]
    with pytest.raises(ValueError, match="test_days"):
        write_dataset(tmp_path / "x", n_items=50, n_sessions=100, test_days=20.0)


# ------------------------------------------------------------ a changing catalogue: new items, drifting popularity
DAYS, NEW_PER_DAY, BASE_ITEMS = 6, 15, 400


def _session_day(events):
    first = events.groupby("SessionId")["Time"].transform("min")
    return ((first - 1_600_000_000.0) // DAY_SECONDS).astype(int)


@pytest.fixture(scope="module")
def changing():
    return generate_sessions(n_items=BASE_ITEMS, n_sessions=6000, seed=5, span_days=DAYS,
                             new_items_per_day=NEW_PER_DAY, popularity_drift=0.5)


def test_new_items_first_appear_on_their_day(changing):
    day = _session_day(changing)
    assert day.min() == 0 and day.max() == DAYS - 1
    first_day = day.groupby(changing["ItemId"]).min()
    new_ids = np.arange(100_000 + BASE_ITEMS, 100_000 + BASE_ITEMS + NEW_PER_DAY * (DAYS - 1))
    release = np.repeat(np.arange(1, DAYS), NEW_PER_DAY)
    assert changing["ItemId"].max() < 100_000 + BASE_ITEMS + len(new_ids)
    seen = first_day.reindex(new_ids)
    assert not (seen < release).any()  # never before the release day
    assert (seen.to_numpy() == release).mean() >= 0.9  # and almost all on it: a meaningful first-day popularity
    item = changing["ItemId"].to_numpy()
    is_new = item >= new_ids[0]
    on_release = np.zeros(len(new_ids), dtype=np.int64)
    np.add.at(on_release, item[is_new] - new_ids[0], day.to_numpy()[is_new] == release[item[is_new] - new_ids[0]])
    assert np.median(on_release) >= 5  # events on the release day
    # the first day uses only the initial catalogue
    assert changing.loc[day == 0, "ItemId"].max() < 100_000 + BASE_ITEMS


def test_drift_changes_the_popularity_ranking():
    kwargs = dict(n_items=BASE_ITEMS, n_sessions=12000, seed=5, span_days=DAYS)

    def top20_kept(events):
        """How many of the first day's 20 most clicked initial items are still among the last day's 20."""
        day = _session_day(events)
        initial = events["ItemId"] < 100_000 + BASE_ITEMS
        first, last = (set(events.loc[(day == d) & initial, "ItemId"].value_counts().index[:20])
                       for d in (0, DAYS - 1))
        return len(first & last)

    still = top20_kept(generate_sessions(**kwargs, new_items_per_day=1))  # the new code path, no drift
    drifting = top20_kept(generate_sessions(**kwargs, popularity_drift=1.5))
    assert still >= 15  # without drift the top items stay the top items (up to sampling noise)
    assert drifting <= 10, (still, drifting)


def test_changing_catalogue_is_deterministic_and_keeps_the_default(changing, events):
    again = generate_sessions(n_items=BASE_ITEMS, n_sessions=6000, seed=5, span_days=DAYS,
                              new_items_per_day=NEW_PER_DAY, popularity_drift=0.5)
    pd.testing.assert_frame_equal(changing, again)
    default = generate_sessions(n_items=N_ITEMS, n_sessions=N_SESSIONS, mean_length=5.0, seed=7,
                                new_items_per_day=0, popularity_drift=0.0)
    pd.testing.assert_frame_equal(default, events)  # explicit zeros: the same frame as without the options
    lengths = changing.groupby("SessionId").size()
    assert lengths.min() >= 2 and abs(lengths.mean() - 5.0) < 0.3


@pytest.mark.parametrize("kwargs,match", [
    (dict(new_items_per_day=-1), "new_items_per_day must be >= 0"),
    (dict(new_items_per_day=1.5), "new_items_per_day must be an integer"),
    (dict(popularity_drift=-0.1), "popularity_drift must be in"),
    (dict(popularity_drift=float("nan")), "popularity_drift must be a finite number"),
])
def test_changing_catalogue_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_sessions(n_items=50, n_sessions=100, **kwargs)
