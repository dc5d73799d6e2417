"""Reusable Apache Beam transforms: raw click log -> cleaned sessions -> time splits -> session tensors.

Elements:

- *event* ``(key, item_id, time_us)`` (see :mod:`.records`); *session* ``(session_id, times_us, item_ids)``
  (see :mod:`.sessions`);
- *counters* ``(name, n)`` pairs, summed by :class:`SumCounters`;
- *report* triples ``(section, key, value)`` that :mod:`.report` folds into stats.json.

Transforms that count or report something return a dict of PCollections with ``counters`` / ``report`` entries.
They use only standard Beam primitives (ParDo, GroupByKey, CombineGlobally/PerKey, side inputs), so they run
unchanged on the Direct, Prism, Flink, Spark and Dataflow runners. Side inputs hold item sets and the
vocabulary, so the catalogue (not the log) must fit in a worker's memory. The graph is kept short (about 25
shuffle stages): each stage costs a fixed time on the local runners.

Example (what :func:`gru4rec_tf.preprocessing.pipeline.build_pipeline` wires)::

    with beam.Pipeline() as p:
        read = p | ReadClickLog(options)
        sessions = read["events"] | GroupSessions()
        clean = sessions | CleanSessions(dedupe=True, min_session_length=2, min_item_support=5, rounds=10)
        split = clean["sessions"] | SplitByTime(days_us=7 * DAY_US, split_on="start")
        split["train"] | "WriteTrain" >> WriteSessionTensors("out/train", split["vocabulary"], name="train")
        split["test"] | "WriteTest" >> WriteSessionTensors("out/test", split["vocabulary"], name="test")
"""
from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Sequence

import apache_beam as beam
from absl import logging
from apache_beam import coders
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import combiners
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from gru4rec_tf.data import contracts
from gru4rec_tf.preprocessing import example_codec
from gru4rec_tf.preprocessing import session_rules as sess
from gru4rec_tf.preprocessing.input_files import InputSpec, inspect_input
from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.preprocessing.records import RejectReason, RowParser

__all__ = [
    "ReadClickLog", "WriteRejected", "GroupSessions", "CleanSessions", "SplitByTime", "BuildVocabulary",
    "KeepVocabularyItems", "WriteVocabulary", "WriteSessionTensors", "SummarizeSessions", "SumCounters",
    "WriteReport", "vocabulary_file_text",
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
            | "ToJson" >> beam.Map(_rejected_json)
            | "Shard" >> beam.Map(lambda line: (zlib.crc32(line.encode("utf-8")) % shards, line))
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteLines(self._prefix, ".jsonl"))
        )


# ----------------------------------------------------------------------------------------------------------------
# sessions and cleaning


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


class _DedupeAndDropShort(_CountingDoFn):
    def __init__(self, dedupe: bool, min_length: int):
        self._dedupe, self._min_length = dedupe, min_length

    def process(self, session):
        out = sess.dedupe_consecutive(session) if self._dedupe else session
        if len(out[1]) != len(session[1]):
            self._count("events_removed_dedupe", len(session[1]) - len(out[1]))
        if len(out[1]) >= self._min_length:
            yield out
        else:
            self._count("sessions_removed_short")


class _DroppedThisRound(beam.DoFn):
    """Items of the surviving events of sessions that the round's new rare items make too short.

    A session's state after round r depends only on the cumulative rare set: its events of non-rare items, if
    at least ``min_length`` of them are left (sessions and items are only ever removed). So every round reads
    the same input sessions and emits only count decrements, instead of rewriting all sessions.
    """

    def __init__(self, min_length: int):
        self._min_length = min_length

    def process(self, session, before, new):
        items = session[2]
        # skip sessions without new rare items (the common case) and sessions dropped in an earlier round
        if not new[0].isdisjoint(items) and sum(1 for i in items if i not in before) >= self._min_length:
            left = [i for i in items if i not in before and i not in new[0]]
            if len(left) < self._min_length:
                yield from left


def _apply_rare(session, rare, min_length):
    out = sess.drop_items(session, rare)
    if len(out[2]) >= min_length:
        yield out


