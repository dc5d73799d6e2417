"""Options of the preprocessing step (reading, sessionising, cleaning and splitting a click log).

Plain Python (no Beam, no TensorFlow), shared by the Beam pipeline and the pandas reference so that both apply
exactly the same rules.
"""
from __future__ import annotations

import dataclasses
import math
import posixpath

from gru4rec_tf.option_fields import option_field as _option
from gru4rec_tf.data.event_columns import DEFAULT_ITEM_KEY, DEFAULT_SESSION_KEY, DEFAULT_TIME_KEY

__all__ = ["PreprocessOptions", "TIME_FORMATS", "SPLIT_ON", "INPUT_FORMATS", "DAY_US", "parse_delimiter"]

TIME_FORMATS = ("unix_s", "unix_ms", "iso")
SPLIT_ON = ("start", "end")
INPUT_FORMATS = ("auto", "csv", "parquet")
DAY_US = 86_400_000_000  # one day in microseconds (all internal times are integer microseconds)
_PARQUET_SUFFIXES = (".parquet", ".pq")
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def parse_delimiter(value: str | None) -> str | None:
    """Accepts a single character, ``\\t``/``tab``, ``comma``, ``semicolon`` or ``pipe``; None means "by extension"."""
    if value is None or value == "":
        return None
    value = _DELIMITER_NAMES.get(value, value)
    if len(value) != 1 or value in "\"\r\n":
        raise ValueError(f"delimiter must be a single character (or 'tab'), got {value!r}")
    return value


