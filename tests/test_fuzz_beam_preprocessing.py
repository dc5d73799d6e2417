"""Fuzzed click logs through the Beam preprocessing (issue 15 §3), property-based (Hypothesis).

Each case writes a small click log with bad rows mixed into good sessions (cells of every kind from
``test_fuzz.FIELDS``: encodings, quotes, huge and negative numbers, NaN/inf, empty fields; rows with a missing or an
extra field, blank lines; a BOM, CRLF or CR line ends, delimiters ``, ; tab |``, latin-1 / cp1252 / UTF-16 files),
runs ``gru4rec preprocess``'s pipeline (:func:`gru4rec_tf.preprocessing.build_and_run`) on the DirectRunner's
in-memory runner, and checks that it ends in one of:

* the result of the non-Beam path: the independent pandas implementation of the same rules
  (`tests/pandas_reference.py`) applied to the rows the file holds (the cells as written,
  decoded as UTF-8), with the same row and rejection counts;
* one clear ``DataError`` naming the file (and, for malformed rows, the rejected rows with their reason), exactly
  when the rules call for it: a header that is not UTF-8 or lacks a column, no data rows, more malformed rows than
  ``max_rejected_ratio``, no training session left;

and that a failure leaves nothing in the output's directory (no output, no staging directory).

Each case costs a pipeline run (seconds): ``--fuzz-beam-examples`` sets the number of cases (default 15);
``--reliability-log`` receives every case's outcome, as in ``test_fuzz``.
"""
import csv
import io
import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import preprocessing_testlib as lib
from gru4rec_tf.data import tfrecord_io
from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.preprocessing import PreprocessOptions, build_and_run
import pandas_reference
import sizes
from test_fuzz import FIELDS, assert_clear, log

pytestmark = pytest.mark.slow
EXAMPLES = sizes.current().fuzz_beam_examples
FUZZ_BEAM = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.data_too_large])
HEADER = ["SessionId", "ItemId", "Time"]
BASE = 1_600_000_000
# one record per line: embedded line breaks are documented as unsupported (records.split_line)
CELLS = FIELDS.filter(lambda cell: "\n" not in cell and "\r" not in cell)


@st.composite
def rows(draw):
    """Good sessions (1-4 events, half a day apart; the last one is the test split) with fuzzed cells and bad rows.

    Returns a list of lines: a list of cells, or ``None`` for a blank line.
    """
    out = []
    for session in range(draw(st.integers(0, 8))):
        for k in range(draw(st.integers(1, 4))):
            cells = [str(session), str(100 + (session + k) % 4), repr(BASE + 43_200.0 * session + 10.5 * k)]
            kind = draw(st.integers(0, 9))
            if kind <= 1:  # a fuzzed cell
                cells[draw(st.integers(0, 2))] = draw(CELLS)
            elif kind == 2:  # a missing or an extra field
                cells = cells[:2] if draw(st.booleans()) else cells + [draw(CELLS)]
            elif kind == 3:
                out.append(None)
            out.append(cells)
    return out


