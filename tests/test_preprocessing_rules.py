"""Unit tests of the preprocessing building blocks that need no pipeline run (fast)."""
import json

import numpy as np
import pandas as pd
import pytest

from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.preprocessing import PreprocessOptions
from gru4rec_tf.preprocessing import session_rules as sess
from gru4rec_tf.preprocessing.example_codec import encode_session_example
from pandas_reference import preprocess_pandas
from gru4rec_tf.preprocessing.records import RowParser, parse_time_us, split_line
from gru4rec_tf.preprocessing.report import check_stats, format_summary
from gru4rec_tf.preprocessing.staging import StagingDir


def _options(**kwargs):
    return PreprocessOptions(**{"input": "in.csv", "output": "out", **kwargs})


# ---------------------------------------------------------------------------------------------------------------
# options


def test_options_defaults_follow_the_contract():
    opts = _options()
    assert (opts.session_gap_s, opts.min_item_support, opts.min_session_length, opts.time_format) == \
        (3600.0, 5, 2, "unix_s")
    assert opts.split_names == ("train", "test") and opts.filter_rounds == 1
    assert _options(valid_days=2, iterate_filters=True).split_names == ("train", "test", "train_tr", "valid")
    assert _options(input="x.tsv").text_delimiter == "\t" and _options(input="x.csv.gz").text_delimiter == ","
    assert _options(delimiter="tab").delimiter == "\t" and _options(input="d/x.parquet").format == "parquet"
    assert _options(user_key="u").columns == {"item": "ItemId", "time": "Time", "user": "u"}


@pytest.mark.parametrize("kwargs, message", [
    ({"time_format": "days"}, "time_format must be one of"),
    ({"split_on": "middle"}, "split_on must be one of"),
    ({"test_days": 0}, "test_days must be a positive finite number"),
    ({"valid_days": -1}, "valid_days must be a positive"),
    ({"min_item_support": 0}, "min_item_support must be an integer >= 1"),
    ({"max_rejected_ratio": 2}, r"max_rejected_ratio must be a number in \[0, 1\]"),
    ({"delimiter": ";;"}, "delimiter must be a single character"),
    ({"event_type_filter": ("view",)}, "event_type_filter needs event_type_key"),
    ({"item_key": "Time"}, "must name different columns"),
    ({"output": ""}, "output must be a non-empty string"),
])
def test_options_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _options(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# rows and times


def test_parse_time_formats_to_microseconds():
    assert parse_time_us("1462752526.309", "unix_s") == 1462752526309000
    assert parse_time_us("1462752526309", "unix_ms") == 1462752526309000
    assert parse_time_us("2016-05-09T00:08:46.309Z", "iso") == 1462752526309000
    assert parse_time_us("2016-05-09 02:08:46.309+02:00", "iso") == 1462752526309000
    assert parse_time_us("2016-05-09T00:08:46.309", "iso") == 1462752526309000  # naive = UTC
    for bad, fmt in (("nan", "unix_s"), ("inf", "unix_ms"), ("1e300", "unix_s"), ("x", "unix_s"), ("9", "iso")):
        with pytest.raises(ValueError):
            parse_time_us(bad, fmt)


def test_row_parser_rejects_and_filters():
    parser = RowParser(["s", "i", "t", "e"], {"session": "s", "item": "i", "time": "t", "event_type": "e"},
                       delimiter=";", time_format="unix_s", event_types=("view",))
    assert parser.parse(" 7 ; 11 ;5;view") == ("ok", ("7", "11", 5_000_000))
    assert parser.parse("7;11;5;cart") == ("filtered", None)
    assert parser.parse("7;11;5") == ("rejected", "column_count")
    assert parser.parse("7;;5;view") == ("rejected", "empty_id")
    assert parser.parse("7;11;;view") == ("rejected", "bad_time")
    assert split_line('a,"b,c",d', ",") == ["a", "b,c", "d"]


# ---------------------------------------------------------------------------------------------------------------
# session rules


def test_session_rules():
    s = sess.make_session("s", [("b", 3), ("a", 1), ("a", 2), ("c", 3), ("a", 4)])
    assert s == ("s", (1, 2, 3, 3, 4), ("a", "a", "b", "c", "a"))  # ties by item text
    assert sess.dedupe_consecutive(s) == ("s", (1, 3, 3, 4), ("a", "b", "c", "a"))
    assert sess.drop_items(s, {"a"}) == ("s", (3, 3), ("b", "c"))
    assert sess.keep_items(s, {"a", "c"}) == ("s", (1, 2, 3, 4), ("a", "a", "c", "a"))
    assert sess.truncate_before(s, 3) == ("s", (1, 2), ("a", "a"))
    assert list(sess.first_positions(s)) == [("a", 0), ("b", 2), ("c", 3)]
    gap = list(sess.split_by_gap("u", [("x", 0), ("y", 10), ("z", 21), ("w", 31)], gap_us=10))
    assert gap == [("u#0", (0, 10), ("x", "y")), ("u#1", (21, 31), ("z", "w"))]  # a gap of exactly 10 keeps going
    assert sorted(["b", "10", "-3", "9", "a10"], key=sess.id_sort_key) == ["-3", "9", "10", "a10", "b"]


def test_pandas_reference_small_case():
    """Dedupe, one filter pass vs iteration, and the split rules on a hand-checked log."""
    rows = [  # session, item, time (s)
        (1, "a", 0), (1, "a", 1), (1, "b", 2),            # dedupe -> a b
        (2, "a", 10), (2, "c", 11),                       # c is rare (support 1)
        (3, "b", 20), (3, "a", 21), (3, "d", 22),         # d is rare
        (4, "a", 86_400 * 2), (4, "b", 86_400 * 2 + 1),   # test (starts in the last day)
        (5, "a", 86_400), (5, "b", 86_400 * 2 + 9),       # starts before the split: train part "a" only -> dropped
    ]
    df = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]).astype({"SessionId": str})
    opts = _options(dedupe_consecutive=True, min_item_support=2, test_days=1)
    out = preprocess_pandas(df, opts)
    assert out["train"].groupby("SessionId", sort=False)["ItemId"].apply("".join).to_dict() == \
        {"1": "ab", "3": "ba"}
    assert out["test"]["ItemId"].tolist() == ["a", "b"]
    assert ItemVocabulary.from_events(out["train"]).item_ids.tolist() == ["a", "b"]