def _positive_finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
    """What to read, how to clean it and how to split it (spec §7). Validated on construction.

    Times are handled as integer microseconds internally, so the Beam pipeline and the pandas reference compare
    and split them exactly.

    This class is the one definition of these options: each field's default and description (``metadata["help"]``)
    are also those of the ``gru4rec preprocess`` and ``gru4rec pipeline run`` flags and of the pipeline's
    ``IngestOptions`` and ``SessionOptions`` (:func:`gru4rec_tf.commands.option_flags.define_option_flags`).

    Example::

        >>> opts = PreprocessOptions(input="clicks.csv", output="out", dedupe_consecutive=True,
        ...                          iterate_filters=True, test_days=7, valid_days=14)
        >>> opts.split_names
        ('train', 'test', 'train_tr', 'valid')
        >>> PreprocessOptions(input="x.csv", output="out", time_format="days")
        Traceback (most recent call last):
        ValueError: time_format must be one of ('unix_s', 'unix_ms', 'iso'), got 'days'
        >>> PreprocessOptions.field_help("min_item_support")
        'Drop items with fewer events than this (1 disables the filter).'
    """

    input: str = _option(help="Click log: file, glob or directory of CSV/TSV (with a header line) or Parquet files; "
                              "any Beam filesystem.")
    output: str = _option(help="Output directory for the session tensors; it must not exist or be empty, unless "
                               "--overwrite.")
    input_format: str = _option("auto", choices=INPUT_FORMATS,
                                help="Input format; auto = Parquet for .parquet/.pq, else delimited text.")
    delimiter: str | None = _option(None, help="Text field delimiter (',', ';', 'tab'...); default: tab for "
                                                  ".tsv/.txt, ',' otherwise.")
    session_key: str = _option(DEFAULT_SESSION_KEY, help="Session ID column (not read with --user_key).")
    item_key: str = _option(DEFAULT_ITEM_KEY, help="Item ID column.")
    time_key: str = _option(DEFAULT_TIME_KEY, help="Timestamp column.")
    user_key: str | None = _option(None, help="User ID column: build sessions per user, split at inactivity gaps "
                                                 "longer than --session_gap_s.")
    session_gap_s: float = _option(3600.0, help="Inactivity gap (seconds) that starts a new session (--user_key).")
    event_type_key: str | None = _option(None, help="Event type column (for --event_type_filter).")
    event_type_filter: tuple[str, ...] = _option((), help="Keep only these event types (comma-separated), e.g. "
                                                          "view,detail.")
    time_format: str = _option("unix_s", choices=TIME_FORMATS,
                               help="Timestamp format: unix seconds (may be fractional), unix milliseconds or "
                                    "ISO-8601 (naive = UTC).")
    dedupe_consecutive: bool = _option(False, help="Drop an event whose item equals the previous event's item in "
                                                   "the same session.")
    min_item_support: int = _option(5, help="Drop items with fewer events than this (1 disables the filter).")
    min_session_length: int = _option(2, help="Drop sessions with fewer events than this.")
    iterate_filters: bool = _option(False, help="Repeat the item and session filters until nothing changes (else "
                                                "one pass, as for RSC15).")
    max_filter_rounds: int = _option(20, help="Filter rounds the Beam pipeline unrolls with --iterate_filters; the "
                                              "run fails if they do not converge.")
    test_days: float = _option(1.0, help="Split time = last timestamp - D days: sessions starting (or ending, "
                                         "--split_on) at/after it form the test split.")
    valid_days: float | None = _option(None, help="Also split train into train_tr and valid (the last D days of "
                                                     "train).")
    split_on: str = _option("start", choices=SPLIT_ON,
                            help="A session belongs to the later split if its start (or end) is at/after the split "
                                 "time.")
    max_rejected_ratio: float = _option(0.01, help="Fail when more than this fraction of the data rows is "
                                                   "malformed.")
    rows_per_shard: int = _option(200_000, help="Target number of sessions per output TFRecord file (files are in "
                                                "session-start order).")
    overwrite: bool = _option(False, help="Replace a non-empty output directory (only after the new output is "
                                          "complete).")

    @staticmethod
    def field_help(name: str) -> str:
        """The description of the field ``name`` (its ``metadata["help"]``)."""
        return _FIELDS[name].metadata["help"]

    def __post_init__(self):
        for name in ("input", "output", "item_key", "time_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if self.user_key is None and (not isinstance(self.session_key, str) or not self.session_key.strip()):
            raise ValueError("session_key must be a non-empty string when user_key is not set")
        if self.input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {self.input_format!r}")
        object.__setattr__(self, "delimiter", parse_delimiter(self.delimiter))
        if self.time_format not in TIME_FORMATS:
            raise ValueError(f"time_format must be one of {TIME_FORMATS}, got {self.time_format!r}")
        if self.split_on not in SPLIT_ON:
            raise ValueError(f"split_on must be one of {SPLIT_ON}, got {self.split_on!r}")
        columns = [c for c in self.columns.values()]
        if len(set(columns)) != len(columns):
            raise ValueError(f"the column options must name different columns, got {self.columns}")
        self._check_event_filter()
        _positive_finite("session_gap_s", self.session_gap_s)
        _positive_finite("test_days", self.test_days)
        if self.valid_days is not None:
            _positive_finite("valid_days", self.valid_days)
        for name, low in (("min_item_support", 1), ("min_session_length", 1), ("max_filter_rounds", 1),
                          ("rows_per_shard", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        ratio = self.max_rejected_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise ValueError(f"max_rejected_ratio must be a number in [0, 1], got {ratio!r}")

    def _check_event_filter(self) -> None:
        values = self.event_type_filter
        if isinstance(values, str):
            values = tuple(v.strip() for v in values.split(",") if v.strip())
        values = tuple(values)
        if not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"event_type_filter must hold non-empty strings, got {values!r}")
        object.__setattr__(self, "event_type_filter", values)
        if values and not self.event_type_key:
            raise ValueError("event_type_filter needs event_type_key (the column holding the event type)")

    # ------------------------------------------------------------------------------------------------------------
    # derived values

    @property
    def columns(self) -> dict:
        """Role -> column name of every column the input must have."""
        roles = {"item": self.item_key, "time": self.time_key}
        if self.user_key:
            roles["user"] = self.user_key
        else:
            roles["session"] = self.session_key
        if self.event_type_key:
            roles["event_type"] = self.event_type_key
        return roles

    @property
    def format(self) -> str:
        """``csv`` or ``parquet`` (``auto`` resolved by the input's extension)."""
        if self.input_format != "auto":
            return self.input_format
        return "parquet" if self.input.rstrip("/*").lower().endswith(_PARQUET_SUFFIXES) else "csv"

    @property
    def text_delimiter(self) -> str:
        """The delimiter to use: the option, else tab for ``.tsv``/``.txt`` inputs and ``,`` otherwise."""
        if self.delimiter is not None:
            return self.delimiter
        name = self.input.lower()
        for suffix in (".gz", ".bz2", ".zst", ".deflate"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        return "\t" if posixpath.splitext(name)[1] in (".tsv", ".txt") else ","

    @property
    def split_names(self) -> tuple[str, ...]:
        """Names of the splits written: ``train``, ``test`` and, with ``valid_days``, ``train_tr`` and ``valid``."""
        return ("train", "test", "train_tr", "valid") if self.valid_days is not None else ("train", "test")

    @property
    def session_gap_us(self) -> int:
        return int(round(self.session_gap_s * 1e6))

    @staticmethod
    def days_us(days: float) -> int:
        """Whole microseconds in ``days`` days (rounded)."""
        return int(round(days * DAY_US))

    @property
    def filter_rounds(self) -> int:
        """Item+session filter rounds the pipeline runs: 1 (single pass) or ``max_filter_rounds``."""
        return self.max_filter_rounds if self.iterate_filters else 1

    def to_json(self) -> dict:
        """The options as a JSON-serialisable dict (recorded in stats.json)."""
        out = dataclasses.asdict(self)
        out["event_type_filter"] = list(self.event_type_filter)
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(PreprocessOptions)}