class _RareItems(beam.CombineFn):
    """(item, count) pairs -> (frozenset of items with count < min_support, their events)."""

    def __init__(self, min_support: int):
        self._min = min_support

    def create_accumulator(self):
        return set(), 0

    def add_input(self, acc, item_count):
        item, n = item_count
        if n < self._min:
            acc[0].add(item)
            return acc[0], acc[1] + n
        return acc

    def merge_accumulators(self, accs):
        items, total = set(), 0
        for acc_items, n in accs:
            items |= acc_items
            total += n
        return items, total

    def extract_output(self, acc):
        return frozenset(acc[0]), acc[1]


_NO_RARE = (frozenset(), 0)


class _CountDict(beam.CombineFn):
    """Elements -> {element: occurrences}."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, element):
        acc[element] = acc.get(element, 0) + 1
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = next(accs)
        for acc in accs:
            for key, n in acc.items():
                out[key] = out.get(key, 0) + n
        return out

    def extract_output(self, acc):
        return acc


def _recount(item_count, rare, decrements):
    """Item counts after a round: the round's rare items go, the dropped sessions' events are subtracted."""
    item, n = item_count
    if item not in rare[0]:
        n -= decrements.get(item, 0)
        if n > 0:
            yield item, n


class CleanSessions(beam.PTransform):
    """Spec §7 cleaning: optional consecutive-repeat removal, then session-length and item-support filters.

    Sessions shorter than ``min_session_length`` are dropped first; then each round drops the events of items
    with fewer than ``min_item_support`` events and again the sessions that became too short. ``rounds=1`` is
    the single pass of the RSC15 recipe; with more rounds the filters repeat. Rounds are cheap: item counts are
    updated from the events of the sessions each round drops, and the sessions are filtered once at the end with
    the union of the rounds' rare items. ``report`` holds the rare items and their events per round: a last
    round with no rare item means the filters converged.

    Returns a dict: ``sessions``, ``counters`` (``events_removed_dedupe``, ``sessions_removed_short``) and
    ``report`` (``("cleaning_round", r, [rare items, rare events])``).

    Example::

        clean = sessions | CleanSessions(dedupe=True, min_session_length=2, min_item_support=5, rounds=10)
    """

    def __init__(self, dedupe: bool, min_session_length: int, min_item_support: int, rounds: int):
        super().__init__()
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self._dedupe, self._min_length = dedupe, min_session_length
        self._min_support, self._rounds = min_item_support, rounds

    def expand(self, sessions):
        first = sessions | "DedupeAndDropShort" >> beam.ParDo(
            _DedupeAndDropShort(self._dedupe, self._min_length)).with_outputs(_COUNTERS, main="kept")
        base = first.kept
        counts = base | "Items" >> beam.FlatMap(lambda s: s[2]) | "CountItems" >> combiners.Count.PerElement()
        min_support, min_length, reports = self._min_support, self._min_length, []
        rare_so_far = base.pipeline | "NoRareYet" >> beam.Create([frozenset()])  # union of the rounds' rare items
        for r in range(1, self._rounds + 1):
            new = counts | f"Rare{r}" >> beam.CombineGlobally(_RareItems(min_support)).without_defaults()
            new_side = beam.pvalue.AsSingleton(new, default_value=_NO_RARE)
            reports.append(new | f"Report{r}" >> beam.Map(lambda x, r=r: ("cleaning_round", r, [len(x[0]), x[1]])))
            if r < self._rounds:
                # (counts are updated through side inputs, not a Flatten + CombinePerKey: the FnApiRunner's fusion
                # deadlocks on that shape when every round reads the same sessions)
                dropped = base | f"Dropped{r}" >> beam.ParDo(
                    _DroppedThisRound(min_length), beam.pvalue.AsSingleton(rare_so_far), new_side)
                decrements = dropped | f"CountDropped{r}" >> beam.CombineGlobally(_CountDict()).without_defaults()
                counts = counts | f"Recount{r}" >> beam.FlatMap(
                    _recount, new_side, beam.pvalue.AsSingleton(decrements, default_value={}))
            rare_so_far = rare_so_far | f"Union{r}" >> beam.Map(lambda acc, rare: acc | rare[0], rare=new_side)
        kept = base | "DropRare" >> beam.FlatMap(_apply_rare, beam.pvalue.AsSingleton(rare_so_far), min_length)
        report = tuple(reports) | "Report" >> beam.Flatten()
        return {"sessions": kept, "counters": first[_COUNTERS], "report": report}


# ----------------------------------------------------------------------------------------------------------------
# vocabulary


class _FirstSeenAndCount(beam.CombineFn):
    """Sessions -> {item: [first-appearance key, events]} -> [(item, events)] in first-appearance order."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, session):
        start_key = sess.session_sort_key(session)
        for pos, item in enumerate(session[2]):
            entry = acc.get(item)
            if entry is None:
                acc[item] = [(start_key, pos), 1]
            else:
                entry[1] += 1
                if (start_key, pos) < entry[0]:
                    entry[0] = (start_key, pos)
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = next(accs)
        for acc in accs:
            for item, (key, n) in acc.items():
                entry = out.get(item)
                if entry is None:
                    out[item] = [key, n]
                else:
                    entry[1] += n
                    if key < entry[0]:
                        entry[0] = key
        return out

    def extract_output(self, acc):
        return [(item, n) for item, (_, n) in sorted(acc.items(), key=lambda kv: kv[1][0])]


