"""Tests for gru4rec_tf.data.vocabulary: item IDs <-> indices, support, the vocabulary file."""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.data.vocabulary import ItemVocabulary


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


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

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        ItemVocabulary([3, 4, 5], [1, 1, 1]).save(f)
    assert f.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.tsv"]  # no temp file left behind
    monkeypatch.undo()

    with pytest.raises(ValueError, match="tab"):
        ItemVocabulary(np.array(["a\tb"], dtype=object), [1]).save(tmp_path / "other.tsv")
    assert not (tmp_path / "other.tsv").exists()
