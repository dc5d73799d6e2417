"""Options of ``gru4rec recommend`` (batch recommendations): model, sessions, output, k and how the log is read.

Plain Python (no Beam, no TensorFlow). The click-log reading options are those of the preprocessing: their
defaults and help texts are taken from :class:`gru4rec_tf.preprocessing.options.PreprocessOptions`, and
:meth:`RecommendOptions.reading_options` builds the ``PreprocessOptions`` that the shared reading transforms use,
so the log is read and sessionised by the same rules as ``gru4rec preprocess``.
"""
from __future__ import annotations

import dataclasses

from gru4rec_tf.preprocessing.options import PreprocessOptions
from gru4rec_tf.option_fields import option_field as _option

__all__ = ["RecommendOptions", "OUTPUT_FORMATS", "READING_FIELDS"]

OUTPUT_FORMATS = ("jsonl", "parquet", "tfrecord")
READING_FIELDS = ("input_format", "delimiter", "session_key", "item_key", "time_key", "user_key", "session_gap_s",
                  "event_type_key", "event_type_filter", "time_format", "dedupe_consecutive")
_PREPROCESS_FIELDS = {f.name: f for f in dataclasses.fields(PreprocessOptions)}


def _reading(name: str):
    """The field ``name`` of PreprocessOptions (default, help, choices): one definition of each reading option."""
    field = _PREPROCESS_FIELDS[name]
    return dataclasses.field(default=field.default, metadata=field.metadata)


@dataclasses.dataclass(frozen=True)
class RecommendOptions:
    """What ``gru4rec recommend`` reads, which model answers, and what it writes. Validated on construction.

    This class is the one definition of the command's options: each field's default and description
    (``metadata["help"]``) are also those of its flag (:func:`gru4rec_tf.commands.option_flags.define_option_flags`).

    Example::

        >>> opts = RecommendOptions(model="models/gru4rec/1", sessions="clicks.csv", output="recs", k=10)
        >>> opts.reading_options().columns
        {'item': 'ItemId', 'time': 'Time', 'session': 'SessionId'}
        >>> RecommendOptions(model="m", sessions="clicks.csv", output="recs", k=0)
        Traceback (most recent call last):
        ValueError: k must be an integer >= 1, got 0
        >>> RecommendOptions(model="m", output="recs", item_to_item=True).sessions is None
        True
    """

    model: str = _option(help="Exported SavedModel (a `gru4rec export` version directory) or a model directory "
                              "(`gru4rec train --save_model`, exported to a temporary SavedModel first).")
    output: str = _option(help="Output directory; it must not exist or be empty, unless --overwrite. Written "
                               "complete or not at all.")
    sessions: str | None = _option(None, help="Click log: file, glob or directory of CSV/TSV or Parquet files, read "
                                              "and sessionised as `gru4rec preprocess` does (not with "
                                              "--item_to_item).")
    k: int = _option(20, help="Number of recommendations per session (at most the export's max_k, as in serving).")
    exclude_seen: bool = _option(False, help="Drop the session's own items from its recommendations.")
    format: str = _option("jsonl", choices=OUTPUT_FORMATS,
                          help="Output format: JSON lines, Parquet or TFRecord of tf.train.Example (same field names "
                               "in all three).")
    item_to_item: bool = _option(False, help="Write the item-to-item table instead: the top-k after a one-event "
                                             "session of every catalogue item (session_id = that item's ID).")
    batch_size: int = _option(64, help="Sessions per model call (RunInference batches; fewer at the end of a bundle).")
    model_version: str | None = _option(None, help="The model_version written in each record; default: the "
                                                   "SavedModel's version directory name, or a model directory's "
                                                   "weights fingerprint.")
    overwrite: bool = _option(False, help="Replace a non-empty output directory (only after the new output is "
                                          "complete).")
    input_format: str = _reading("input_format")
    delimiter: str | None = _reading("delimiter")
    session_key: str = _reading("session_key")
    item_key: str = _reading("item_key")
    time_key: str = _reading("time_key")
    user_key: str | None = _reading("user_key")
    session_gap_s: float = _reading("session_gap_s")
    event_type_key: str | None = _reading("event_type_key")
    event_type_filter: tuple[str, ...] = _reading("event_type_filter")
    time_format: str = _reading("time_format")
    dedupe_consecutive: bool = _reading("dedupe_consecutive")

    @staticmethod
    def field_help(name: str) -> str:
        """The description of the field ``name`` (its ``metadata["help"]``)."""
        return _FIELDS[name].metadata["help"]

    def __post_init__(self):
        for name in ("model", "output"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        for name in ("k", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.format not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {self.format!r}")
        if self.model_version is not None and (not isinstance(self.model_version, str) or not self.model_version):
            raise ValueError(f"model_version must be a non-empty string, got {self.model_version!r}")
        if self.item_to_item:
            if self.sessions is not None:
                raise ValueError("sessions must not be given with item_to_item (the table covers the catalogue, "
                                 "not a log)")
        elif not isinstance(self.sessions, str) or not self.sessions.strip():
            raise ValueError(f"sessions must name the click log unless item_to_item is set, got {self.sessions!r}")
        if self.sessions is not None:
            reading = self.reading_options()  # validates the reading options as preprocessing does
            object.__setattr__(self, "delimiter", reading.delimiter)
            object.__setattr__(self, "event_type_filter", reading.event_type_filter)

    def reading_options(self) -> PreprocessOptions:
        """The preprocessing options that read ``sessions`` (only the reading and session fields matter)."""
        if self.sessions is None:
            raise ValueError("sessions is not set (item_to_item reads no log)")
        return PreprocessOptions(input=self.sessions, output=self.output,
                                 **{name: getattr(self, name) for name in READING_FIELDS})

    def to_json(self) -> dict:
        """The options as a JSON-serialisable dict (recorded in stats.json)."""
        out = dataclasses.asdict(self)
        out["event_type_filter"] = list(self.event_type_filter)
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(RecommendOptions)}
