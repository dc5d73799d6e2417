"""Reusable Apache Beam transforms on single events and sessions: reading a click log row by row, sessions by key,
rejected rows, counters and the report file.

Elements:

- *event* ``(key, item_id, time_us)`` (see :mod:`.records`); *session* ``(session_id, times_us, item_ids)``
  (see :mod:`.session_rules`);
- *counters* ``(name, n)`` pairs, summed by :class:`SumCounters`;
- *report* triples ``(section, key, value)`` that :mod:`.report` folds into stats.json.

The preprocessing itself works on Arrow record batches (:mod:`.arrow_read`, :mod:`.arrow_sessions`); these
element-wise transforms serve the batch recommendations (``gru4rec recommend``), which read and sessionise a log by
the same rules, and the ingestion's report. They use only standard Beam primitives, so they run unchanged on the
Direct, Prism, Flink, Spark and Dataflow runners.

Example (what :mod:`gru4rec_tf.batch.pipeline` wires)::

    with beam.Pipeline() as p:
        read = p | ReadClickLog(options)
        sessions = read["events"] | GroupSessions(session_gap_us=3_600_000_000)
"""
from __future__ import annotations

import functools
import json
import re
import zlib

import apache_beam as beam
from absl import logging
from apache_beam import coders
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from gru4rec_tf.preprocessing import session_rules as sess
from gru4rec_tf.preprocessing.input_files import InputSpec, inspect_input
from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.preprocessing.records import RejectReason, RowParser

__all__ = [
    "ReadClickLog", "WriteRejected", "GroupSessions", "SumCounters", "WriteReport", "write_report_file", "gathered",
    "vocabulary_file_text",
]

_REJECTED, _COUNTERS = "rejected", "counters"
_PROGRESS_EVERY = 1_000_000


