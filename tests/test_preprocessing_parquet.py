"""Parquet click logs: typed columns (int64 IDs, millisecond times), nulls rejected, parity with pandas."""
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import preprocessing_testlib as lib
from gru4rec_tf.data import tfrecord_io
from gru4rec_tf.preprocessing import PreprocessOptions, build_and_run
from pandas_reference import preprocess_pandas, read_click_log_pandas
from gru4rec_tf.data.synthetic import generate_sessions


def test_parquet_log_with_millisecond_times(tmp_path):
    events = generate_sessions(n_items=80, n_sessions=400, mean_length=4.0, seed=11, span_days=4.0)
    table = pa.table({
        "session": pa.array(events["SessionId"], pa.int64()),
        "item": pa.array(events["ItemId"].astype("float64").where(events.index != 5), pa.float64()),  # one null
        "ms": pa.array(np.round(events["Time"].to_numpy() * 1000).astype(np.int64), pa.int64()),
        "unused": pa.array(["x"] * len(events)),
    })
    directory = tmp_path / "log"
    directory.mkdir()
    pq.write_table(table.slice(0, 700), directory / "part-0.parquet", row_group_size=256)
    pq.write_table(table.slice(700), directory / "part-1.parquet", row_group_size=256)
    (directory / "_SUCCESS").write_text("")  # marker files of a directory input are skipped

    options = PreprocessOptions(input=str(directory), output=str(tmp_path / "out"), input_format="parquet",
                                session_key="session", item_key="item", time_key="ms", time_format="unix_ms",
                                min_item_support=3, test_days=1)
    stats = build_and_run(options, lib.IN_MEMORY)
    frames = [pd.read_parquet(p) for p in sorted(directory.glob("*.parquet"))]
    reference = preprocess_pandas(pd.concat(frames, ignore_index=True), options)
    assert read_click_log_pandas(options).events.shape[0] == len(events)
    for name in ("train", "test"):
        lib.assert_same_events(tfrecord_io.read_session_tensors(tmp_path / "out" / name), reference[name], name)
    assert stats["input"]["rows"] == len(events) and stats["input"]["rejected_by_reason"] == {"empty_id": 1}
    (rejected,) = lib.read_rejected(tmp_path / "out")
    assert rejected["source"].endswith("part-0.parquet")
    assert json.loads(rejected["line"]) == {"row": 6, "item": None, "ms": int(table["ms"][5].as_py()),
                                            "session": int(events["SessionId"][5])}
