"""Sessions from Arrow record batches of events: the session half of the preprocessing, vectorised.

:func:`build_from_event_batches` takes a PCollection of ``pyarrow.RecordBatch`` with the columns ``key`` (session
ID, or user ID when sessions are cut at inactivity gaps), ``item_id`` and ``time_us`` and writes what spec §7
asks for: sessions -> cleaning (consecutive repeats, session length, item support, iterated rounds) -> time
split(s) -> vocabulary files -> session tensor shards (``part-SSSSS.tfrecord``) and the report (``_report.json``)
that :mod:`.report` folds into stats.json. The rules are those of :mod:`.session_rules`, applied with numpy and
pyarrow to many sessions at once instead of one Beam element per event or session:

* each input batch is cut by a hash of ``key`` into ``partitions`` parts, and the parts are shuffled with one
  ``GroupByKey`` on the partition number (a shuffle of sub-batches, not of events);
* a partition sorts its events by (key, time, item) and holds its sessions as columns with offsets
  (:class:`SessionBlock`); cleaning, splitting and vocabulary filtering are array operations on those columns;
* what needs the whole log (item counts per cleaning round, the last timestamp, the vocabulary, the statistics)
  is combined from small per-partition results (catalogue-sized) and handed to the next stage as a side input;
* the sessions of a split are cut by session-start range into the output shards and shuffled once more (a
  ``GroupByKey`` on the shard number); each shard is sorted and encoded as a whole.

The graph uses only ParDo, GroupByKey, CombineGlobally and side inputs, so it runs on any Beam runner; the
results (files, vocabulary, stats) do not depend on the runner, the batch sizes or the number of partitions.

Memory. A worker holds one partition at a time: about ``events / partitions`` events, at roughly 100-150 bytes
per event while it is sorted and cut (IDs as Arrow strings, times as int64, items as int32 codes); the shard
writer holds one shard (``rows_per_shard`` sessions) and its encoded records; side inputs hold item sets, item
counts and the vocabulary, i.e. grow with the catalogue, not with the log. :func:`partitions_for` picks the
number of partitions from the number of events (about one million events per partition, at least 2), so on a
distributed runner the peak memory of a worker stays flat as the log grows (one very large session or user is
the exception: it is never cut). Local runners (DirectRunner, FnApiRunner) additionally keep each shuffled
PCollection in the runner process, so there the runner's memory grows linearly with the log (the encoded events,
a few tens of bytes per event), no longer with one Python object per event.

Example::

    with beam.Pipeline() as p:
        batches = p | beam.Create([pa.record_batch({"key": ["s1", "s1"], "item_id": ["a", "b"],
                                                    "time_us": [10, 20]})])
        build_from_event_batches(batches, PreprocessOptions(input="-", output="out", min_item_support=1),
                                 "out", partitions=4)
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from absl import logging
from apache_beam.io.filesystems import FileSystems

from gru4rec_tf.data import contracts
from gru4rec_tf.preprocessing import beam_transforms as bt
from gru4rec_tf.preprocessing import example_codec
from gru4rec_tf.preprocessing import session_rules as sess

__all__ = ["build_from_event_batches", "partitions_for", "SessionBlock", "session_order", "shard_of", "KEY", "ITEM",
           "TIME", "REPORT_FILE"]

KEY, ITEM, TIME = "key", "item_id", "time_us"
REPORT_FILE = "_report.json"
SPLIT_MIN_LENGTH = 2  # spec §7: splits keep sessions with >= 2 events (a session must give a transition)
EVENTS_PER_PARTITION = 1_000_000
MIN_PARTITIONS = 2  # a small log: each partition costs fixed work (its merges, its Beam elements)
UNKNOWN_SIZE_PARTITIONS = 8  # a log of unknown size: enough to spread over a few workers
_COUNTERS, _SUMMARY, _COUNTS, _VOCAB, _LATER = "counters", "summary", "counts", "vocab", "later"


def partitions_for(n_events: int | None, events_per_partition: int = EVENTS_PER_PARTITION,
                   minimum: int = MIN_PARTITIONS) -> int:
    """Number of hash partitions for about ``n_events`` events: one per ``events_per_partition``, at least
    ``minimum`` (unknown size: :data:`UNKNOWN_SIZE_PARTITIONS`).

    Example::

        >>> partitions_for(1_000_000), partitions_for(5_000_000), partitions_for(None), partitions_for(30_000_000)
        (2, 5, 8, 30)
    """
    if not n_events or n_events <= 0:
        return max(minimum, UNKNOWN_SIZE_PARTITIONS)
    return max(minimum, math.ceil(n_events / events_per_partition))


# ------------------------------------------------------------------------------------------------ array helpers
def _strings(column, name: str) -> pa.Array:
    """A string/binary column as a ``pa.string()`` array without nulls (clear error otherwise)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError(f"event batch column {name!r}: {column.null_count} missing value(s)")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            or pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        raise ValueError(f"event batch column {name!r} must hold strings, got {column.type}")
    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid as err:
        raise ValueError(f"event batch column {name!r}: {err}") from err