class BuildVocabulary(beam.PTransform):
    """Sessions -> one element ``[(item_id, support), ...]`` in index order (nothing for no sessions).

    The order is that of first appearance when the sessions are listed by start time (ties by session ID) and
    their events in time order, i.e. what ``ItemVocabulary.from_events`` gives on that listing; support =
    events of the item. The list is built on one worker (the catalogue must fit in memory).

    Example::

        vocab = split["train"] | BuildVocabulary()
    """

    def expand(self, sessions):
        return sessions | "Vocabulary" >> beam.CombineGlobally(_FirstSeenAndCount()).without_defaults()


def _index_of(vocab) -> dict:
    return {item: i for i, (item, _) in enumerate(vocab)}


class _KeepKnown(beam.DoFn):
    def __init__(self, min_length: int):
        self._min_length = min_length

    def process(self, session, known):
        out = sess.keep_items(session, known)
        if len(out[1]) >= self._min_length:
            yield out


class KeepVocabularyItems(beam.PTransform):
    """Keeps only the events of items in ``vocab`` (a :class:`BuildVocabulary` output), then sessions with at
    least ``min_length`` events (spec §7: unknown test items are dropped before the sessions are built).

    Example::

        test = later_sessions | KeepVocabularyItems(train_vocab)
    """

    def __init__(self, vocab, min_length: int = 2):
        super().__init__()
        self._vocab, self._min_length = vocab, min_length

    def expand(self, sessions):
        known = self._vocab | "Index" >> beam.Map(_index_of)
        return sessions | "KeepKnown" >> beam.ParDo(
            _KeepKnown(self._min_length), known=beam.pvalue.AsSingleton(known, default_value={}))


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


class WriteVocabulary(beam.PTransform):
    """Writes the vocabulary of :class:`BuildVocabulary` to ``path`` (``ItemVocabulary.load`` reads it).

    Returns the report PCollection ``("vocabulary", name, number of items)``.
    """

    def __init__(self, path: str, name: str):
        super().__init__()
        self._path, self._name = path, name

    def expand(self, vocab):
        path, name = self._path, self._name

        def write(entries):
            _write_bytes(path, vocabulary_file_text(entries).encode("utf-8"))
            return "vocabulary", name, len(entries)

        return vocab | "Write" >> beam.Map(write)


# ----------------------------------------------------------------------------------------------------------------
# time split


class _SplitAt(beam.DoFn):
    def __init__(self, split_on: str, min_length: int):
        self._use_end, self._min_length = split_on == "end", min_length

    def process(self, session, split_us):
        times = session[1]
        if split_us is not None and (times[-1] if self._use_end else times[0]) >= split_us:
            yield beam.pvalue.TaggedOutput("later", session)
        elif split_us is not None:
            out = sess.truncate_before(session, split_us)
            if len(out[1]) >= self._min_length:
                yield out


