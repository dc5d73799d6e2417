"""The batched (Arrow) click-log reader gives exactly what the per-row reader gives: the same events, the same
rejected rows with the same reasons and text, the same counters; on fuzzed lines (Hypothesis), on byte ranges of a
file, on typed Parquet columns and through Beam against ``ReadClickLog``."""
import dataclasses
import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import preprocessing_testlib as lib
from gru4rec_tf.preprocessing import PreprocessOptions
from gru4rec_tf.preprocessing import arrow_read
from gru4rec_tf.preprocessing.records import RejectReason, RowParser

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HEADER = ["SessionId", "ItemId", "Type", "Time"]
ROLES = {"session": "SessionId", "item": "ItemId", "time": "Time", "event_type": "Type"}

ID_CELLS = st.one_of(st.integers(-5, 10**6).map(str), st.sampled_from(["", " ", " 7 ", "\u00a07\u2003", "\x1c8",
                                                                       "é", "a b", '"q"', '"a,b"', '""', "\t"]),
                     st.text(max_size=4))
NUMBER_CELLS = st.one_of(
    st.floats(min_value=-1e12, max_value=4e12, allow_nan=False).map(repr),
    st.integers(-10**20, 10**20).map(str),
    st.builds(lambda a, b: f"{a}.{b:0>3}", st.integers(0, 2_000_000_000), st.integers(0, 999)),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "-0", "1_000", " 12 ", "+5", ".5", "5.", "0x10",
                     "4611686018427.3879", "4611686018427387.904", "١٢", "9" * 30, "1e5"]))
ISO_CELLS = st.one_of(
    st.builds(lambda y, mo, d, h, mi, s, f, z: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{f}{z}",
              st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24), st.integers(0, 60),
              st.integers(0, 60), st.sampled_from(["", ".5", ".123456", ".1234567", "."]),
              st.sampled_from(["", "Z", "+02:00", "-11:30", "+24:00", "+0200", "z"])),
    st.sampled_from(["2020-09-14 01:02:03", " 2020-09-14T01:02:03Z ", "2020-02-29T00:00:00", "2021-02-29T00:00:00",
                     "1900-02-29T00:00:00", "2000-02-29T23:59:59.999999-23:59", "yesterday", "", "2020-09-14"]))
TYPE_CELLS = st.sampled_from(["view", " view ", "cart", "", "VIEW", "view\u00a0"])


@st.composite
def text_blocks(draw, time_cells):
    """Lines of cells with quoting, wrong column counts, blank lines, CR line ends and bytes that are not UTF-8."""
    lines = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 12))
        cells = [draw(ID_CELLS), draw(ID_CELLS), draw(TYPE_CELLS), draw(time_cells)]
        if kind == 0:
            cells = cells[:draw(st.integers(0, 3))]
        elif kind == 1:
            cells.append(draw(ID_CELLS))
        line = ",".join(cells).encode("utf-8")
        if kind == 2:
            line = b""
        elif kind == 3:
            line = line.replace(b",", b"\xff,", 1)
        elif kind == 4:
            line = b'"' + line
        lines.append(line + draw(st.sampled_from([b"\n", b"\r\n", b"\r\r\n", b"\n"])))
    block = b"".join(lines)
    if lines and draw(st.booleans()):
        block = block.rstrip(b"\r\n")  # the last line of a file without a newline
    return block


def reference(block: bytes, parser: RowParser):
    """The unbatched reader on these lines (``beam_transforms._ParseTextLines`` after Beam's line splitting)."""
    events, rejected, counts = [], [], {}
    lines = block.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines[:-1]] + lines[-1:]  # \r\n separators
    if block.endswith(b"\n") or not block:
        lines = lines[:-1]
    for raw in lines:
        try:
            line = raw.decode("utf-8").rstrip("\r")
            status, payload = parser.parse(line) if line else ("blank", None)
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            status, payload = "rejected", RejectReason.NOT_UTF8
        if status == "ok":
            events.append(payload)
            counts["rows_ok"] = counts.get("rows_ok", 0) + 1
        elif status == "rejected":
            rejected.append((payload, line))
            counts[f"rows_rejected:{payload}"] = counts.get(f"rows_rejected:{payload}", 0) + 1
        elif status == "filtered":
            counts["rows_filtered_event_type"] = counts.get("rows_filtered_event_type", 0) + 1
    return events, rejected, counts