def _times(column) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError(f"event batch column {TIME!r}: {column.null_count} missing value(s)")
    if not pa.types.is_integer(column.type):
        raise ValueError(f"event batch column {TIME!r} must hold integer microseconds, got {column.type}")
    return column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _string_hash(values: pa.Array) -> np.ndarray:
    """A deterministic 64-bit hash of each string (same in every process and on every runner)."""
    values = values.cast(pa.large_string())
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:values.offset + n + 1]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8) if values.buffers()[2] is not None \
        else np.zeros(0, np.uint8)
    start, stop = int(offsets[0]), int(offsets[-1])
    data = data[start:stop].astype(np.uint64)
    offsets = offsets - start
    lengths = np.diff(offsets)
    pos = np.arange(len(data), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    powers = np.cumprod(np.full(max(int(lengths.max(initial=0)), 1), 0x100000001B3, dtype=np.uint64))
    with np.errstate(over="ignore"):
        cumulative = np.concatenate([[np.uint64(0)], np.cumsum((data + np.uint64(1)) * powers[pos])])
        h = cumulative[offsets[1:]] - cumulative[offsets[:-1]] + lengths.astype(np.uint64)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    return h


def _segments(lengths: np.ndarray) -> np.ndarray:
    """Index of the segment of each element, for segments of the given lengths."""
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _id_columns(sids: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """(0 for integer-looking IDs else 1, their value) per ID; None when one has more than 18 digits."""
    is_int = pc.match_substring_regex(sids, r"^-?[0-9]+$").to_numpy(zero_copy_only=False)
    value = np.zeros(len(sids), dtype=np.int64)
    if is_int.any():
        ints = sids.filter(pa.array(is_int))
        if pc.max(pc.binary_length(ints)).as_py() > 18:
            return None
        value[is_int] = ints.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return (~is_int).astype(np.int8), value


def session_order(starts: np.ndarray, sids: pa.Array, positions: np.ndarray | None = None) -> np.ndarray:
    """Permutation that lists rows by (start, :func:`~.session_rules.id_sort_key` of the session ID, position).

    The session order of the output files and of the vocabulary: integer-looking IDs by value (then text), the
    others by text; vectorised, except for IDs of more than 18 digits, whose ties are ordered in Python.

    Example::

        >>> session_order(np.array([5, 1, 5]), pa.array(["10", "x", "9"])).tolist()
        [1, 2, 0]
    """
    starts = np.asarray(starts, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    ordered = starts[order]
    same = ordered[1:] == ordered[:-1]
    if not same.any() and positions is None:
        return order
    columns = _id_columns(sids)
    if columns is not None:
        table = {"start": starts, "cls": columns[0], "value": columns[1], "text": sids}
        if positions is not None:
            table["pos"] = np.asarray(positions, dtype=np.int64)
        return pc.sort_indices(pa.table(table), sort_keys=[(k, "ascending") for k in table]).to_numpy()
    if positions is not None:
        order = np.lexsort((np.asarray(positions), starts))
        ordered = starts[order]
        same = ordered[1:] == ordered[:-1]
    tie = np.zeros(len(order), dtype=bool)
    tie[1:] |= same
    tie[:-1] |= same
    at = np.flatnonzero(tie)
    rows = order[at]
    group = np.cumsum(np.concatenate([[True], ~same]))[at]
    ids = sids.take(pa.array(rows)).to_pylist()
    pos = positions[rows].tolist() if positions is not None else [0] * len(rows)
    key = [(g, sess.id_sort_key(i), p) for g, i, p in zip(group.tolist(), ids, pos, strict=True)]
    order[at] = rows[sorted(range(len(rows)), key=key.__getitem__)]
    return order


class SessionBlock:
    """Sessions of one partition as columns: ``sid`` (session IDs), ``offsets`` (S+1 event offsets), ``times``
    (int64 µs) and ``codes`` (int32 indices into ``dictionary``, the partition's item IDs), events of a session
    in time order (ties by item ID).

    Example::

        >>> block = SessionBlock.from_events(pa.array(["s", "s", "t"]), pa.array(["b", "a", "a"]),
        ...                                  np.array([2, 1, 5]))
        >>> block.sid.to_pylist(), block.offsets.tolist(), block.items().to_pylist()
        (['s', 't'], [0, 2, 3], ['a', 'b', 'a'])
    """

    __slots__ = ("sid", "offsets", "times", "codes", "dictionary")

    def __init__(self, sid: pa.Array, offsets: np.ndarray, times: np.ndarray, codes: np.ndarray,
                 dictionary: pa.Array):
        self.sid, self.offsets, self.times, self.codes, self.dictionary = sid, offsets, times, codes, dictionary

    def __reduce__(self):
        return SessionBlock, (self.sid, self.offsets, self.times, self.codes, self.dictionary)

    @classmethod
    def from_events(cls, keys: pa.Array, items: pa.Array, times: np.ndarray, gap_us: int | None = None
                    ) -> SessionBlock:
        """Groups events by key (sessions by ID; with ``gap_us``, a user's events cut at longer gaps)."""
        key_enc = keys.dictionary_encode()
        item_enc = items.dictionary_encode()
        dictionary = item_enc.dictionary
        rank = np.empty(len(dictionary), dtype=np.int32)  # item codes in text order (ties of time by item ID)
        text_order = pc.sort_indices(dictionary).to_numpy()
        rank[text_order] = np.arange(len(dictionary), dtype=np.int32)
        dictionary = dictionary.take(pa.array(text_order))
        codes = rank[item_enc.indices.to_numpy(zero_copy_only=False)]
        key_codes = key_enc.indices.to_numpy(zero_copy_only=False)
        order = pc.sort_indices(pa.table({"k": key_codes, "t": times, "i": codes}),
                                sort_keys=[("k", "ascending"), ("t", "ascending"), ("i", "ascending")]).to_numpy()
        key_codes, times, codes = key_codes[order], times[order], codes[order]
        new_key = np.ones(len(order), dtype=bool)
        new_key[1:] = key_codes[1:] != key_codes[:-1]
        if gap_us is None:
            start = new_key
        else:
            start = new_key.copy()
            start[1:] |= (times[1:] - times[:-1]) > gap_us
        first = np.flatnonzero(start)
        offsets = np.append(first, len(order)).astype(np.int64)
        key_of = key_enc.dictionary.take(pa.array(key_codes[first]))
        if gap_us is None:
            sid = key_of
        else:
            user_first = new_key[first]  # does the session start a user's events
            session_no = np.arange(len(first)) - np.flatnonzero(user_first)[np.cumsum(user_first) - 1]
            sid = pc.binary_join_element_wise(key_of, pa.array(session_no).cast(pa.string()), "#")
        return cls(sid.cast(pa.string()), offsets, times, codes.astype(np.int32), dictionary)

    @classmethod
    def concat(cls, blocks: Sequence[SessionBlock]) -> SessionBlock:
        """One block of the sessions of several (their dictionaries are unified)."""
        blocks = [b for b in blocks if b.n_sessions]
        if len(blocks) == 1:
            return blocks[0]
        if not blocks:
            return cls.empty()
        dictionary = pc.unique(pa.concat_arrays([b.dictionary for b in blocks]))
        codes = [pc.index_in(b.dictionary, value_set=dictionary).to_numpy(zero_copy_only=False)[b.codes]
                 for b in blocks]
        lengths = np.concatenate([b.lengths for b in blocks])
        return cls(pa.concat_arrays([b.sid for b in blocks]), _offsets(lengths),
                   np.concatenate([b.times for b in blocks]), np.concatenate(codes).astype(np.int32), dictionary)

    @classmethod
    def empty(cls) -> SessionBlock:
        return cls(pa.array([], pa.string()), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32),
                   pa.array([], pa.string()))

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.times)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def starts(self) -> np.ndarray:
        return self.times[self.offsets[:-1]]

    @property
    def ends(self) -> np.ndarray:
        return self.times[self.offsets[1:] - 1]

    def session_of_event(self) -> np.ndarray:
        return _segments(self.lengths)

    def items(self) -> pa.Array:
        """Item ID of every event."""
        return self.dictionary.take(pa.array(self.codes))

    def filter(self, events: np.ndarray | None = None, sessions: np.ndarray | None = None, min_length: int = 1
               ) -> SessionBlock:
        """The block with only the ``events`` (bool mask) of the ``sessions`` (bool mask) that keep at least
        ``min_length`` events."""
        seg = self.session_of_event()
        keep = np.ones(self.n_events, dtype=bool) if events is None else events
        if sessions is not None:
            keep = keep & sessions[seg]
        lengths = np.bincount(seg[keep], minlength=self.n_sessions)
        kept_sessions = lengths >= max(min_length, 1)
        keep &= kept_sessions[seg]
        if keep.all():
            return self
        return SessionBlock(self.sid.filter(pa.array(kept_sessions)), _offsets(lengths[kept_sessions]),
                            self.times[keep], self.codes[keep], self.dictionary)

    def take_sessions(self, rows: np.ndarray) -> SessionBlock:
        """The sessions at ``rows`` (indices), in that order."""
        lengths = self.lengths[rows]
        starts = np.repeat(self.offsets[:-1][rows], lengths)
        index = starts + (np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(_offsets(lengths)[:-1], lengths))
        return SessionBlock(self.sid.take(pa.array(rows)), _offsets(lengths), self.times[index], self.codes[index],
                            self.dictionary)

    def used_items(self) -> pa.Array:
        used = np.zeros(len(self.dictionary), dtype=bool)
        used[self.codes] = True
        return self.dictionary.filter(pa.array(used))

    def item_mask(self, items: pa.Array | None) -> np.ndarray:
        """Per dictionary entry: is it in ``items``."""
        if items is None or not len(items):
            return np.zeros(len(self.dictionary), dtype=bool)
        return pc.is_in(self.dictionary, value_set=items).to_numpy(zero_copy_only=False)


# --------------------------------------------------------------------------------------- per-partition results
def _summary_partial(block: SessionBlock) -> dict:
    lengths = block.lengths
    return {"events": block.n_events, "sessions": block.n_sessions, "items": block.used_items(),
            "hist": np.bincount(lengths), "tmin": int(block.times.min()), "tmax": int(block.ends.max()),
            "start_max": int(block.starts.max())}


def _merge_summaries(partials: Iterable[dict]) -> dict | None:
    """Per-partition summaries -> the ``SummarizeSessions`` dict (None for no session)."""
    partials = [p for p in partials if p["sessions"]]
    if not partials:
        return None
    size = max(len(p["hist"]) for p in partials)
    hist = np.zeros(size, dtype=np.int64)
    for p in partials:
        hist[:len(p["hist"])] += p["hist"]
    return {
        "events": int(sum(p["events"] for p in partials)), "sessions": int(sum(p["sessions"] for p in partials)),
        "items": len(pc.unique(pa.concat_arrays([p["items"] for p in partials]))),
        "hist": {int(n): int(c) for n, c in enumerate(hist) if c},
        "tmin": min(p["tmin"] for p in partials), "tmax": max(p["tmax"] for p in partials),
        "start_max": max(p["start_max"] for p in partials),
    }


def _count_partial(block: SessionBlock, codes: np.ndarray | None = None) -> tuple[pa.Array, np.ndarray]:
    counts = np.bincount(block.codes if codes is None else codes, minlength=len(block.dictionary))
    present = counts > 0
    return block.dictionary.filter(pa.array(present)), counts[present]


def _merge_counts(partials: Iterable[tuple[pa.Array, np.ndarray]]) -> tuple[pa.Array, np.ndarray] | None:
    partials = [p for p in partials if len(p[0])]
    if not partials:
        return None
    items = pa.concat_arrays([p[0] for p in partials])
    counts = np.concatenate([p[1] for p in partials]).astype(np.int64)
    unique = pc.unique(items)
    index = pc.index_in(items, value_set=unique).to_numpy(zero_copy_only=False)
    total = np.zeros(len(unique), dtype=np.int64)
    np.add.at(total, index, counts)
    return unique, total


def _vocab_partial(block: SessionBlock) -> dict:
    """Per item of the partition: where it first appears in session order, and its events."""
    order = session_order(block.starts, block.sid)
    ordered = block.take_sessions(order)
    first_at = np.unique(ordered.codes, return_index=True)[1]
    seg = ordered.session_of_event()[first_at]
    return {"items": ordered.dictionary.take(pa.array(ordered.codes[first_at])),
            "start": ordered.starts[seg], "sid": ordered.sid.take(pa.array(seg)),
            "pos": first_at - ordered.offsets[seg],
            "count": np.bincount(ordered.codes, minlength=len(ordered.dictionary))[ordered.codes[first_at]]}


def _merge_vocab(partials: Iterable[dict]) -> tuple[pa.Array, np.ndarray] | None:
    """Vocabulary ``(items in index order, support)``: first appearance by session order, then position."""
    partials = [p for p in partials if len(p["items"])]
    if not partials:
        return None
    items = pa.concat_arrays([p["items"] for p in partials])
    start = np.concatenate([p["start"] for p in partials])
    pos = np.concatenate([p["pos"] for p in partials])
    sid = pa.concat_arrays([p["sid"] for p in partials])
    count = np.concatenate([p["count"] for p in partials]).astype(np.int64)
    unique = pc.unique(items)
    code = pc.index_in(items, value_set=unique).to_numpy(zero_copy_only=False)
    support = np.zeros(len(unique), dtype=np.int64)
    np.add.at(support, code, count)
    order = session_order(start, sid, pos)
    firsts = np.unique(code[order], return_index=True)[1]  # per unique item: its first row in that order
    by_first = np.argsort(firsts)
    index_order = code[order][firsts[by_first]]
    return unique.take(pa.array(index_order)), support[index_order]


def _merged(_, merge: Callable, partials):
    out = merge(partials)
    if out is not None:
        yield out


def _sum_counters(pairs) -> dict:
    totals = {}
    for name, n in pairs:
        totals[name] = totals.get(name, 0) + n
    return totals


class _WriteReport(beam.DoFn):
    """Writes the report triples of every side input (see :class:`_Graph`) to one JSON file."""

    def __init__(self, path: str, makers: Sequence[tuple[Callable, bool]]):
        self._path, self._makers = path, list(makers)

    def process(self, _, *sides):
        triples = []
        for (make, each), side in zip(self._makers, sides, strict=True):
            if each:
                triples += [t for value in side for t in make(value)]
            elif side is not None:
                triples += make(side)
        yield bt.write_report_file(self._path, triples)


class _Graph:
    """Keeps the Beam graph short (each stage costs a fixed time on the local runners): a whole-log result is
    merged by one Map over a one-element seed, with the per-partition results as a list side input, and the report
    is written once, from side inputs."""

    def __init__(self, pipeline):
        self.seed = pipeline | "Seed" >> beam.Impulse()  # one element (one stage; Create([None]) takes three)
        self._reports = []

    def gather(self, partials, label: str, merge: Callable):
        """One element: ``merge`` of all per-partition results (nothing when it gives None)."""
        # (the identity Map gives each list side input its own producer: the BundleBasedDirectRunner mixes up list
        # side inputs read from different outputs of one multi-output ParDo)
        own = partials | f"{label}Partials" >> beam.Map(lambda x: x)
        return self.seed | f"{label}Merge" >> beam.FlatMap(_merged, merge, beam.pvalue.AsList(own))

    def report(self, pcoll, make: Callable, each: bool = False) -> None:
        """Reports ``make(value)`` (a list of triples) for the single value of ``pcoll`` (or for each value)."""
        side = beam.pvalue.AsList(pcoll) if each else beam.pvalue.AsSingleton(pcoll, default_value=None)
        self._reports.append((side, make, each))

    def write_report(self, path: str) -> None:
        makers = [(make, each) for _, make, each in self._reports]
        self.seed | "WriteReport" >> beam.ParDo(_WriteReport(path, makers), *[side for side, _, _ in self._reports])


# ---------------------------------------------------------------------------------------------------- DoFns
class _HashPartition(beam.DoFn):
    """An event batch -> ``(partition, sub-batch)`` pairs, by a hash of the key."""

    def __init__(self, partitions: int):
        self._partitions = partitions

    def process(self, batch):
        for name in (KEY, ITEM, TIME):
            if name not in batch.schema.names:
                raise ValueError(f"event batch: no column {name!r} (columns: {batch.schema.names})")
        if not batch.num_rows:
            return
        keys = _strings(batch.column(KEY), KEY)
        items = _strings(batch.column(ITEM), ITEM)
        times = _times(batch.column(TIME))
        distinct = keys.dictionary_encode()
        part = (_string_hash(distinct.dictionary) % np.uint64(self._partitions)).astype(np.int64)[
            distinct.indices.to_numpy(zero_copy_only=False)]
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self._partitions + 1))
        for p in range(self._partitions):
            rows = order[bounds[p]:bounds[p + 1]]
            if len(rows):
                index = pa.array(rows)
                yield p, (keys.take(index), items.take(index), times[rows])