class SplitByTime(beam.PTransform):
    """Spec §7 time split: split time = last timestamp - ``days_us``.

    Sessions that start (``split_on="start"``) or end (``"end"``) at/after the split time form the later split;
    the earlier split holds the other sessions' events before the split time, sessions with >= ``min_length``
    events. The item vocabulary is built from the earlier split; the later split keeps only its items, then
    sessions with >= ``min_length`` events.

    Returns a dict: ``names[0]`` (earlier), ``names[1]`` (later), ``vocabulary`` (of the earlier split, see
    :class:`BuildVocabulary`) and ``report`` (``("split_time_us", names[1], t)``).

    Example::

        split = sessions | SplitByTime(days_us=DAY_US, split_on="end")   # RSC15 recipe
        train, test, vocab = split["train"], split["test"], split["vocabulary"]
    """

    def __init__(self, days_us: int, split_on: str = "start", names: Sequence[str] = ("train", "test"),
                 min_length: int = 2):
        super().__init__()
        if days_us <= 0:
            raise ValueError(f"days_us must be positive, got {days_us}")
        if split_on not in ("start", "end"):
            raise ValueError(f"split_on must be 'start' or 'end', got {split_on!r}")
        self._days_us, self._split_on, self._names, self._min_length = days_us, split_on, tuple(names), min_length

    def expand(self, sessions):
        early, late = self._names
        days_us = self._days_us
        split_time = (
            sessions
            | "LastTime" >> beam.Map(lambda s: s[1][-1])
            | "MaxTime" >> beam.CombineGlobally(max).without_defaults()
            | "SplitTime" >> beam.Map(lambda t: t - days_us)
        )
        parts = sessions | "Split" >> beam.ParDo(
            _SplitAt(self._split_on, self._min_length), split_us=beam.pvalue.AsSingleton(split_time, default_value=None)
        ).with_outputs("later", main="earlier")
        vocab = parts.earlier | "Vocabulary" >> BuildVocabulary()
        later = parts.later | "KeepKnown" >> KeepVocabularyItems(vocab, self._min_length)
        report = split_time | "Report" >> beam.Map(lambda t: ("split_time_us", late, t))
        return {early: parts.earlier, late: later, "vocabulary": vocab, "report": report}


# ----------------------------------------------------------------------------------------------------------------
# statistics


class _SessionStats(beam.CombineFn):
    """events, sessions, distinct items, session-length histogram, time range and last session start."""

    def create_accumulator(self):
        return {"events": 0, "sessions": 0, "items": set(), "hist": {}, "tmin": None, "tmax": None,
                "start_max": None}

    def add_input(self, acc, session):
        n, first, last = len(session[1]), session[1][0], session[1][-1]
        acc["events"] += n
        acc["sessions"] += 1
        acc["items"].update(session[2])
        acc["hist"][n] = acc["hist"].get(n, 0) + 1
        acc["tmin"] = first if acc["tmin"] is None else min(acc["tmin"], first)
        acc["tmax"] = last if acc["tmax"] is None else max(acc["tmax"], last)
        acc["start_max"] = first if acc["start_max"] is None else max(acc["start_max"], first)
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for acc in accs:
            out["events"] += acc["events"]
            out["sessions"] += acc["sessions"]
            out["items"] |= acc["items"]
            for n, c in acc["hist"].items():
                out["hist"][n] = out["hist"].get(n, 0) + c
            for key, pick in (("tmin", min), ("tmax", max), ("start_max", max)):
                if acc[key] is not None:
                    out[key] = acc[key] if out[key] is None else pick(out[key], acc[key])
        return out

    def extract_output(self, acc):
        out = dict(acc)
        out["items"] = len(acc["items"])
        return out