def events_of(batch: pa.RecordBatch) -> list:
    assert batch.schema == arrow_read.EVENT_SCHEMA
    data = batch.to_pydict()
    return list(zip(data["key"], data["item_id"], data["time_us"], strict=True))


def check_block(block: bytes, time_format: str, event_types=("view",)):
    parser = arrow_read.TextBlockParser(HEADER, ROLES, ",", time_format, event_types)
    batch, rejected, counts = parser.parse(block)
    want_events, want_rejected, want_counts = reference(block, RowParser(HEADER, ROLES, ",", time_format,
                                                                         event_types))
    assert events_of(batch) == want_events
    assert rejected == want_rejected
    assert counts == want_counts


@FAST
@given(block=text_blocks(NUMBER_CELLS), time_format=st.sampled_from(["unix_s", "unix_ms"]),
       event_types=st.sampled_from([(), ("view",), ("view", "cart")]))
def test_text_blocks_with_unix_times_parse_as_the_row_parser(block, time_format, event_types):
    check_block(block, time_format, event_types)


@FAST
@given(block=text_blocks(ISO_CELLS))
def test_text_blocks_with_iso_times_parse_as_the_row_parser(block):
    check_block(block, "iso")


def plain(cells):
    """Cells that leave a line plain: no quote, delimiter or line break inside."""
    return cells.filter(lambda c: not any(ch in c for ch in '",\r\n'))


@st.composite
def plain_blocks(draw):
    """Blocks whose every line has the header's field count, no quote and no CR (blank lines allowed): what
    Arrow's CSV reader parses; the cells still hold whitespace, empty IDs, odd numbers and other event types."""
    lines = []
    for _ in range(draw(st.integers(1, 25))):
        cells = [draw(plain(ID_CELLS)), draw(plain(ID_CELLS)), draw(TYPE_CELLS), draw(plain(NUMBER_CELLS))]
        lines.append(",".join(cells).encode("utf-8") + b"\n" + (b"\n" if draw(st.integers(0, 9)) == 0 else b""))
    block = b"".join(lines)
    return block.rstrip(b"\n") if draw(st.booleans()) else block


@FAST
@given(block=plain_blocks(), time_format=st.sampled_from(["unix_s", "unix_ms"]),
       event_types=st.sampled_from([(), ("view",)]))
def test_plain_blocks_read_by_arrows_csv_reader_parse_as_the_row_parser(block, time_format, event_types):
    parser = arrow_read.TextBlockParser(HEADER, ROLES, ",", time_format, event_types)
    data = np.frombuffer(block, np.uint8)
    n_lines = sum(1 for line in block.split(b"\n") if line)
    assert parser._plain_block_cells(block, data, n_lines) is not None  # the CSV reader's path is the one tested
    check_block(block, time_format, event_types)


@pytest.mark.parametrize("block", [b"1,2,view,3\n1,2,view\n", b"1,2,view,3\r\n", b'"1",2,view,3\n',
                                   b"1,2,view,3,4\n"])
def test_blocks_that_are_not_plain_take_the_line_by_line_path(block):
    """A wrong field count, a CR or a quote anywhere in the block: the CSV reader is not used for it."""
    parser = arrow_read.TextBlockParser(HEADER, ROLES, ",", "unix_s", ())
    assert parser._plain_block_cells(block, np.frombuffer(block, np.uint8), block.count(b"\n")) is None
    check_block(block, "unix_s", ())


def test_plain_cells_are_parsed_without_the_row_parser(monkeypatch):
    """The common case is vectorised: the per-row parser sees only the lines it has to settle."""
    seen = []
    original = RowParser.parse
    monkeypatch.setattr(RowParser, "parse", lambda self, line: seen.append(line) or original(self, line))
    block = b"".join(f"{s},{100 + s % 7},view,{1600000000 + s * 1.25}\n".encode() for s in range(1000))
    block += b"9,,view,1\n" + b'"9",1,view,1\n'
    batch, rejected, counts = arrow_read.TextBlockParser(HEADER, ROLES, ",", "unix_s", ("view",)).parse(block)
    assert batch.num_rows == 1001 and rejected == [("empty_id", "9,,view,1")]
    assert seen == ["9,,view,1", '"9",1,view,1']
    assert counts == {"rows_ok": 1001, "rows_rejected:empty_id": 1}


