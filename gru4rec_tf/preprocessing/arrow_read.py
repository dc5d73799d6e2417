"""Reading a click log into Arrow record batches: vectorised parsing with the row semantics of :mod:`.records`.

:class:`ReadClickLogBatches` is the batched twin of :class:`~gru4rec_tf.preprocessing.beam_transforms.ReadClickLog`:
same files, same rules, same rejected rows and counters, but its main output holds ``pyarrow.RecordBatch``\\ es
(columns ``key`` string, ``item_id`` string, ``time_us`` int64) instead of one Python tuple per event, and its work
is cut finer than a file: uncompressed text files are split into byte ranges at line boundaries (a line belongs to
the range holding its first byte) and Parquet files into row groups, so several workers share one large file.

Each range is read in blocks of about ``block_bytes``; a block's lines are split into fields and checked with
pyarrow/numpy kernels. Only lines that the vectorised checks cannot settle exactly (quoted fields, bytes that are not
UTF-8, an empty ID, a time outside the plain forms ``-?\\d+(\\.\\d+)?`` / ``YYYY-MM-DD[T ]hh:mm:ss[.f][Z|±hh:mm]``,
a Parquet null or an unusual column type) go through :class:`~gru4rec_tf.preprocessing.records.RowParser`, the
per-row parser of the unbatched reader, so a bad row is rejected for the same reason, with the same text, and the
good rows around it are kept. Memory per worker is bounded by a few blocks, whatever the size of the log.

Example::

    with beam.Pipeline() as p:
        read = p | ReadClickLogBatches(PreprocessOptions(input="clicks/*.tsv", output="out"))
        read["batches"]    # pyarrow.RecordBatch(key: string, item_id: string, time_us: int64)
        read["rejected"]   # (source file, reason, source line), as ReadClickLog
        read["counters"]   # ("rows_ok", n), ("rows_rejected:<reason>", n), ("rows_filtered_event_type", n)
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv
from absl import logging
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from gru4rec_tf.preprocessing.input_files import InputSpec, inspect_input
from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.preprocessing.records import RejectReason, RowParser

__all__ = ["ReadClickLogBatches", "EVENT_SCHEMA", "TextBlockParser", "parse_parquet_batch"]

EVENT_SCHEMA = pa.schema([("key", pa.string()), ("item_id", pa.string()), ("time_us", pa.int64())])
_REJECTED, _COUNTERS = "rejected", "counters"
_RANGE_BYTES = 32 << 20  # uncompressed text is read in byte ranges of this size (units of work)
_BLOCK_BYTES = 4 << 20  # ... and parsed in blocks of about this size (one record batch each)
_MAX_ABS_US = 2**62
# what str.strip() removes: every character for which str.isspace() is true (written out: computing it walks all
# 1.1M code points, 0.1-0.2 s of every ingestion; a test checks it against str.isspace())
_PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                  "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_PLAIN_NUMBER = r"^-?[0-9]+(?:\.[0-9]+)?$"
_PLAIN_ISO = (r"^(?P<Y>[0-9]{4})-(?P<M>[0-9]{2})-(?P<D>[0-9]{2})[T ](?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})"
              r"(?:\.(?P<f>[0-9]{1,6}))?(?:Z|(?P<zs>[+-])(?P<zh>[0-9]{2}):(?P<zm>[0-9]{2}))?$")
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def empty_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], t.type) for t in EVENT_SCHEMA], schema=EVENT_SCHEMA)


# ------------------------------------------------------------------------------------------------ vectorised cells
def _strip(cells: pa.Array) -> pa.Array:
    """``str.strip()`` of every cell (the same whitespace set as Python's)."""
    return pc.utf8_trim(cells, characters=_PY_WHITESPACE)


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), vectorised."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _iso_us(cells: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds, settled) for stripped ISO-8601 cells; ``settled`` is False where the plain form does not
    match or a field is out of range (those cells are left to ``datetime.fromisoformat``)."""
    matched = pc.fill_null(pc.match_substring_regex(cells, _PLAIN_ISO), False).to_numpy(zero_copy_only=False)
    if not matched.any():
        return np.zeros(len(cells), np.int64), matched
    parts = pc.extract_regex(pc.if_else(matched, cells, "1970-01-01T00:00:00"), _PLAIN_ISO)

    def number(name):
        text = pc.fill_null(pc.struct_field(parts, name), "")
        return pc.cast(pc.if_else(pc.equal(text, ""), "0", text), pa.int64()).to_numpy()

    y, m, d, hh, mm, ss, zh, zm = (number(k) for k in ("Y", "M", "D", "h", "m", "s", "zh", "zm"))
    frac = pc.fill_null(pc.struct_field(parts, "f"), "")
    frac_us = number("f") * 10 ** (6 - pc.utf8_length(frac).to_numpy().astype(np.int64))
    sign = np.where(pc.equal(pc.fill_null(pc.struct_field(parts, "zs"), ""), "-").to_numpy(zero_copy_only=False),
                    -1, 1)
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_days = _DAYS_IN_MONTH[np.clip(m, 0, 12)] + ((m == 2) & leap)
    valid = (matched & (y >= 1) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= month_days) & (hh <= 23) & (mm <= 59)
             & (ss <= 59) & (zh <= 23) & (zm <= 59))
    seconds = _days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss - sign * (zh * 3600 + zm * 60)
    return np.where(valid, seconds * 1_000_000 + frac_us, 0), valid


def _number_us(values: np.ndarray, time_format: str) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds, settled) for float64 times in unix seconds/milliseconds; as ``parse_time_us``: rounded
    half-to-even, unsettled when not finite or out of range (the per-row parser then rejects them)."""
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * (1e6 if time_format == "unix_s" else 1e3)
        ok = np.isfinite(scaled) & (np.abs(scaled) < _MAX_ABS_US)
        return np.where(ok, np.round(np.where(ok, scaled, 0.0)), 0).astype(np.int64), ok


