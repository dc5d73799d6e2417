"""Bad input and faults: clear errors naming the file or column, and never a half-written output."""
import pytest

import preprocessing_testlib as lib
from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.preprocessing import PreprocessOptions, build_and_run
from gru4rec_tf.preprocessing import example_codec

HEADER = "SessionId,ItemId,Time"


def _good_rows(n_sessions=6, length=4):
    return [f"{s},{100 + (s + k) % 5},{1_600_000_000 + 86_400 * s + 10 * k}"
            for s in range(n_sessions) for k in range(length)]


def _write(path, lines, raw_tail=b""):
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + raw_tail)
    return path


def _options(path, output, **kwargs):
    return PreprocessOptions(input=str(path), output=str(output), min_item_support=1, **kwargs)


def _leftovers(directory):
    """Anything but the input files: outputs or staging directories."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith((".csv", ".gz")))


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file does not exist"):
        build_and_run(_options(tmp_path / "nope.csv", tmp_path / "out"), lib.IN_MEMORY)
    assert _leftovers(tmp_path) == []


def test_missing_column_names_it_and_the_columns_found(tmp_path):
    path = _write(tmp_path / "clicks.csv", ["SessionId,ItemId,Timestamp", "1,2,3"])
    with pytest.raises(DataError, match=r"clicks\.csv: missing column\(s\) \['Time'\]; columns found: "
                                        r"\['SessionId', 'ItemId', 'Timestamp'\]"):
        build_and_run(_options(path, tmp_path / "out"), lib.IN_MEMORY)
    assert _leftovers(tmp_path) == []


def test_wrong_delimiter_is_hinted(tmp_path):
    path = _write(tmp_path / "clicks.csv", ["SessionId;ItemId;Time", "1;2;3"])
    with pytest.raises(DataError, match="is the delimiter ',' right"):
        build_and_run(_options(path, tmp_path / "out"), lib.IN_MEMORY)


def test_unreadable_file_names_it(tmp_path):
    path = tmp_path / "clicks.csv.gz"
    path.write_bytes(b"this is not gzip data")
    with pytest.raises(DataError, match=r"clicks\.csv\.gz: cannot read file"):
        build_and_run(_options(path, tmp_path / "out"), lib.IN_MEMORY)
    assert _leftovers(tmp_path) == []


def test_times_in_milliseconds_read_as_seconds_name_the_file_and_the_time_unit(tmp_path):
    # 1.6e12 "seconds" is past the year 9999: the statistics cannot write it as a date, and said so with a raw
    # OverflowError from datetime before
    rows = [f"{s},{100 + k},{1_600_000_000_000 + 86_400_000 * s + 10_000 * k}" for s in range(6) for k in range(4)]
    path = _write(tmp_path / "clicks.csv", [HEADER, *rows])
    with pytest.raises(DataError, match=r"clicks\.csv: an event time of \d+ s since 1970 lies beyond the year "
                                        r"9999: times in milliseconds .* Check time_format"):
        build_and_run(_options(path, tmp_path / "out"), lib.IN_MEMORY)
    assert _leftovers(tmp_path) == []


def test_non_empty_output_is_refused(tmp_path):
    path = _write(tmp_path / "clicks.csv", [HEADER, *_good_rows()])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="output exists and is not an empty directory"):
        build_and_run(_options(path, tmp_path / "out"), lib.IN_MEMORY)
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"


def test_too_many_malformed_rows_fail_and_leave_nothing(tmp_path):
    bad = ["1,100", "2,,1600000000", "3,101,not-a-time"]
    path = _write(tmp_path / "clicks.csv", [HEADER, *_good_rows(), *bad], raw_tail=b"4,\xff\xfe,1600000000\n")
    with pytest.raises(DataError) as err:
        build_and_run(_options(path, tmp_path / "out", max_rejected_ratio=0.1), lib.IN_MEMORY)
    message = str(err.value)
    assert "clicks.csv: 4 of 28 rows are malformed (14.29% > max_rejected_ratio 10%)" in message
    assert "'bad_time': 1, 'column_count': 1, 'empty_id': 1, 'not_utf8': 1" in message
    assert '"line": "3,101,not-a-time"' in message  # the first rejected rows are shown
    assert _leftovers(tmp_path) == []  # neither OUTPUT nor the staging directory


def test_failure_inside_the_pipeline_leaves_nothing(tmp_path, monkeypatch):
    path = _write(tmp_path / "clicks.csv", [HEADER, *_good_rows()])

    def broken_encoder(*args, **kwargs):  # the shard writer fails after the vocabulary files were written
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(example_codec, "session_tfrecords", broken_encoder)
    with pytest.raises(Exception, match="disk full"):
        build_and_run(_options(path, tmp_path / "out", test_days=2), lib.IN_MEMORY)
    assert _leftovers(tmp_path) == []