class SummarizeSessions(beam.PTransform):
    """One element (nothing for no sessions): ``{"events", "sessions", "items", "hist", "tmin", "tmax",
    "start_max"}`` (the histogram maps session length -> sessions; times in microseconds).

    Example::

        summary = split["test"] | "SummaryTest" >> SummarizeSessions()
    """

    def expand(self, sessions):
        return sessions | "Stats" >> beam.CombineGlobally(_SessionStats()).without_defaults()


class SumCounters(beam.PTransform):
    """``(name, n)`` pairs -> report triples ``("counter", name, total)``."""

    def expand(self, counters):
        return counters | "Sum" >> beam.CombinePerKey(sum) | "Report" >> beam.MapTuple(lambda k, n: ("counter", k, n))


class WriteReport(beam.PTransform):
    """Collects report triples into one JSON list file (read back by the driver)."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, report):
        path = self._path

        def write(triples):
            rows = sorted(([str(a), str(b), c] for a, b, c in triples), key=lambda t: json.dumps(t, sort_keys=True))
            _write_bytes(path, json.dumps(rows).encode("utf-8"))
            return len(rows)

        return report | "Collect" >> beam.CombineGlobally(combiners.ToListCombineFn()) | "Write" >> beam.Map(write)


# ----------------------------------------------------------------------------------------------------------------
# session tensors


def _shard_of(session, summary, rows_per_shard):
    lo, hi = summary["tmin"], summary["start_max"]
    shards = max(1, math.ceil(summary["sessions"] / rows_per_shard))
    return (session[1][0] - lo) * shards // (hi - lo + 1), session


class _WriteShard(beam.DoFn):
    """Writes one shard's sessions, sorted by start time (ties by session ID), to ``part-SSSSS.tfrecord``."""

    def __init__(self, directory: str):
        self._directory = directory

    def process(self, element, vocab):
        shard, sessions = element
        ordered = sorted(sessions, key=sess.session_sort_key)
        name = contracts.part_file_name(shard)
        n_events = 0
        with FileSystems.create(FileSystems.join(self._directory, name),
                                mime_type="application/octet-stream") as handle:
            for sid, times, items in ordered:
                record = example_codec.encode_session_example(sid, items, [vocab[i] for i in items], times)
                example_codec.write_tfrecord(handle, record)
                n_events += len(items)
        yield name, len(ordered), n_events


class WriteSessionTensors(beam.PTransform):
    """Writes sessions as ``tf.train.Example`` TFRecords (features: :mod:`.example_codec`) into ``directory``.

    Files ``part-SSSSS.tfrecord`` cover consecutive session-start ranges (about ``rows_per_shard`` sessions
    each; an empty range writes no file) and hold their sessions by start time, ties by session ID: reading the
    files in name order gives the sessions in the library's session order. ``vocab`` is the one-element
    PCollection of :class:`BuildVocabulary` whose indices go into ``item_idx`` (every item must be in it);
    ``summary`` (optional) the :class:`SummarizeSessions` of the same sessions, to avoid computing it again.

    Returns a dict: ``report`` (``("split_files", name, [file, sessions, events])`` per file) and ``summary``.

    Example::

        split["test"] | "WriteTest" >> WriteSessionTensors("out/test", split["vocabulary"], name="test")
    """

    def __init__(self, directory: str, vocab, name: str, rows_per_shard: int = PreprocessOptions.rows_per_shard,
                 summary=None):
        super().__init__()
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
        self._directory, self._vocab, self._name, self._rows = directory, vocab, name, rows_per_shard
        self._summary = summary

    def expand(self, sessions):
        rows, name = self._rows, self._name
        summary = self._summary or sessions | "Summary" >> SummarizeSessions()
        index = self._vocab | "Index" >> beam.Map(_index_of)
        report = (
            sessions
            | "AssignShard" >> beam.Map(_shard_of, summary=beam.pvalue.AsSingleton(summary), rows_per_shard=rows)
            | "GroupShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShard(self._directory), vocab=beam.pvalue.AsSingleton(index))
            | "Report" >> beam.Map(lambda f: ("split_files", name, list(f)))
        )
        return {"report": report, "summary": summary}