def _text_time_us(raw: pa.Array, time_format: str) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds, settled) for text time cells."""
    if time_format == "iso":
        return _iso_us(_strip(raw))
    plain = pc.fill_null(pc.match_substring_regex(raw, _PLAIN_NUMBER), False).to_numpy(zero_copy_only=False)
    if not plain.any():
        return np.zeros(len(raw), np.int64), plain
    numbers = pc.cast(pc.if_else(plain, raw, "0"), pa.float64()).to_numpy()
    us, ok = _number_us(numbers, time_format)
    return us, ok & plain


class _Cells:
    """The role columns of some rows as Arrow arrays: ``key``, ``item``, ``time`` (raw) and maybe ``event_type``."""

    def __init__(self, key, item, time, event_type=None):
        self.key, self.item, self.time, self.event_type = key, item, time, event_type


def _settle(cells: _Cells, time_format: str, event_types: frozenset, time_us=None):
    """Vectorised outcome of rows: (status array, key, item, time_us); status 0 = event, 1 = filtered by event type,
    2 = not settled (the per-row parser decides)."""
    n = len(cells.key)
    status = np.zeros(n, np.int8)
    if cells.event_type is not None and event_types:
        types = _strip(cells.event_type)
        kept = pc.is_in(types, value_set=pa.array(sorted(event_types), types.type))
        filtered = pc.fill_null(kept, False).to_numpy(zero_copy_only=False) == 0
        status[filtered] = 1
    key, item = _strip(cells.key), _strip(cells.item)
    empty = ((pc.fill_null(pc.utf8_length(key), 0).to_numpy(zero_copy_only=False) == 0)
             | (pc.fill_null(pc.utf8_length(item), 0).to_numpy(zero_copy_only=False) == 0))
    if time_us is None:
        time_us, settled = _text_time_us(cells.time, time_format)
    else:
        time_us, settled = time_us
    status[(status == 0) & (empty | ~settled)] = 2
    return status, key, item, time_us


# ------------------------------------------------------------------------------------------------------- text
class TextBlockParser:
    """Parses blocks of whole text lines (bytes, ``\\n``-separated) into an event batch, rejections and counts.

    The result for every line equals ``_ParseTextLines`` (the unbatched reader) on it: trailing ``\\r`` removed,
    blank lines skipped, then ``RowParser.parse``. ``parse(block)`` returns ``(batch, rejected, counts)`` with
    ``rejected`` a list of ``(reason, line text)`` and ``counts`` a dict of counter increments.

    Example::

        >>> parser = TextBlockParser(["SessionId", "ItemId", "Time"], {"session": "SessionId", "item": "ItemId",
        ...                          "time": "Time"}, ",", "unix_s")
        >>> batch, rejected, counts = parser.parse(b"7,1001,1.5\\r\\n7,,2\\n\\n8,1002,3\\n")
        >>> batch.to_pydict(), rejected, counts
        ({'key': ['7', '8'], 'item_id': ['1001', '1002'], 'time_us': [1500000, 3000000]}, [('empty_id', '7,,2')], \
{'rows_rejected:empty_id': 1, 'rows_ok': 2})
    """

    def __init__(self, header: Sequence[str], roles: dict, delimiter: str, time_format: str,
                 event_types: Sequence[str] = ()):
        self._parser = RowParser(header, roles, delimiter, time_format, event_types)
        self._delimiter = delimiter
        self._time_format = time_format
        self._event_types = frozenset(event_types)

    def parse(self, block: bytes):
        data = np.frombuffer(block, np.uint8)
        newlines = np.flatnonzero(data == 10)
        starts = np.concatenate([[0], newlines + 1])
        ends = np.concatenate([newlines, [len(block)]])
        line_ends = ends  # before removing CRs (a line that is not UTF-8 keeps them, as in the unbatched reader)
        while True:  # strip trailing CRs (a line "a\r\r\n" is "a", as rstrip("\r"))
            cr = (ends > starts) & (data[np.maximum(ends - 1, 0)] == 13) if len(data) else np.zeros(len(ends), bool)
            if not cr.any():
                break
            ends = ends - cr
        nonblank = ends > starts
        starts, ends, line_ends = starts[nonblank], ends[nonblank], line_ends[nonblank]
        n = len(starts)
        counts: dict = {}
        rejected: list = []
        if n == 0:
            return empty_batch(), rejected, counts
        utf8 = self._utf8_lines(block, data, starts, ends)
        status = np.full(n, 2, np.int8)  # 0 event, 1 filtered, 2 per-row parser, 3 rejected column_count, 4 not utf8
        status[~utf8] = 4
        cells = self._plain_block_cells(block, data, n) if utf8.all() else None
        if cells is not None:  # every line is plain: all of them are settled below
            idx, simple = np.arange(n), np.ones(n, bool)
        else:
            idx, simple, wrong_count, cells = self._split_cells(data, starts, ends, utf8)
            status[idx[wrong_count]] = 3
        key = item = time_us = None
        if simple.any():
            sub_status, key, item, time_us = _settle(cells, self._time_format, self._event_types)
            status[idx[simple]] = sub_status
        slow = np.flatnonzero(status >= 2)
        extra = []  # (line, key, item, time_us) from the per-row parser
        for i in slow:
            raw = block[starts[i]:ends[i]]
            if status[i] == 4:  # Beam's line splitting removes one CR before a newline; rstrip("\r") is not reached
                raw = block[starts[i]:line_ends[i]]
                if line_ends[i] < len(block) and raw.endswith(b"\r"):
                    raw = raw[:-1]
                rejected.append((RejectReason.NOT_UTF8, raw.decode("utf-8", errors="replace")))
                continue
            line = raw.decode("utf-8")
            if status[i] == 3:
                rejected.append((RejectReason.COLUMN_COUNT, line))
                continue
            outcome, payload = self._parser.parse(line)
            if outcome == "ok":
                extra.append((i, *payload))
            elif outcome == "rejected":
                rejected.append((payload, line))
            else:
                status[i] = 1
        for reason, _ in rejected:
            counts[f"rows_rejected:{reason}"] = counts.get(f"rows_rejected:{reason}", 0) + 1
        n_filtered = int((status == 1).sum())
        if n_filtered:
            counts["rows_filtered_event_type"] = n_filtered
        batch = self._batch(status, idx[simple] if key is not None else np.zeros(0, np.int64), key, item, time_us,
                            extra)
        if batch.num_rows:
            counts["rows_ok"] = batch.num_rows
        return batch, rejected, counts

    def _split_cells(self, data: np.ndarray, starts: np.ndarray, ends: np.ndarray, utf8: np.ndarray):
        """(line number of each valid line, which of them are simple, which have a wrong field count, the simple
        lines' cells): the valid lines split at the delimiter; lines with a quote are left to the per-row parser."""
        lines = self._as_strings(data, starts[utf8], ends[utf8])
        fields = pc.split_pattern(lines, self._delimiter)
        n_fields = pc.list_value_length(fields).to_numpy()
        quoted = pc.match_substring(lines, '"').to_numpy(zero_copy_only=False)
        wrong_count = ~quoted & (n_fields != self._parser.n_columns)
        simple = ~quoted & ~wrong_count
        idx = np.flatnonzero(utf8)  # line number (in block) of each valid line
        if not simple.any():
            return idx, simple, wrong_count, None
        flat = pc.filter(fields, pa.array(simple)).flatten()
        ncol = self._parser.n_columns

        def column(pos):
            return flat.take(pa.array(np.arange(pos, len(flat), ncol)))

        p = self._parser
        cells = _Cells(column(p.key_pos), column(p.item_pos), column(p.time_pos),
                       column(p.type_pos) if p.type_pos is not None else None)
        return idx, simple, wrong_count, cells

    def _plain_block_cells(self, block: bytes, data: np.ndarray, n_lines: int) -> _Cells | None:
        """The role cells of a *plain* block, read by Arrow's C++ CSV reader: None unless every one of its
        ``n_lines`` non-blank lines has exactly the header's field count and the block has no quote, no CR and a
        one-byte delimiter (valid UTF-8 is checked by the caller). On such a block splitting each line at the
        delimiter is all there is to it, so the cells equal :meth:`_split_cells`' (a test compares them); any other
        block takes that path, line by line semantics included."""
        if len(self._delimiter.encode("utf-8")) != 1 or (data == 34).any() or (data == 13).any():
            return None
        p = self._parser
        names = [f"c{i}" for i in range(p.n_columns)]
        wanted = [pos for pos in (p.key_pos, p.item_pos, p.time_pos, p.type_pos) if pos is not None]
        try:
            table = pa_csv.read_csv(
                pa.py_buffer(block),
                read_options=pa_csv.ReadOptions(column_names=names, use_threads=False,
                                                block_size=max(len(block), 1 << 20)),
                parse_options=pa_csv.ParseOptions(delimiter=self._delimiter, quote_char=False,
                                                  ignore_empty_lines=True),
                convert_options=pa_csv.ConvertOptions(include_columns=[names[i] for i in wanted],
                                                      column_types={names[i]: pa.string() for i in wanted},
                                                      strings_can_be_null=False, quoted_strings_can_be_null=False))
        except pa.ArrowInvalid:  # a line with another field count: the line-by-line path names it
            return None
        if table.num_rows != n_lines:
            return None

        def column(pos):
            return table.column(names[pos]).combine_chunks()

        return _Cells(column(p.key_pos), column(p.item_pos), column(p.time_pos),
                      column(p.type_pos) if p.type_pos is not None else None)

    @staticmethod
    def _utf8_lines(block: bytes, data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Which lines are valid UTF-8 (one C decode of the block when it is all valid, the common case)."""
        ok = np.ones(len(starts), bool)
        if not (data >= 0x80).any():
            return ok
        try:
            block.decode("utf-8")
            return ok
        except UnicodeDecodeError:
            pass
        high = np.flatnonzero(data >= 0x80)
        for i in np.unique(np.searchsorted(ends, high, side="right")):
            if i < len(starts):
                try:
                    block[starts[i]:ends[i]].decode("utf-8")
                except UnicodeDecodeError:
                    ok[i] = False
        return ok

    @staticmethod
    def _as_strings(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
        """The lines ``data[starts[i]:ends[i]]`` (valid UTF-8) as one Arrow string array."""
        mark = np.zeros(len(data) + 1, np.int8)
        mark[starts] += 1
        mark[ends] -= 1
        keep = np.cumsum(mark[:-1], dtype=np.int8).view(bool)
        values = data[keep]
        offsets = np.zeros(len(starts) + 1, np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        return pa.Array.from_buffers(pa.large_string(), len(starts),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(values.tobytes())])

    @staticmethod
    def _batch(status, fast_rows, key, item, time_us, extra) -> pa.RecordBatch:
        """The events in line order: vectorised rows with status 0, plus the per-row parser's."""
        parts_key, parts_item, parts_time, order = [], [], [], []
        if key is not None:
            mine = status[fast_rows] == 0
            keep = pa.array(mine)
            parts_key.append(pc.cast(pc.filter(key, keep), pa.string()))
            parts_item.append(pc.cast(pc.filter(item, keep), pa.string()))
            parts_time.append(pa.array(time_us[mine], pa.int64()))
            order.append(fast_rows[mine])
        if extra:
            rows, keys, items, times = zip(*extra, strict=True)
            parts_key.append(pa.array(keys, pa.string()))
            parts_item.append(pa.array(items, pa.string()))
            parts_time.append(pa.array(times, pa.int64()))
            order.append(np.array(rows, np.int64))
        if not parts_key:
            return empty_batch()
        columns = [pa.concat_arrays(p) for p in (parts_key, parts_item, parts_time)]
        if extra:
            perm = pa.array(np.argsort(np.concatenate(order), kind="stable"))
            columns = [c.take(perm) for c in columns]
        return pa.RecordBatch.from_arrays(columns, schema=EVENT_SCHEMA)


def _lines_of_range(path: str, start: int, end: int | None, block_bytes: int) -> Iterator[bytes]:
    """Blocks of the whole lines of ``path`` whose first byte lies in ``[start, end)`` (``end=None``: to the end
    of the file); the first line of the file (the header) is skipped. Compressed files are read from the start."""
    compressed = CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED
    with FileSystems.open(path) as handle:
        carry = b""
        if start > 0 and not compressed:
            handle.seek(start - 1)
            position = start - 1
            skip_first = True  # the line holding byte start-1 (up to its newline) belongs to the range before
        else:
            position = 0
            skip_first = True  # the header line
        while True:
            data = handle.read(block_bytes)
            eof = not data
            buffer = carry + data
            if skip_first:
                cut = buffer.find(b"\n")
                if cut < 0:
                    if eof:
                        return
                    carry = buffer
                    continue
                buffer = buffer[cut + 1:]
                position += cut + 1
                skip_first = False
                if end is not None and position >= end:
                    return  # no line starts in the range
            if eof:
                block, carry = buffer, b""
            else:
                cut = buffer.rfind(b"\n")
                if cut < 0:
                    carry = buffer
                    continue
                block, carry = buffer[:cut + 1], buffer[cut + 1:]
            if end is not None and position >= end:
                return  # the next line starts in the next range
            if end is not None and position + len(block) > end:
                # the last line of the range is the one whose newline is at or after byte end-1
                cut = block.find(b"\n", max(end - 1 - position, 0))
                block = block if cut < 0 else block[:cut + 1]
                if block:
                    yield block
                return
            if block:
                yield block
            position += len(block)
            if eof:
                return


# ---------------------------------------------------------------------------------------------------- Parquet
def _jsonable(value):
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def _id_cells(column: pa.Array) -> pa.Array | None:
    """ID cells as text (nulls stay null: the per-row parser rejects them), or None for types left to it."""
    if pa.types.is_integer(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    return None


def _parquet_time_us(column: pa.Array, time_format: str):
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return _text_time_us(pc.fill_null(column, ""), time_format)
    if time_format == "iso" or not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        return None
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)  # as float(value): correctly rounded
    us, ok = _number_us(np.where(column.is_null().to_numpy(zero_copy_only=False), np.nan, values), time_format)
    return us, ok


def parse_parquet_batch(batch: pa.RecordBatch, roles: dict, time_format: str, event_types: Sequence[str],
                        first_row: int):
    """One Parquet record batch -> (events batch, rejected ``(reason, JSON of the row)``, counts), with the
    semantics of ``RowParser.parse_fields`` on each row (``first_row``: the 1-based file row of the batch's first
    row, named in rejected rows)."""
    names = list(batch.schema.names)
    parser = RowParser(names, roles, ",", time_format, event_types)
    key_role = "user" if "user" in roles else "session"
    column = {role: batch.column(names.index(name)) for role, name in roles.items()}
    key, item = _id_cells(column[key_role]), _id_cells(column["item"])
    etype = _id_cells(column["event_type"]) if "event_type" in column else None
    times = _parquet_time_us(column["time"], time_format)
    n = batch.num_rows
    if key is None or item is None or times is None or ("event_type" in column and etype is None):
        status, skey, sitem, time_us = np.full(n, 2, np.int8), None, None, None
    else:
        cells = _Cells(key, item, column["time"], etype)
        status, skey, sitem, time_us = _settle(cells, time_format, frozenset(event_types), times)
    rejected, extra, counts = [], [], {}
    slow = np.flatnonzero(status == 2)
    if len(slow):
        rows = batch.take(pa.array(slow)).to_pylist()
        for i, record in zip(slow, rows, strict=True):
            fields = [record[name] for name in names]
            outcome, payload = parser.parse_fields(fields)
            if outcome == "ok":
                extra.append((int(i), *payload))
            elif outcome == "rejected":
                line = json.dumps({"row": first_row + int(i), **{k: _jsonable(v) for k, v in zip(names, fields,
                                                                                                  strict=True)}})
                rejected.append((payload, line))
                counts[f"rows_rejected:{payload}"] = counts.get(f"rows_rejected:{payload}", 0) + 1
            else:
                status[i] = 1
    n_filtered = int((status == 1).sum())
    if n_filtered:
        counts["rows_filtered_event_type"] = n_filtered
    fast_rows = np.arange(n) if skey is not None else np.zeros(0, np.int64)
    out = TextBlockParser._batch(status, fast_rows, skey, sitem, time_us, extra)  # pylint: disable=protected-access
    if out.num_rows:
        counts["rows_ok"] = out.num_rows
    return out, rejected, counts


# ------------------------------------------------------------------------------------------------------- Beam
class _CountingDoFn(beam.DoFn):
    """Adds to named counters and emits them once per bundle (output ``counters``)."""

    def start_bundle(self):
        self._counts = {}

    def _add(self, counts: dict) -> None:
        for name, n in counts.items():
            self._counts[name] = self._counts.get(name, 0) + n

    def finish_bundle(self):
        for name, n in sorted(self._counts.items()):
            yield beam.pvalue.TaggedOutput(_COUNTERS, WindowedValue((name, n), MIN_TIMESTAMP, [GlobalWindow()]))
        self._counts = {}


class _SplitWork(beam.DoFn):
    """A file -> units of work: ``("text", path, start, end)`` byte ranges (one range for compressed text) or
    ``("parquet", path, row group, first row)``."""

    def __init__(self, fmt: str, range_bytes: int):
        self._format, self._range_bytes = fmt, range_bytes

    def process(self, path):
        if self._format == "parquet":
            import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                meta = pq.ParquetFile(handle).metadata
            first = 1
            for group in range(meta.num_row_groups):
                yield "parquet", path, group, first
                first += meta.row_group(group).num_rows
            return
        if CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
            yield "text", path, 0, None
            return
        size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
        step = self._range_bytes
        for start in range(0, max(size, 1), step):
            yield "text", path, start, (start + step if start + step < size else None)


class _ParseWork(_CountingDoFn):
    """A unit of work of :class:`_SplitWork` -> event record batches; rejected rows to ``rejected``."""

    def __init__(self, header, roles, delimiter, time_format, event_types, block_bytes):
        self._args = (list(header), dict(roles), delimiter, time_format, tuple(event_types))
        self._block_bytes = block_bytes
        self._text = None

    def setup(self):
        self._text = TextBlockParser(*self._args)

    def process(self, work):
        kind, path = work[0], work[1]
        rows = 0
        if kind == "parquet":
            parts = self._parquet(path, work[2], work[3])
        else:
            parts = (self._text.parse(block) for block in _lines_of_range(path, work[2], work[3], self._block_bytes))
        for batch, rejected, counts in parts:
            self._add(counts)
            rows += sum(counts.values())
            for reason, line in rejected:
                yield beam.pvalue.TaggedOutput(_REJECTED, (path, reason, line))
            if batch.num_rows:
                yield batch
        logging.info("preprocess: parsed %d rows of %s (%s)", rows, path, " ".join(map(str, work[2:])))

    def _parquet(self, path, group, first_row):
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
        header, roles, _, time_format, event_types = self._args
        del header
        columns = sorted(set(roles.values()))
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=65_536, row_groups=[group], columns=columns):
                yield parse_parquet_batch(batch, roles, time_format, event_types, first_row)
                first_row += batch.num_rows


def _one_unit_of_work(spec: InputSpec, range_bytes: int) -> bool:
    """Whether :class:`_SplitWork` makes one unit of work of the input (one compressed text file, or one text file
    of at most ``range_bytes``): then there is nothing to spread, and the Reshuffle's stages are left out."""
    if len(spec.files) != 1 or spec.format == "parquet":
        return False
    path = spec.files[0]
    if CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
        return True
    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes <= range_bytes
    except Exception:  # pylint: disable=broad-except  (unknown size: keep the Reshuffle)
        return False


class ReadClickLogBatches(beam.PTransform):
    """Reads a CSV/TSV (header line, any delimiter, compressed by extension) or Parquet click log into Arrow
    record batches of events (``key``, ``item_id``, ``time_us``; :data:`EVENT_SCHEMA`).

    The rules are those of :class:`~gru4rec_tf.preprocessing.beam_transforms.ReadClickLog` (wrong column count,
    empty ID, time that does not parse, non-UTF-8 bytes: rejected as ``(source file, reason, source line)``;
    event types outside the filter: counted and dropped), as are the ``rejected`` and ``counters`` outputs; the
    rows of a file come in batches of about ``block_bytes`` of text (or 64k Parquet rows). Units of work: byte
    ranges of ``range_bytes`` of uncompressed text, whole compressed files, Parquet row groups.

    Returns a dict: ``batches``, ``rejected`` and ``counters``.

    Example::

        read = pipeline | ReadClickLogBatches(PreprocessOptions(input="clicks.tsv", output="out"))
        n_events = read["batches"] | beam.Map(lambda b: b.num_rows) | beam.CombineGlobally(sum)
    """

    def __init__(self, options: PreprocessOptions, spec: InputSpec | None = None, range_bytes: int = _RANGE_BYTES,
                 block_bytes: int = _BLOCK_BYTES):
        super().__init__()
        if range_bytes < 1 or block_bytes < 1:
            raise ValueError(f"range_bytes and block_bytes must be >= 1, got {range_bytes}, {block_bytes}")
        self._options, self._spec = options, spec
        self._range_bytes, self._block_bytes = range_bytes, block_bytes

    def expand(self, pbegin):
        opts = self._options
        spec = self._spec or inspect_input(opts)
        parse = _ParseWork(spec.header, opts.columns, spec.delimiter, opts.time_format, opts.event_type_filter,
                           self._block_bytes)
        work = (pbegin
                | "InputFiles" >> beam.Create(spec.files)
                | "SplitWork" >> beam.ParDo(_SplitWork(spec.format, self._range_bytes)))
        if not _one_unit_of_work(spec, self._range_bytes):  # spread the units over the workers (a fusion break)
            work = work | "Spread" >> beam.Reshuffle()
        parsed = work | "Parse" >> beam.ParDo(parse).with_outputs(_REJECTED, _COUNTERS, main="batches")
        return {"batches": parsed["batches"], "rejected": parsed[_REJECTED], "counters": parsed[_COUNTERS]}