@pytest.mark.parametrize("compressed", [False, True])
def test_byte_ranges_cover_every_line_once(tmp_path, compressed):
    """Ranges of any size (smaller than a line, at line ends, past the end) give every data line exactly once."""
    rng = np.random.default_rng(0)
    lines = [b"h1,h2"] + [b"x" * int(n) + (b"\r" if n % 5 == 0 else b"") for n in rng.integers(0, 40, 300)]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / ("log.csv.gz" if compressed else "log.csv")
    path.write_bytes(gzip.compress(data) if compressed else data)
    for range_bytes in (1, 7, 64, 1000, 1 << 20):
        split = arrow_read._SplitWork("csv", range_bytes)  # noqa: SLF001
        got = b""
        for _, name, start, end in split.process(str(path)):
            got += b"".join(arrow_read._lines_of_range(name, start, end, 50))  # noqa: SLF001
        assert got == data[len(lines[0]) + 1:], range_bytes
    (tmp_path / "last.csv").write_bytes(b"h\na\nb")  # no newline at the end
    assert b"".join(arrow_read._lines_of_range(str(tmp_path / "last.csv"), 0, None, 2)) == b"a\nb"  # noqa: SLF001


def test_parquet_batches_parse_as_the_row_parser():
    n = 400
    rng = np.random.default_rng(1)
    times = rng.integers(1_500_000_000_000, 1_600_000_000_000, n).astype(np.float64) / 1000
    times[[3, 9]] = [np.nan, np.inf]
    mask = rng.random(n) < 0.05
    batch = pa.record_batch({
        "s": pa.array(rng.integers(0, 50, n), pa.int64(), mask=mask),
        "i": pa.array([f" i{k} " if k % 11 else "" for k in range(n)], pa.string()),
        "t": pa.array(times, pa.float64()),
        "e": pa.array(rng.choice(["view", "cart", None], n)),
    })
    roles = {"session": "s", "item": "i", "time": "t", "event_type": "e"}
    for time_format in ("unix_s", "unix_ms"):
        out, rejected, counts = arrow_read.parse_parquet_batch(batch, roles, time_format, ("view",), first_row=101)
        parser = RowParser(batch.schema.names, roles, ",", time_format, ("view",))
        want, want_rejected = [], []
        for row, values in enumerate(batch.to_pylist()):
            status, payload = parser.parse_fields(list(values.values()))
            if status == "ok":
                want.append(payload)
            elif status == "rejected":
                want_rejected.append((payload, 101 + row, values))
        assert events_of(out) == want
        assert [(reason, json.loads(line)) for reason, line in rejected] == [
            (reason, {"row": row, **{k: (None if isinstance(v, float) and not np.isfinite(v) and v != v else v)
                                     for k, v in values.items()}}) for reason, row, values in want_rejected]
        assert counts["rows_ok"] == len(want) and sum(v for k, v in counts.items() if ":" in k) == len(want_rejected)


def _run_both(options, tmp_path, **kwargs):
    import apache_beam as beam  # pylint: disable=g-import-not-at-top
    from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing import beam_transforms as bt  # pylint: disable=g-import-not-at-top

    def collect(name):
        def write(values):
            (tmp_path / f"{name}.json").write_text(json.dumps(sorted(values)))
        return write

    with beam.Pipeline(options=PipelineOptions(lib.IN_MEMORY)) as p:
        new = p | "New" >> arrow_read.ReadClickLogBatches(options, **kwargs)
        old = p | "Old" >> bt.ReadClickLog(options)
        _ = (new["batches"] | "Events" >> beam.FlatMap(events_of) | "AllNew" >> beam.combiners.ToList()
             | "KeepNew" >> beam.Map(collect("events_new")))
        _ = old["events"] | "AllOld" >> beam.combiners.ToList() | "KeepOld" >> beam.Map(collect("events_old"))
        for label, read in (("new", new), ("old", old)):
            _ = (read["rejected"] | f"Rej{label}" >> beam.combiners.ToList()
                 | f"KeepRej{label}" >> beam.Map(collect(f"rejected_{label}")))
            _ = (read["counters"] | f"Count{label}" >> beam.CombinePerKey(sum) | f"CL{label}" >> beam.combiners.ToList()
                 | f"KeepCount{label}" >> beam.Map(collect(f"counters_{label}")))
    out = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    for what in ("events", "rejected", "counters"):
        assert out[f"{what}_new"] == out[f"{what}_old"], what
    return out