class _BuildSessions(beam.DoFn):
    """A partition's sub-batches -> its sessions (after dedupe and the length filter) + summary, counters, counts."""

    def __init__(self, gap_us, dedupe: bool, min_length: int):
        self._gap, self._dedupe, self._min_length = gap_us, dedupe, min_length

    def process(self, element):
        _, parts = element
        parts = list(parts)
        keys = pa.concat_arrays([p[0] for p in parts])
        items = pa.concat_arrays([p[1] for p in parts])
        times = np.concatenate([p[2] for p in parts])
        block = SessionBlock.from_events(keys, items, times, self._gap)
        logging.info("preprocess: partition of %d events -> %d sessions", block.n_events, block.n_sessions)
        yield beam.pvalue.TaggedOutput(_SUMMARY, _summary_partial(block))
        keep = None
        if self._dedupe:
            seg = block.session_of_event()
            keep = np.ones(block.n_events, dtype=bool)
            keep[1:] = (block.codes[1:] != block.codes[:-1]) | (seg[1:] != seg[:-1])
            removed = int(block.n_events - keep.sum())
            if removed:
                yield beam.pvalue.TaggedOutput(_COUNTERS, ("events_removed_dedupe", removed))
        out = block.filter(events=keep, min_length=self._min_length)
        if out.n_sessions != block.n_sessions:
            yield beam.pvalue.TaggedOutput(_COUNTERS, ("sessions_removed_short", block.n_sessions - out.n_sessions))
        if out.n_sessions:
            yield beam.pvalue.TaggedOutput(_COUNTS, _count_partial(out))
            yield out


