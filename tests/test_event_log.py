"""Tests for gru4rec_tf.data.event_log: reading event logs into canonical columns, with clear errors."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.data.event_log import load_events

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


def test_modules_do_not_import_tensorflow():
    code = (
        "import sys; import gru4rec_tf.data.event_log, gru4rec_tf.data.vocabulary, gru4rec_tf.data.session_data, "
        "gru4rec_tf.fileio, "
        "gru4rec_tf.data.synthetic, gru4rec_tf.export.signatures; "
        "bad = [m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------------------------------------------------------
# real data (skipped when ../shared/data is absent)


@pytest.mark.slow
def test_diginetica_sample_semicolon(shared_data):
    ev = load_events(shared_data / "diginetica_sample" / "train-item-views.csv",
                     session_key="session_id", item_key="item_id", time_key="timeframe")
    assert len(ev) == 12_391
    assert ev["SessionId"].nunique() == 2_986
    assert ev["ItemId"].nunique() == 7_139