class _CountingDoFn(beam.DoFn):
    """A DoFn that adds to named counters in ``process`` and emits them once per bundle (output ``counters``)."""

    def start_bundle(self):
        self._counts = {}

    def _count(self, name: str, n: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + n

    def finish_bundle(self):
        for name, n in sorted(self._counts.items()):
            yield beam.pvalue.TaggedOutput(_COUNTERS, WindowedValue((name, n), MIN_TIMESTAMP, [GlobalWindow()]))
        self._counts = {}


# ----------------------------------------------------------------------------------------------------------------
# reading


class _ParseTextLines(_CountingDoFn):
    """``(file, line bytes)`` -> events; malformed rows to the ``rejected`` output."""

    def __init__(self, header, roles, delimiter, time_format, event_types):
        self._args = (list(header), dict(roles), delimiter, time_format, tuple(event_types))
        self._parser = None
        self._rows = 0

    def setup(self):
        self._parser = RowParser(*self._args)

    def process(self, element):
        filename, raw = element
        try:
            line = raw.decode("utf-8").rstrip("\r")
            status, payload = self._parser.parse(line) if line else ("blank", None)
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            status, payload = "rejected", RejectReason.NOT_UTF8
        if status != "blank":  # blank lines are not rows
            self._rows += 1
            if self._rows % _PROGRESS_EVERY == 0:
                logging.info("preprocess: parsed %d rows in this worker", self._rows)
        if status == "ok":
            self._count("rows_ok")
            yield payload
        elif status == "rejected":
            self._count(f"rows_rejected:{payload}")
            yield beam.pvalue.TaggedOutput(_REJECTED, (filename, payload, line))
        elif status == "filtered":
            self._count("rows_filtered_event_type")


class _ParseParquetFile(_CountingDoFn):
    """A Parquet file path -> events (read in record batches of the needed columns only)."""

    def __init__(self, columns, roles, time_format, event_types, batch_size=65_536):
        self._columns = list(columns)
        self._roles = dict(roles)
        self._time_format = time_format
        self._event_types = tuple(event_types)
        self._batch_size = batch_size

    def process(self, path):
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
        row = 0
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            batches = pq.ParquetFile(handle).iter_batches(batch_size=self._batch_size, columns=self._columns)
            for batch in batches:
                names = list(batch.schema.names)
                parser = RowParser(names, self._roles, ",", self._time_format, self._event_types)
                for fields in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                    row += 1
                    status, payload = parser.parse_fields(fields)
                    if status == "ok":
                        self._count("rows_ok")
                        yield payload
                    elif status == "rejected":
                        self._count(f"rows_rejected:{payload}")
                        record = {"row": row, **{n: _jsonable(v) for n, v in zip(names, fields, strict=True)}}
                        yield beam.pvalue.TaggedOutput(_REJECTED, (path, payload, json.dumps(record)))
                    else:
                        self._count("rows_filtered_event_type")
        logging.info("preprocess: read %d rows from %s", row, path)


def _jsonable(value):
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


class ReadClickLog(beam.PTransform):
    """Reads a CSV/TSV (header line, any delimiter) or Parquet click log into events.

    Rows with a wrong number of columns, an empty session/user or item ID, a time that does not parse in
    ``options.time_format`` or bytes that are not UTF-8 go to ``rejected`` as ``(source file, reason, source
    line)``; rows whose event type is not in ``options.event_type_filter`` are dropped and counted. Missing files
    or columns raise :class:`~gru4rec_tf.data.event_columns.DataError` when the pipeline is built. Text must have one
    record per line (quoted fields are fine, embedded newlines are not); compressed text (``.gz``...) is read by
    extension.

    Returns a dict: ``events`` (``(key, item_id, time_us)``), ``rejected`` and ``counters`` (``rows_ok``,
    ``rows_rejected:<reason>``, ``rows_filtered_event_type``).

    Example::

        read = pipeline | ReadClickLog(PreprocessOptions(input="clicks/*.csv", output="out", delimiter=";"))
        events, rejected = read["events"], read["rejected"]
    """

    def __init__(self, options: PreprocessOptions, spec: InputSpec | None = None):
        super().__init__()
        self._options = options
        self._spec = spec

    def expand(self, pbegin):
        opts = self._options
        spec = self._spec or inspect_input(opts)
        roles = opts.columns
        files = pbegin | "InputFiles" >> beam.Create(spec.files)
        if spec.format == "parquet":
            parse = _ParseParquetFile(sorted(set(roles.values())), roles, opts.time_format, opts.event_type_filter)
            rows = files
        else:
            parse = _ParseTextLines(spec.header, roles, spec.delimiter, opts.time_format, opts.event_type_filter)
            rows = files | "ReadLines" >> beam.io.ReadAllFromText(
                skip_header_lines=1, with_filename=True, coder=coders.BytesCoder())
        parsed = rows | "Parse" >> beam.ParDo(parse).with_outputs(_REJECTED, _COUNTERS, main="events")
        return {"events": parsed["events"], "rejected": parsed[_REJECTED], "counters": parsed[_COUNTERS]}


def _rejected_json(row) -> str:
    source, reason, line = row
    return json.dumps({"source": source, "reason": reason, "line": line}, ensure_ascii=False)


class _WriteLines(beam.DoFn):
    def __init__(self, prefix: str, suffix: str):
        self._prefix, self._suffix = prefix, suffix

    def process(self, element):
        shard, lines = element
        path = f"{self._prefix}-{shard:05d}{self._suffix}"
        with FileSystems.create(path, mime_type="text/plain") as handle:
            for line in sorted(lines):
                handle.write(line.encode("utf-8") + b"\n")
        yield path


def _sharded_json(row, shards: int) -> tuple[int, str]:
    line = _rejected_json(row)
    return zlib.crc32(line.encode("utf-8")) % shards, line


class WriteRejected(beam.PTransform):
    """Writes rejected rows as sorted JSON lines ``{"source", "reason", "line"}`` to ``<prefix>-SSSSS.jsonl``.

    Rows are spread over ``shards`` files by a hash of their content (no file when there is no rejected row).
    """

    def __init__(self, prefix: str, shards: int = 4):
        super().__init__()
        self._prefix, self._shards = prefix, shards

    def expand(self, rejected):
        shards = self._shards
        return (
            rejected
            | "Shard" >> beam.Map(_sharded_json, shards)
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteLines(self._prefix, ".jsonl"))
        )