def _rare_items(counts, min_support: int):
    """Global counts -> (items with fewer than ``min_support`` events, their events)."""
    items, n = counts
    rare = n < min_support
    return items.filter(pa.array(rare)), int(n[rare].sum())


def _union(so_far, new):
    return new[0] if not len(so_far) else pc.unique(pa.concat_arrays([so_far, new[0]]))


class _Decrements(beam.DoFn):
    """Events left in the sessions that this round's rare items make too short (their items' counts go down)."""

    def __init__(self, min_length: int):
        self._min_length = min_length

    def process(self, block, before, new):
        new_mask = block.item_mask(new[0])
        if not new_mask.any():
            return
        before_mask = block.item_mask(before)
        seg = block.session_of_event()
        left_before = ~before_mask[block.codes]
        left_after = left_before & ~new_mask[block.codes]
        n_before = np.bincount(seg[left_before], minlength=block.n_sessions)
        n_after = np.bincount(seg[left_after], minlength=block.n_sessions)
        dropped = (n_before >= self._min_length) & (n_after < self._min_length)
        if dropped.any():
            yield _count_partial(block, block.codes[left_after & dropped[seg]])


def _recount(counts, new, decrements):
    """Item counts after a round: its rare items go, the events of its dropped sessions are subtracted."""
    items, n = counts
    n = n.copy()
    if decrements is not None:
        index = pc.index_in(decrements[0], value_set=items).to_numpy(zero_copy_only=False)
        np.subtract.at(n, index, decrements[1])
    keep = n > 0
    if len(new[0]):
        keep &= ~pc.is_in(items, value_set=new[0]).to_numpy(zero_copy_only=False)
    if not keep.any():
        return
    yield items.filter(pa.array(keep)), n[keep]