def encode_line(cells, delimiter: str, encoding: str) -> tuple[bytes, list | None]:
    """The line's bytes (CSV-quoted where needed, then encoded), and its cells as UTF-8 reads them (None: not
    UTF-8)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="", quoting=csv.QUOTE_MINIMAL).writerow(cells)
    data = buffer.getvalue().encode(encoding, "replace")
    try:
        read = [cell.encode(encoding, "replace").decode("utf-8") for cell in cells]
    except UnicodeDecodeError:
        read = None
    return data, read


def expected_outcome(lines, options: PreprocessOptions, path: str, *, header_ok: bool):
    """What the rules say: ``("error", message fragment)`` or ``("ok", stats of the input, pandas splits)``."""
    if not header_ok:
        return "error", str(path), None
    n_rows = sum(1 for line in lines if line is not None)
    malformed = sum(1 for line in lines if line is not None and (line[1] is None or len(line[1]) != len(HEADER)))
    table = [line[1] for line in lines if line is not None and line[1] is not None and len(line[1]) == len(HEADER)]
    frame = pd.DataFrame(table, columns=HEADER, dtype=object)
    parsed = len(pandas_reference._parse(frame, options)) if table else 0  # noqa: SLF001
    rejected = malformed + len(table) - parsed
    if n_rows == 0:
        return "error", f"{path}: no data rows", None
    if rejected / n_rows > options.max_rejected_ratio:
        return "error", f"{path}: {rejected} of {n_rows} rows are malformed", None
    splits = pandas_reference.preprocess_pandas(frame, options) if parsed else None
    if splits is None or splits["train"].empty:
        return "error", f"{path}: no training sessions left after cleaning and splitting", None
    return "ok", {"rows": n_rows, "rows_rejected": rejected}, splits


@FUZZ_BEAM
@given(lines=rows(), delimiter=st.sampled_from([",", ";", "\t", "|"]),
       newline=st.sampled_from(["\n", "\r\n", "\n", "\r\n", "\r"]), bom=st.booleans(),
       encoding=st.sampled_from(["utf-8", "utf-8", "latin-1", "cp1252", "utf-16"]), quote_header=st.booleans(),
       max_rejected_ratio=st.sampled_from([0.0, 0.5, 1.0]))
# found by this test: a quoted header in a file of lone-CR line ends crashed the header check with a csv.Error
@example(lines=[["0", "100", "1600000000.0"], ["0", "101", "1600000010.5"]], delimiter=",", newline="\r", bom=False,
         encoding="utf-8", quote_header=True, max_rejected_ratio=0.0)
def test_beam_preprocessing_of_fuzzed_click_logs(tmp_path_factory, lines, delimiter, newline, bom, encoding,
                                                 quote_header, max_rejected_ratio):
    root = tmp_path_factory.mktemp("beam_fuzz")
    path, out_parent = root / "in" / "clicks.csv", root / "out"
    path.parent.mkdir()
    out_parent.mkdir()
    header = delimiter.join(f'"{h}"' if quote_header else h for h in HEADER)
    written = [None if cells is None else encode_line(cells, delimiter, encoding) for cells in lines]
    nl = newline.encode(encoding)
    data = header.encode(encoding) + nl + b"".join((w[0] if w else b"") + nl for w in written)
    if encoding == "utf-16":
        data = ("\n".join([header] + [delimiter.join(c) if c else "" for c in lines]) + "\n").encode("utf-16")
    if bom and encoding == "utf-8":
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    options = PreprocessOptions(input=str(path), output=str(out_parent / "tensors"), delimiter=delimiter,
                                min_item_support=1, test_days=0.25, max_rejected_ratio=max_rejected_ratio,
                                rows_per_shard=3)
    # a UTF-16 file has no UTF-8 header; a CR-only file is one line, its header is not the three columns
    header_ok = encoding != "utf-16" and newline != "\r"
    kind, want, splits = expected_outcome(written, options, str(path), header_ok=header_ok)
    case = (encoding, repr(delimiter), repr(newline), bom, max_rejected_ratio, lines[:3])
    try:
        stats = build_and_run(options, lib.IN_MEMORY)
    except (DataError, ValueError) as err:
        message = assert_clear(err)
        assert isinstance(err, DataError), message
        assert kind == "error" and want in message, (want, message)
        assert os.listdir(out_parent) == [], "a failed run left output behind"
        log("Beam preprocessing", case, "error: " + message)
        return
    assert kind == "ok", f"the pipeline succeeded, expected an error: {want}"
    assert {k: stats["input"][k] for k in want} == want
    for name in options.split_names:
        got = tfrecord_io.read_session_tensors(f"{options.output}/{name}")
        lib.assert_same_events(got, splits[name], name)
        assert {k: stats[name][k] for k in ("events", "sessions", "items")} == lib.split_counts(splits[name])
    assert os.listdir(out_parent) == ["tensors"]  # published, no staging directory left beside it
    log("Beam preprocessing", case, f"ok: {stats['train']['events']} train events, "
                                    f"{stats['input']['rows_rejected']} rows rejected")


def test_quoted_row_with_a_stray_carriage_return_is_rejected_not_a_crash(tmp_path):
    """Found by the fuzzing above: the CSV reader raised on a quoted line with a CR outside the quotes (a crash of
    the Beam worker); such a row is now rejected as ``bad_quoting`` and counted like any malformed row."""
    good = [f"{s},{100 + (s + k) % 4},{BASE + 43_200 * s + 10 * k}" for s in range(6) for k in range(3)]
    path = tmp_path / "clicks.csv"
    path.write_bytes(("\n".join(["SessionId,ItemId,Time", *good[:4], '"9",10\r1,1600000000', *good[4:]]) + "\n")
                     .encode("utf-8"))
    options = PreprocessOptions(input=str(path), output=str(tmp_path / "out"), min_item_support=1,
                                max_rejected_ratio=0.1)
    stats = build_and_run(options, lib.IN_MEMORY)
    assert stats["input"]["rows"] == len(good) + 1
    assert stats["input"]["rejected_by_reason"] == {"bad_quoting": 1}
    assert [row["reason"] for row in lib.read_rejected(tmp_path / "out")] == ["bad_quoting"]