# ----------------------------------------------------------------------------------------------------------------
# sessions


def _item_and_time(event):
    return event[0], (event[1], event[2])


class GroupSessions(beam.PTransform):
    """Events -> sessions: by session ID, or (``session_gap_us`` set) by user with an inactivity gap.

    Example::

        sessions = events | GroupSessions()                                # key = session ID
        sessions = events | GroupSessions(session_gap_us=3_600_000_000)    # key = user ID, 1 h gap
    """

    def __init__(self, session_gap_us: int | None = None):
        super().__init__()
        if session_gap_us is not None and session_gap_us <= 0:
            raise ValueError(f"session_gap_us must be positive, got {session_gap_us}")
        self._gap = session_gap_us

    def expand(self, events):
        grouped = events | "KeyByKey" >> beam.Map(_item_and_time) | "GroupByKey" >> beam.GroupByKey()
        if self._gap is None:
            return grouped | "MakeSession" >> beam.MapTuple(sess.make_session)
        gap = self._gap
        return grouped | "SplitAtGaps" >> beam.FlatMapTuple(lambda user, evs: sess.split_by_gap(user, evs, gap))


# ----------------------------------------------------------------------------------------------------------------
# vocabulary


_CANONICAL_INT = re.compile(r"(0|-?[1-9][0-9]{0,18})\Z")


def vocabulary_file_text(vocab) -> str:
    """The vocabulary in ``ItemVocabulary.save`` format (``# dtype=`` line, header, ``ItemId index support``)."""
    for item, _ in vocab:
        if "\t" in item or "\n" in item or "\r" in item:
            raise ValueError(f"cannot write item ID {item!r} to the vocabulary: it contains a tab or newline")
    is_int = bool(vocab) and all(_CANONICAL_INT.match(item) and -2**63 <= int(item) < 2**63 for item, _ in vocab)
    lines = [f"# dtype={'int64' if is_int else 'str'}", "ItemId\tindex\tsupport"]
    lines += [f"{item}\t{i}\t{support}" for i, (item, support) in enumerate(vocab)]
    return "\n".join(lines) + "\n"


def _write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path, mime_type="application/octet-stream") as handle:
        handle.write(data)


# ----------------------------------------------------------------------------------------------------------------
# counters and report


class SumCounters(beam.PTransform):
    """``(name, n)`` pairs -> report triples ``("counter", name, total)``."""

    def expand(self, counters):
        return counters | "Sum" >> beam.CombinePerKey(sum) | "Report" >> beam.MapTuple(lambda k, n: ("counter", k, n))


def write_report_file(path: str, triples) -> int:
    """Writes report triples as one JSON list (sorted, so the file does not depend on the runner); returns rows."""
    rows = sorted(([str(a), str(b), c] for a, b, c in triples), key=lambda t: json.dumps(t, sort_keys=True))
    _write_bytes(path, json.dumps(rows).encode("utf-8"))
    return len(rows)


def gathered(pcoll, label: str, fn, *args):
    """A PCollection of one element: ``fn(every element of pcoll, as a list, *args)``, also for an empty ``pcoll``.

    One Map over a single Impulse, reading ``pcoll`` as a list side input: two stages, where
    ``CombineGlobally(ToList)`` and a Map take ten (each stage costs a fixed time on the local runners, about 25 ms
    on this project's 2-core machines). For small collections only (counters, file names): the list is held in
    memory.

    Example::

        n_files = gathered(written, "CountFiles", len)  # one element: how many elements ``written`` has
    """
    return (pcoll.pipeline | f"{label}Once" >> beam.Impulse()
            | label >> beam.Map(lambda _, items: fn(items, *args), beam.pvalue.AsList(pcoll)))


class WriteReport(beam.PTransform):
    """Collects report triples into one JSON list file (read back by the driver)."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, report):
        return gathered(report, "Write", functools.partial(write_report_file, self._path))
