"""Parsing click-log rows into events: column lookup, timestamps, malformed-row detection.

Pure Python (no Beam), used by the Beam transforms. An *event* is ``(key, item_id, time_us)``: ``key`` is the
session ID (or the user ID when sessions are built from user activity), IDs are the stripped text of the cell and
``time_us`` is integer microseconds since the Unix epoch.

Example::

    >>> parser = RowParser(["SessionId", "ItemId", "Time"], {"session": "SessionId", "item": "ItemId",
    ...                    "time": "Time"}, delimiter=",", time_format="unix_s")
    >>> parser.parse("7,1001,1462752526.309")
    ('ok', ('7', '1001', 1462752526309000))
    >>> parser.parse("7,,1")
    ('rejected', 'empty_id')
"""
from __future__ import annotations

import csv
import datetime
import math
from collections.abc import Sequence

__all__ = ["RowParser", "parse_time_us", "RejectReason", "split_line"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MAX_ABS_US = 2**62  # keeps every time and time difference inside int64


class RejectReason:
    """Why a row was rejected (the ``reason`` field of the rejected-rows output)."""

    COLUMN_COUNT = "column_count"
    BAD_TIME = "bad_time"
    EMPTY_ID = "empty_id"
    NOT_UTF8 = "not_utf8"
    BAD_QUOTING = "bad_quoting"  # a quoted line with a carriage return outside its quotes (the CSV reader fails)


def parse_time_us(value, time_format: str) -> int:
    """Parses one timestamp to integer microseconds; raises ValueError when it cannot.

    ``unix_s``/``unix_ms`` accept numbers or numeric text (rounded half-to-even to whole microseconds); ``iso``
    accepts ISO-8601 text (``datetime.fromisoformat``; naive times are UTC). A ``datetime`` (a typed Parquet
    timestamp) is accepted with any format.

    Example::

        >>> parse_time_us("1.5", "unix_s"), parse_time_us("1500", "unix_ms")
        (1500000, 1500000)
        >>> parse_time_us("1970-01-01T00:00:01.5Z", "iso")
        1500000
    """
    if isinstance(value, datetime.datetime) or time_format == "iso":
        if isinstance(value, datetime.datetime):  # typed timestamps (Parquet) whatever the format option
            stamp = value
        elif isinstance(value, str):
            stamp = datetime.datetime.fromisoformat(value.strip())
        else:
            raise ValueError(f"not an ISO-8601 time: {value!r}")
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=datetime.UTC)
        delta = stamp - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    scaled = number * (1e6 if time_format == "unix_s" else 1e3)
    if abs(scaled) >= _MAX_ABS_US:
        raise ValueError(f"time out of range: {value!r}")
    return int(round(scaled))


def split_line(line: str, delimiter: str) -> list:
    """Splits one delimited line; quoted fields (``"a,b"``) are honoured, embedded newlines are not supported.

    Raises ValueError when the CSV reader cannot split a quoted line (a carriage return outside the quotes, e.g.
    in a file whose lines end in a lone CR).
    """
    if '"' not in line:
        return line.split(delimiter)
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar='"'))
    except csv.Error as err:
        raise ValueError(f"cannot split the line into fields ({err})") from None


class RowParser:
    """Turns a text line (or a Parquet record) into an event, a rejection reason or ``filtered``.

    ``roles`` maps ``session``/``user``, ``item``, ``time`` and optionally ``event_type`` to column names, all of
    which must be in ``header`` (checked by the caller, which names the file). ``parse`` returns
    ``("ok", event)``, ``("rejected", reason)`` or ``("filtered", None)`` (event type not in the filter).
    """

    def __init__(self, header: Sequence[str], roles: dict[str, str], delimiter: str, time_format: str,
                 event_types: Sequence[str] = ()):
        position = {name: i for i, name in enumerate(header)}
        key_role = "user" if "user" in roles else "session"
        self.n_columns = len(header)
        self.key_pos = position[roles[key_role]]
        self.item_pos = position[roles["item"]]
        self.time_pos = position[roles["time"]]
        self.type_pos: int | None = position[roles["event_type"]] if "event_type" in roles else None
        self.event_types = frozenset(event_types)
        self.delimiter = delimiter
        self.time_format = time_format

    def parse(self, line: str) -> tuple[str, object]:
        try:
            fields = split_line(line, self.delimiter)
        except ValueError:
            return "rejected", RejectReason.BAD_QUOTING
        if len(fields) != self.n_columns:
            return "rejected", RejectReason.COLUMN_COUNT
        return self.parse_fields(fields)

    def parse_fields(self, fields: Sequence) -> tuple[str, object]:
        """Like :meth:`parse` for already split cells (text, numbers, ``None``, datetimes)."""
        if self.type_pos is not None and self.event_types:
            if _id_text(fields[self.type_pos]) not in self.event_types:
                return "filtered", None
        key, item = _id_text(fields[self.key_pos]), _id_text(fields[self.item_pos])
        if not key or not item:
            return "rejected", RejectReason.EMPTY_ID
        raw_time = fields[self.time_pos]
        if raw_time is None or (isinstance(raw_time, str) and not raw_time.strip()):
            return "rejected", RejectReason.BAD_TIME
        try:
            time_us = parse_time_us(raw_time, self.time_format)
        except (ValueError, TypeError, OverflowError):
            return "rejected", RejectReason.BAD_TIME
        return "ok", (key, item, time_us)


def _id_text(value) -> str:
    """An ID cell as stripped text; whole floats (from Parquet) lose their ``.0``; None gives ''."""
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip()