# ---------------------------------------------------------------------------------------------------------------
# encoding, report, staging


def test_example_encoding_decodes_with_tensorflow():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    record = encode_session_example("s1", ["x", "ÿ"], [0, 2**40], [-5, 1462752526309000])
    feature = tf.train.Example.FromString(record).features.feature
    assert feature["session_id"].bytes_list.value == [b"s1"]
    assert [v.decode() for v in feature["item_id"].bytes_list.value] == ["x", "ÿ"]
    assert list(feature["item_idx"].int64_list.value) == [0, 2**40]
    assert list(feature["time_us"].int64_list.value) == [-5, 1462752526309000]
    assert list(feature["session_start_us"].int64_list.value) == [-5]
    with pytest.raises(ValueError, match="same non-zero length"):
        encode_session_example("s", ["x"], [0, 1], [0])


def _stats(rows=100, rejected=0, converged=True, train_sessions=5):
    split = {"events": 10, "sessions": train_sessions, "items": 3, "time_min": None, "time_max": None}
    return {
        "input": {"rows": rows, "rows_rejected": rejected, "rows_filtered_event_type": 0,
                  "rejected_ratio": rejected / rows if rows else 0.0, "rejected_by_reason": {}},
        "cleaning": {"converged": converged, "rare_items_per_round": [3, 1], "sessions_in": split,
                     "sessions_out": split, "rounds_removing_items": 1, "events_removed_dedupe": 0},
        "train": split, "test": split,
    }


def test_check_stats_limits():
    opts = _options(max_rejected_ratio=0.1, iterate_filters=True)
    check_stats(_stats(rejected=10), opts, [])  # exactly at the limit passes
    with pytest.raises(DataError, match=r"11 of 100 rows are malformed"):
        check_stats(_stats(rejected=11), opts, ['{"line": "x"}'])
    with pytest.raises(DataError, match="no data rows"):
        check_stats(_stats(rows=0), opts, [])
    with pytest.raises(ValueError, match="raise max_filter_rounds"):
        check_stats(_stats(converged=False), opts, [])
    with pytest.raises(DataError, match="no training sessions left"):
        check_stats(_stats(train_sessions=0), opts, [])
    assert "train:" in format_summary(_stats())


def test_staging_dir_publishes_or_discards(tmp_path):
    stage = StagingDir(str(tmp_path / "out"))
    (tmp_path / "out_marker").write_text("")
    with open(stage.join("stats.json"), "w") as fh:
        json.dump({}, fh)
    assert not (tmp_path / "out").exists()
    stage.publish()
    assert (tmp_path / "out" / "stats.json").exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="not an empty directory"):
        StagingDir(str(tmp_path / "out"))
    again = StagingDir(str(tmp_path / "out"), overwrite=True)
    with open(again.join("new.txt"), "w") as fh:
        fh.write("new")
    again.publish()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["new.txt"]
    failed = StagingDir(str(tmp_path / "other"))
    failed.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out_marker"]


def test_staging_by_file_rename_puts_the_marker_last(tmp_path):
    """The object-store path (no directory rename), exercised on local files."""
    stage = StagingDir(str(tmp_path / "out"))
    for name in ("stats.json", "train/part-00000.tfrecord", "vocab.tsv"):
        (tmp_path / stage.path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / stage.path / name).write_text(name)
    stage._publish_by_file()  # pylint: disable=protected-access
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()) == \
        ["stats.json", "train/part-00000.tfrecord", "vocab.tsv"]
    assert np.all([not p.name.startswith(".") for p in tmp_path.iterdir()])