class _DropRare(beam.DoFn):
    def __init__(self, min_length: int):
        self._min_length = min_length

    def process(self, block, rare):
        out = block.filter(events=~block.item_mask(rare)[block.codes], min_length=self._min_length)
        if out.n_sessions:
            yield beam.pvalue.TaggedOutput(_SUMMARY, _summary_partial(out))
            yield out


class _SplitAt(beam.DoFn):
    """Sessions -> earlier (events before the split time, >= min_length; + summary and vocabulary partials) and
    ``later`` (sessions starting/ending at or after the split time)."""

    def __init__(self, split_on: str, min_length: int):
        self._use_end, self._min_length = split_on == "end", min_length

    def process(self, block, split_us):
        if split_us is None:
            return
        later = (block.ends if self._use_end else block.starts) >= split_us
        if later.any():
            yield beam.pvalue.TaggedOutput(_LATER, block.filter(sessions=later))
        earlier = block.filter(events=block.times < split_us, sessions=~later, min_length=self._min_length)
        if earlier.n_sessions:
            yield beam.pvalue.TaggedOutput(_SUMMARY, _summary_partial(earlier))
            yield beam.pvalue.TaggedOutput(_VOCAB, _vocab_partial(earlier))
            yield earlier


class _KeepKnown(beam.DoFn):
    def __init__(self, min_length: int):
        self._min_length = min_length

    def process(self, block, vocab):
        known = block.item_mask(vocab[0] if vocab is not None else None)
        out = block.filter(events=known[block.codes], min_length=self._min_length)
        if out.n_sessions:
            yield beam.pvalue.TaggedOutput(_SUMMARY, _summary_partial(out))
            yield out