@pytest.mark.slow
def test_beam_read_equals_read_click_log_on_text_and_parquet(tmp_path):
    """Through Beam, with ranges and blocks much smaller than the files: the same events, rejected rows (file,
    reason, line) and counters as ``ReadClickLog`` (the user log of the parity tests: ISO times, event types, a
    quoted ID, malformed rows; a gzipped copy; and a Parquet log in row groups)."""
    lib.write_user_log(tmp_path / "clicks.csv", n_sessions=300)
    (tmp_path / "clicks2.csv.gz").write_bytes(gzip.compress((tmp_path / "clicks.csv").read_bytes()))
    options = PreprocessOptions(input=str(tmp_path / "clicks*"), output=str(tmp_path / "out"), delimiter=",",
                                user_key="UserId", item_key="ItemId", time_key="Timestamp", time_format="iso",
                                event_type_key="EventType", event_type_filter=("view",))
    out = _run_both(options, tmp_path, range_bytes=4096, block_bytes=1000)
    assert len(out["events_new"]) > 1000
    assert {r[1] for r in out["rejected_new"]} == {reason for reason, _ in lib.MALFORMED}

    table = pa.table({"session": pa.array(np.arange(3000) // 4, pa.int64()),
                      "item": pa.array([str(k % 97) if k % 500 else None for k in range(3000)]),
                      "ms": pa.array(1_600_000_000_000 + np.arange(3000) * 997, pa.int64())})
    (tmp_path / "pq").mkdir()
    pq.write_table(table, tmp_path / "pq" / "part-0.parquet", row_group_size=700)
    options = PreprocessOptions(input=str(tmp_path / "pq"), output=str(tmp_path / "out"), input_format="parquet",
                                session_key="session", item_key="item", time_key="ms", time_format="unix_ms")
    out = _run_both(options, tmp_path)
    assert len(out["events_new"]) == 2994 and len(out["rejected_new"]) == 6


def test_the_written_out_whitespace_is_what_str_strip_removes():
    every_space = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())  # this Python's Unicode tables
    assert arrow_read._PY_WHITESPACE == every_space


def _stage_labels(options, **kwargs) -> list[str]:
    import apache_beam as beam  # pylint: disable=g-import-not-at-top
    pipeline = beam.Pipeline()
    _ = pipeline | "Read" >> arrow_read.ReadClickLogBatches(options, **kwargs)
    return [label for label in pipeline.applied_labels if label.startswith("Read/")]


def test_the_reshuffle_is_left_out_only_for_one_unit_of_work(tmp_path):
    """One text file within a byte range (or one compressed file) is one unit of work: nothing to spread."""
    lib.write_user_log(tmp_path / "clicks.csv", n_sessions=50)
    options = PreprocessOptions(input=str(tmp_path / "clicks.csv"), output=str(tmp_path / "out"), delimiter=",",
                                user_key="UserId", item_key="ItemId", time_key="Timestamp", time_format="iso")
    size = (tmp_path / "clicks.csv").stat().st_size
    assert "Read/Spread" not in _stage_labels(options, range_bytes=size)
    assert "Read/Spread" in _stage_labels(options, range_bytes=size - 1)
    (tmp_path / "more.csv.gz").write_bytes(gzip.compress((tmp_path / "clicks.csv").read_bytes()))
    gz_only = dataclasses.replace(options, input=str(tmp_path / "more.csv.gz"))
    assert "Read/Spread" not in _stage_labels(gz_only, range_bytes=1)
    both = dataclasses.replace(options, input=str(tmp_path / "*.csv*"))
    assert "Read/Spread" in _stage_labels(both)
