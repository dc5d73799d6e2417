"""Tests for gru4rec_tf.data: loading, vocabulary, session layout."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gru4rec_tf import data as data_mod
from gru4rec_tf.data import (
    DataError,
    ItemVocabulary,
    SessionData,
    atomic_write_path,
    load_events,
)

CANON = ["SessionId", "ItemId", "Time"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------------
# load_events: good inputs


def test_load_tsv_custom_columns_and_extra_columns(tmp_path):
    f = write(tmp_path / "ev.tsv", "user\tsid\tts\titem\n"
                                   "u1\t5\t100\t7\n"
                                   "u1\t5\t90\t8\n"
                                   "u2\t3\t50.5\t7\n")
    df = load_events(f, session_key="sid", item_key="item", time_key="ts")
    assert list(df.columns) == CANON
    assert df["SessionId"].tolist() == [5, 5, 3]  # file order kept
    assert df["ItemId"].tolist() == [7, 8, 7]
    assert df["Time"].tolist() == [100.0, 90.0, 50.5]
    assert df["SessionId"].dtype == np.int64 and df["ItemId"].dtype == np.int64
    assert df["Time"].dtype == np.float64
    assert isinstance(df.index, pd.RangeIndex)


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_load_csv_sniffs_delimiter(tmp_path, sep):
    rows = [["session_id", "item_id", "timeframe", "note"], ["1", "A", "3", "x"], ["1", "B", "4", "y"],
            ["2", "A", "1", "z"]]
    f = write(tmp_path / "ev.csv", "\n".join(sep.join(r) for r in rows) + "\n")
    df = load_events(f, session_key="session_id", item_key="item_id", time_key="timeframe")
    assert list(df.columns) == CANON
    assert df["SessionId"].tolist() == [1, 1, 2]
    assert df["ItemId"].tolist() == ["A", "B", "A"]
    assert df["ItemId"].dtype == object and all(isinstance(v, str) for v in df["ItemId"])
    assert df["Time"].tolist() == [3.0, 4.0, 1.0]


def test_load_csv_explicit_delimiter_and_txt(tmp_path):
    f = write(tmp_path / "ev.csv", "SessionId|ItemId|Time\n1|2|3\n1|4|5\n")
    df = load_events(f, delimiter="|")
    assert df.values.tolist() == [[1, 2, 3.0], [1, 4, 5.0]]
    g = write(tmp_path / "ev.txt", "SessionId\tItemId\tTime\n1\t2\t3\n")
    assert load_events(g)["ItemId"].tolist() == [2]


def test_load_mixed_and_decimal_ids_become_str(tmp_path):
    f = write(tmp_path / "ev.tsv", "SessionId\tItemId\tTime\ns1\t1.5\t1\ns1\t 2 \t2\n")
    df = load_events(f)
    assert df["SessionId"].tolist() == ["s1", "s1"]
    assert df["ItemId"].tolist() == ["1.5", "2"]  # exact text kept, whitespace stripped


def test_load_parquet_file_and_directory(tmp_path):
    frame = pd.DataFrame({"sess": [10, 10, 11], "it": ["a", "b", "a"], "t": [1, 2, 3], "other": [0, 0, 0]})
    f = tmp_path / "ev.parquet"
    frame.to_parquet(f, index=False)
    df = load_events(f, session_key="sess", item_key="it", time_key="t")
    assert list(df.columns) == CANON
    assert df.values.tolist() == [[10, "a", 1.0], [10, "b", 2.0], [11, "a", 3.0]]
    assert df["Time"].dtype == np.float64 and df["SessionId"].dtype == np.int64

    d = tmp_path / "parts"
    d.mkdir()
    frame.iloc[:2].to_parquet(d / "part-0.parquet", index=False)
    frame.iloc[2:].to_parquet(d / "part-1.parquet", index=False)
    dd = load_events(d, session_key="sess", item_key="it", time_key="t")
    assert sorted(map(tuple, dd.values.tolist())) == sorted(map(tuple, df.values.tolist()))

    g = tmp_path / "ev.pq"
    pd.DataFrame({"SessionId": [1, 1], "ItemId": [3.0, 4.0], "Time": [0.5, 1.5]}).to_parquet(g, index=False)
    assert load_events(g)["ItemId"].dtype == np.int64  # integral floats become int64

    stamps = pd.to_datetime([0, 1500], unit="ms")
    for i, t in enumerate([stamps, stamps.tz_localize("UTC").tz_convert("Europe/Budapest")]):
        h = tmp_path / f"ts{i}.parquet"
        pd.DataFrame({"SessionId": [1, 1], "ItemId": [3, 4], "Time": t}).to_parquet(h, index=False)
        assert load_events(h)["Time"].tolist() == [0.0, 1.5]  # timestamps become unix seconds


# ---------------------------------------------------------------------------------------------------------------
# load_events: bad inputs -> DataError naming the file and the problem


def check_error(f, match_parts, **kwargs):
    with pytest.raises(DataError) as info:
        load_events(f, **kwargs)
    msg = str(info.value)
    assert Path(f).name in msg, msg
    for part in match_parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


def test_missing_file(tmp_path):
    check_error(tmp_path / "nope.tsv", ["does not exist"])


def test_empty_file(tmp_path):
    check_error(write(tmp_path / "empty.tsv", ""), ["empty"])
    check_error(write(tmp_path / "empty.csv", ""), ["empty"])


def test_header_only(tmp_path):
    check_error(write(tmp_path / "head.tsv", "SessionId\tItemId\tTime\n"), ["no data rows"])


def test_missing_column_lists_found_columns(tmp_path):
    f = write(tmp_path / "cols.tsv", "SessionId\tProduct\tTime\n1\t2\t3\n")
    msg = check_error(f, ["missing column", "ItemId", "Product", "SessionId"])
    assert "columns found" in msg


def test_wrong_delimiter_hint(tmp_path):
    f = write(tmp_path / "semi.tsv", "SessionId;ItemId;Time\n1;2;3\n")
    check_error(f, ["missing column", "delimiter"])


def test_non_numeric_time_names_row(tmp_path):
    f = write(tmp_path / "time.tsv", "SessionId\tItemId\tTime\n1\t2\t3\n1\t3\tnoon\n1\t4\t5\n")
    check_error(f, ["non-numeric Time", "'noon'", "data row 2", "line 3"])


def test_missing_time_names_row(tmp_path):
    f = write(tmp_path / "time2.tsv", "SessionId\tItemId\tTime\n1\t2\t3\n1\t3\t4\n1\t4\t\n")
    check_error(f, ["missing Time", "data row 3", "line 4"])


def test_nan_session_id(tmp_path):
    f = write(tmp_path / "sess.tsv", "SessionId\tItemId\tTime\n1\t2\t3\n1\t3\t4\nNaN\t4\t5\n")
    check_error(f, ["missing SessionId", "data row 3", "line 4"])


def test_empty_item_id(tmp_path):
    f = write(tmp_path / "item.tsv", "SessionId\tItemId\tTime\n1\t2\t3\n1\t\t4\n")
    check_error(f, ["ItemId", "data row 2"])
    g = write(tmp_path / "item2.csv", "SessionId,ItemId,Time\n1,a,3\n1,  ,4\n")
    check_error(g, ["empty ItemId", "data row 2"])


def test_parquet_errors(tmp_path):
    f = tmp_path / "bad.parquet"
    pd.DataFrame({"SessionId": [1.0, np.nan], "ItemId": [1, 2], "Time": [0.0, 1.0]}).to_parquet(f, index=False)
    check_error(f, ["missing SessionId", "row 2"])
    g = tmp_path / "cols.parquet"
    pd.DataFrame({"SessionId": [1], "Item": [1], "Time": [0.0]}).to_parquet(g, index=False)
    check_error(g, ["missing column", "ItemId", "Item"])
    h = tmp_path / "rows.parquet"
    pd.DataFrame({"SessionId": [1], "ItemId": [1], "Time": [0.0]}).iloc[:0].to_parquet(h, index=False)
    check_error(h, ["no rows"])


def test_unsupported_extension_and_bad_args(tmp_path):
    f = write(tmp_path / "ev.json", "{}")
    check_error(f, ["unsupported file extension"])
    g = write(tmp_path / "ev.log", "SessionId ItemId Time\n1 2 3\n")
    assert load_events(g, delimiter=" ")["ItemId"].tolist() == [2]
    with pytest.raises(ValueError, match="must differ"):
        load_events(g, session_key="a", item_key="a", time_key="b")


# ---------------------------------------------------------------------------------------------------------------
# ItemVocabulary


def frame(sessions, items, times):
    return pd.DataFrame({"SessionId": sessions, "ItemId": items, "Time": np.asarray(times, dtype=float)})


def test_vocab_first_appearance_and_support():
    ev = frame([1, 1, 2, 2, 2, 3], [30, 10, 10, 20, 30, 30], range(6))
    v = ItemVocabulary.from_events(ev)
    assert v.item_ids.tolist() == [30, 10, 20]
    assert v.support.tolist() == [3, 2, 1]
    assert v.item_ids.dtype == np.int64 and v.support.dtype == np.int64
    assert len(v) == 3


def test_vocab_lookup():
    v = ItemVocabulary.from_events(frame([1, 1, 1], [30, 10, 20], range(3)))
    idx = v.lookup([10, 99, 30, 20])
    assert idx.dtype == np.int32
    assert idx.tolist() == [1, -1, 0, 2]
    assert v.lookup(pd.Series([20, 20])).tolist() == [2, 2]
    assert v.lookup(np.array(["10", "010", "x"], dtype=object)).tolist() == [1, -1, -1]
    s = ItemVocabulary.from_events(frame([1, 1], ["a", "5"], range(2)))
    assert s.lookup([5, 6]).tolist() == [1, -1]  # ints compared as text against a str vocabulary
    assert s.lookup(["a", "b"]).tolist() == [0, -1]


def test_vocab_rejects_duplicates_and_bad_support():
    with pytest.raises(ValueError, match="unique"):
        ItemVocabulary([1, 2, 1])
    with pytest.raises(ValueError, match="support"):
        ItemVocabulary([1, 2], [1])


@pytest.mark.parametrize(
    "ids",
    [
        np.array([100005, 3, -7, 2**62], dtype=np.int64),
        np.array(["a", "NA", "007", "", " x ", "#c", '"q"', "nan"], dtype=object),
        np.array([], dtype=np.int64),
    ],
)
def test_vocab_save_load_round_trip(tmp_path, ids):
    v = ItemVocabulary(ids, np.arange(len(ids), dtype=np.int64) * 3)
    f = tmp_path / "vocab.tsv"
    v.save(f)
    lines = f.read_text().splitlines()
    assert lines[0].startswith("# dtype=")
    assert lines[1] == "ItemId\tindex\tsupport"
    w = ItemVocabulary.load(f)
    assert w == v
    assert w.item_ids.dtype == v.item_ids.dtype
    assert w.item_ids.tolist() == v.item_ids.tolist()
    assert w.support.tolist() == v.support.tolist()


def test_vocab_load_without_dtype_line_and_malformed(tmp_path):
    f = write(tmp_path / "v.tsv", "ItemId\tindex\tsupport\n12\t0\t4\n7\t1\t1\n")
    v = ItemVocabulary.load(f)
    assert v.item_ids.dtype == np.int64 and v.item_ids.tolist() == [12, 7]
    g = write(tmp_path / "bad.tsv", "# dtype=int64\nItemId\tindex\tsupport\n12\t1\t4\n")
    with pytest.raises(DataError, match="bad.tsv.*index"):
        ItemVocabulary.load(g)
    with pytest.raises(DataError, match="does not exist"):
        ItemVocabulary.load(tmp_path / "missing.tsv")


def test_vocab_save_is_atomic(tmp_path, monkeypatch):
    f = tmp_path / "vocab.tsv"
    old = ItemVocabulary([1, 2], [5, 6])
    old.save(f)
    before = f.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(data_mod.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        ItemVocabulary([3, 4, 5], [1, 1, 1]).save(f)
    assert f.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.tsv"]  # no temp file left behind
    monkeypatch.undo()

    with pytest.raises(ValueError, match="tab"):
        ItemVocabulary(np.array(["a\tb"], dtype=object), [1]).save(tmp_path / "other.tsv")
    assert not (tmp_path / "other.tsv").exists()


def test_atomic_write_path_failure_keeps_target(tmp_path):
    target = write(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_write_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_write_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


# ---------------------------------------------------------------------------------------------------------------
# SessionData


def sessions_as_lists(sd, vocab):
    return [vocab.item_ids[sd.item_idx[a:b]].tolist() for a, b in zip(sd.session_offsets[:-1], sd.session_offsets[1:])]


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
    for a, b in zip(offs[:-1], offs[1:]):
        assert (np.diff(sd.times[a:b]) >= 0).all()
    assert sd.n_transitions == sd.n_events - sd.n_sessions


def test_modules_do_not_import_tensorflow():
    code = (
        "import sys; import gru4rec_tf.data, gru4rec_tf.synthetic; "
        "bad = [m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------------------------------------------------------
# real data (skipped when ../shared/data is absent)


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


def test_diginetica_sample_semicolon(shared_data):
    ev = load_events(shared_data / "diginetica_sample" / "train-item-views.csv",
                     session_key="session_id", item_key="item_id", time_key="timeframe")
    assert len(ev) == 12_391
    assert ev["SessionId"].nunique() == 2_986
    assert ev["ItemId"].nunique() == 7_139