def shard_of(starts: np.ndarray, summary: dict, rows_per_shard: int) -> np.ndarray:
    """Output shard of sessions starting at ``starts``: consecutive start ranges of about ``rows_per_shard``
    sessions (``summary``: the split's ``tmin``, ``start_max`` and ``sessions``).

    Example::

        >>> shard_of(np.array([0, 5, 9]), {"tmin": 0, "start_max": 9, "sessions": 3}, rows_per_shard=2).tolist()
        [0, 1, 1]
    """
    lo, hi = summary["tmin"], summary["start_max"]
    shards = max(1, math.ceil(summary["sessions"] / rows_per_shard))
    if (hi - lo + 1) * shards < 2 ** 62:
        return (starts - lo) * shards // (hi - lo + 1)
    return np.array([(int(s) - lo) * shards // (hi - lo + 1) for s in starts], dtype=np.int64)


class _AssignShards(beam.DoFn):
    """Sessions -> ``(shard, (session IDs, offsets, times, item indices))``, one element per shard touched."""

    def __init__(self, rows_per_shard: int):
        self._rows = rows_per_shard

    def process(self, block, summary, vocab):
        index = pc.index_in(block.dictionary, value_set=vocab[0]).fill_null(-1).to_numpy(zero_copy_only=False)
        shard = shard_of(block.starts, summary, self._rows)
        order = np.argsort(shard, kind="stable")
        bounds = np.flatnonzero(np.diff(shard[order])) + 1
        for rows in np.split(order, bounds):
            part = block.take_sessions(rows)
            item_idx = index[part.codes].astype(np.int64)
            if (item_idx < 0).any():
                raise ValueError("an item of a written split is missing from its vocabulary")
            yield int(shard[rows[0]]), (part.sid, part.offsets, part.times, item_idx)


class _WriteShard(beam.DoFn):
    """Writes one shard's sessions, sorted by start time (ties by session ID), to ``part-SSSSS.tfrecord``."""

    def __init__(self, directory: str):
        self._directory = directory

    def process(self, element, vocab):
        shard, parts = element
        parts = list(parts)
        sid = pa.concat_arrays([p[0] for p in parts])
        lengths = np.concatenate([np.diff(p[1]) for p in parts])
        times = np.concatenate([p[2] for p in parts])
        item_idx = np.concatenate([p[3] for p in parts])
        offsets = _offsets(lengths)
        block = SessionBlock(sid, offsets, times, item_idx, vocab[0])
        ordered = block.take_sessions(session_order(block.starts, sid))
        name = contracts.part_file_name(shard)
        data = example_codec.session_tfrecords(ordered.sid, ordered.offsets, ordered.codes, ordered.times, vocab[0])
        with FileSystems.create(FileSystems.join(self._directory, name),
                                mime_type="application/octet-stream") as handle:
            handle.write(data)
        yield name, ordered.n_sessions, ordered.n_events


# --------------------------------------------------------------------------------------------------- the graph
def _split(graph: _Graph, sessions, label: str, days_us: int, split_on: str, names: Sequence[str], summary):
    """Time split of ``sessions`` (``summary``: theirs, for the last timestamp) -> dict of collections."""
    early, late = names
    split_time = summary | f"{label}Time" >> beam.Map(lambda s: s["tmax"] - days_us)
    parts = sessions | f"{label}At" >> beam.ParDo(
        _SplitAt(split_on, SPLIT_MIN_LENGTH), beam.pvalue.AsSingleton(split_time, default_value=None)
    ).with_outputs(_LATER, _SUMMARY, _VOCAB, main="earlier")
    vocab = graph.gather(parts[_VOCAB], f"{label}Vocabulary", _merge_vocab)
    later = parts[_LATER] | f"{label}KeepKnown" >> beam.ParDo(
        _KeepKnown(SPLIT_MIN_LENGTH), beam.pvalue.AsSingleton(vocab, default_value=None)).with_outputs(
        _SUMMARY, main="sessions")
    graph.report(split_time, lambda t: [("split_time_us", late, t)])
    return {
        early: (parts.earlier, graph.gather(parts[_SUMMARY], f"{label}{early}Summary", _merge_summaries)),
        late: (later.sessions, graph.gather(later[_SUMMARY], f"{label}{late}Summary", _merge_summaries)),
        "vocabulary": vocab,
    }


def _write_vocabulary(vocab, path: str, name: str, label: str):
    def write(entries):
        items, support = entries
        text = bt.vocabulary_file_text(list(zip(items.to_pylist(), support.tolist(), strict=True)))
        with FileSystems.create(path, mime_type="application/octet-stream") as handle:
            handle.write(text.encode("utf-8"))
        return [("vocabulary", name, len(items))]

    return vocab | label >> beam.Map(write)


def _clean(graph: _Graph, base, counts, options):
    """The item-support rounds: returns the rare items of all rounds (one element, possibly empty)."""
    min_support, min_length, rounds = options.min_item_support, options.min_session_length, options.filter_rounds
    rare_so_far = graph.seed | "NoRareYet" >> beam.Map(lambda _: pa.array([], pa.string()))
    for r in range(1, rounds + 1):
        new = counts | f"Rare{r}" >> beam.Map(_rare_items, min_support)
        new_side = beam.pvalue.AsSingleton(new, default_value=(pa.array([], pa.string()), 0))
        graph.report(new, lambda x, r=r: [("cleaning_round", r, [len(x[0]), x[1]])])
        if r < rounds:
            decrements = base | f"Dropped{r}" >> beam.ParDo(
                _Decrements(min_length), beam.pvalue.AsSingleton(rare_so_far), new_side)
            total = graph.gather(decrements, f"Decrements{r}", _merge_counts)
            counts = counts | f"Recount{r}" >> beam.FlatMap(
                _recount, new_side, beam.pvalue.AsSingleton(total, default_value=None))
        rare_so_far = rare_so_far | f"Union{r}" >> beam.Map(_union, new_side)
    return rare_so_far


def build_from_event_batches(batches, options, out_dir: str, counters=(),
                             split_dir: Callable[[str], str] | None = None, partitions: int | None = None) -> None:
    """Adds sessions -> cleaning -> time split(s) -> vocabulary -> session tensors (+ report) to event batches.

    ``batches`` holds ``pyarrow.RecordBatch`` es with the columns ``key`` (string or binary: the session ID, or
    the user ID when ``options.user_key`` is set), ``item_id`` (string or binary) and ``time_us`` (integer µs);
    other columns are ignored, a missing column or a missing value is an error. ``options`` is a
    :class:`~gru4rec_tf.preprocessing.options.PreprocessOptions` (its cleaning, split and shard fields are
    used). ``counters`` are extra ``(name, n)`` collections for the report (e.g. the reader's row counts);
    ``split_dir(name)`` names each split's output directory (default ``out_dir/<name>``); ``partitions`` is the
    number of hash partitions (default :func:`partitions_for` of an unknown size; see the module docstring for
    what it does to memory). Writes ``vocab*.tsv``, the splits' ``part-SSSSS.tfrecord`` files and
    ``out_dir/_report.json`` (see :mod:`.report`), the same bytes as the element-wise Beam transforms that it
    replaced wrote.

    Example::

        read = pipeline | ReadClickLogBatches(options)
        build_from_event_batches(read["batches"], options, "out", counters=(read["counters"],), partitions=16)
    """
    join = FileSystems.join
    split_dir = split_dir or (lambda name: join(out_dir, name))
    partitions = partitions or partitions_for(None)
    gap = options.session_gap_us if options.user_key else None
    graph = _Graph(batches.pipeline)
    grouped = (batches
               | "HashPartition" >> beam.ParDo(_HashPartition(partitions))
               | "GroupPartitions" >> beam.GroupByKey()
               | "Sessions" >> beam.ParDo(_BuildSessions(gap, options.dedupe_consecutive, options.min_session_length)
                                          ).with_outputs(_SUMMARY, _COUNTERS, _COUNTS, main="sessions"))
    base = grouped.sessions
    all_counters = (*counters, grouped[_COUNTERS]) | "AllCounters" >> beam.Flatten()
    graph.report(graph.gather(all_counters, "Counters", _sum_counters),
                 lambda totals: [("counter", k, n) for k, n in sorted(totals.items())])
    graph.report(graph.gather(grouped[_SUMMARY], "GroupedSummary", _merge_summaries),
                 lambda s: [("summary", "_grouped", s)])
    counts = graph.gather(grouped[_COUNTS], "Counts", _merge_counts)
    rare = _clean(graph, base, counts, options)
    kept = base | "DropRare" >> beam.ParDo(_DropRare(options.min_session_length),
                                           beam.pvalue.AsSingleton(rare)).with_outputs(_SUMMARY, main="sessions")
    cleaned_summary = graph.gather(kept[_SUMMARY], "CleanedSummary", _merge_summaries)
    graph.report(cleaned_summary, lambda s: [("summary", "_cleaned", s)])

    test = _split(graph, kept.sessions, "SplitTest", options.days_us(options.test_days), options.split_on,
                  ("train", "test"), cleaned_summary)
    splits = {"train": test["train"], "test": test["test"]}
    vocabs = {"train": test["vocabulary"], "test": test["vocabulary"]}
    graph.report(_write_vocabulary(test["vocabulary"], join(out_dir, contracts.VOCAB_FILES["train"]), "train",
                                   "WriteVocab"), lambda triples: triples)
    if getattr(options, "valid_days", None) is not None:
        valid = _split(graph, test["train"][0], "SplitValid", options.days_us(options.valid_days), options.split_on,
                       ("train_tr", "valid"), test["train"][1])
        splits.update(train_tr=valid["train_tr"], valid=valid["valid"])
        vocabs.update(train_tr=valid["vocabulary"], valid=valid["vocabulary"])
        graph.report(_write_vocabulary(valid["vocabulary"], join(out_dir, contracts.VOCAB_FILES["train_tr"]),
                                       "train_tr", "WriteVocabTrainTr"), lambda triples: triples)

    for name, (sessions, summary) in splits.items():
        vocab_side = beam.pvalue.AsSingleton(vocabs[name])
        files = (sessions
                 | f"Shards_{name}" >> beam.ParDo(_AssignShards(options.rows_per_shard),
                                                  beam.pvalue.AsSingleton(summary), vocab_side)
                 | f"GroupShards_{name}" >> beam.GroupByKey()
                 | f"Write_{name}" >> beam.ParDo(_WriteShard(split_dir(name)), vocab_side))
        graph.report(files, lambda f, name=name: [("split_files", name, list(f))], each=True)
        graph.report(summary, lambda s, name=name: [("summary", name, s)])
    graph.write_report(join(out_dir, REPORT_FILE))
