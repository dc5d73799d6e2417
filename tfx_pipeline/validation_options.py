"""Options of the pipeline's data validation (``gru4rec pipeline run --validation fail|warn|off``). No TFX import.

Each span's events (the newest ``test_days`` of the ingested events: the period that becomes the test split) are
checked before anything trains on them (:mod:`tfx_pipeline.components.data_validator`):
TFDV's schema and drift checks, and session-level checks against the span that trained the last blessed model.
``mode``: ``fail`` (default) stops an anomalous span before SessionTensors (nothing trains, nothing is pushed, the
serving root keeps the last blessed model); ``warn`` records the anomalies and goes on; ``off`` runs no validation
component. ``schema_file`` pins a reviewed schema (TFX's ``ImportSchemaGen``) instead of the inferred one.

The thresholds' defaults pass every clean day of ``rsc15_100k`` and of the built-in generator's drifting days
(``bench/guarded_loop.py``), and stop the broken days it applies.

Example::

    >>> ValidationOptions().mode
    'fail'
    >>> ValidationOptions(mode="off", schema_file="schema.pbtxt")
    Traceback (most recent call last):
    ValueError: --schema needs validation (it is ignored with --validation off)
    >>> ValidationOptions(max_item_drift=1.5)
    Traceback (most recent call last):
    ValueError: validation: max_item_drift (--validation_max_item_drift) must be a number in (0, 1], got 1.5
"""
from __future__ import annotations

import dataclasses

from tfx_pipeline.options import _ComponentOptions  # the JSON round trip of a component's execution property

MODES = ("fail", "warn", "off")
# The exit status of `gru4rec pipeline run` when validation stopped the run (1 is a failed component, 2 bad flags).
EXIT_STOPPED_BY_VALIDATION = 3


@dataclasses.dataclass(frozen=True)
class ValidationOptions(_ComponentOptions):
    """What the data validation checks and what it does with an anomaly (see the module docstring).

    Thresholds (relative ones compare with the span that trained the last blessed model, when there is one):

    * ``max_item_drift``: TFDV's Jensen-Shannon divergence of the ``item_id`` distribution (0: same, 1: disjoint);
    * ``min_volume_ratio`` / ``max_volume_ratio``: events per day and sessions per day, over the baseline's;
    * ``max_events_per_session_change``: events per session may change by at most this factor either way;
    * ``max_new_item_share``: share of the span's events whose item the last blessed model does not know;
    * ``max_rejected_share_increase``: the share of rejected rows may rise by at most this much (absolute);
    * ``max_duplicate_share_increase``: the share of events that repeat another event's item and time (a day
      delivered twice) may rise by at most this much (absolute);
    * ``max_gap_days``: the span may start at most this many days after the baseline's data ended;
    * time sanity (always): event times between 2000-01-01 and one day after the run.
    """

    mode: str = "fail"
    schema_file: str | None = None
    max_item_drift: float = 0.6
    min_volume_ratio: float = 0.2
    max_volume_ratio: float = 5.0
    max_events_per_session_change: float = 2.0
    max_new_item_share: float = 0.5
    max_rejected_share_increase: float = 0.02
    max_duplicate_share_increase: float = 0.1
    max_gap_days: float = 7.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"validation must be one of {'|'.join(MODES)}, got {self.mode!r}")
        if self.schema_file is not None and self.mode == "off":
            raise ValueError("--schema needs validation (it is ignored with --validation off)")
        for name, upper in (("max_item_drift", 1.0), ("max_new_item_share", 1.0), ("min_volume_ratio", 1.0),
                            ("max_rejected_share_increase", 1.0), ("max_duplicate_share_increase", 1.0)):
            self._check(name, lambda v, u=upper: 0 < v <= u, f"a number in (0, {upper:g}]")
        self._check("max_volume_ratio", lambda v: v >= 1, "a number >= 1")
        self._check("max_events_per_session_change", lambda v: v >= 1, "a number >= 1")
        self._check("max_gap_days", lambda v: v > 0, "a number > 0")

    def _check(self, name: str, ok, what: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise ValueError(f"validation: {name} (--validation_{name}) must be {what}, got {value!r}")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"



EVENT_FEATURES = ("item_id", "time_us")  # and session_id or user_id: what ClickLogExampleGen writes


def check_schema_file(path: str) -> None:
    """A ``--schema`` file must parse as a TFDV schema (text proto) and describe the ingested events; raises a
    ValueError naming the file."""
    from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
    from tensorflow_metadata.proto.v0 import schema_pb2
    if "://" in path:
        return  # a remote schema is read by ImportSchemaGen on the cluster
    try:
        with open(path, encoding="utf-8") as handle:
            schema = text_format.Parse(handle.read(), schema_pb2.Schema())
    except OSError as err:
        raise ValueError(f"--schema {path}: cannot read it ({err.strerror})") from None
    except text_format.ParseError as err:
        raise ValueError(f"--schema {path}: not a TFDV schema text proto ({err})") from None
    names = {f.name for f in schema.feature}
    missing = [n for n in EVENT_FEATURES if n not in names] + (
        [] if names & {"session_id", "user_id"} else ["session_id or user_id"])
    if missing:
        raise ValueError(f"--schema {path}: does not describe the click events: no feature {', '.join(missing)} "
                         f"(it has {', '.join(sorted(names)) or 'none'}); write one with `gru4rec pipeline schema`")


_THRESHOLD_FLAGS = ("max_item_drift", "min_volume_ratio", "max_volume_ratio", "max_events_per_session_change",
                    "max_new_item_share", "max_rejected_share_increase", "max_duplicate_share_increase",
                    "max_gap_days")


def define_flags(flag_values=None) -> None:
    """``--validation``, ``--schema`` and one ``--validation_<threshold>`` flag per threshold."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    fv = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_enum("validation", "fail", MODES, "Data validation of each span before it trains: fail (stop an "
                      f"anomalous span: nothing trains or is pushed; exit status {EXIT_STOPPED_BY_VALIDATION}), warn "
                      "(report and go on) or off.", flag_values=fv)
    flags.DEFINE_string("schema", None, "A reviewed TFDV schema (text proto) to validate the events against "
                        "(ImportSchemaGen); default: the schema inferred from the data (`gru4rec pipeline schema "
                        "--output FILE` writes it for review).", flag_values=fv)
    defaults = ValidationOptions()
    for name in _THRESHOLD_FLAGS:
        flags.DEFINE_float(f"validation_{name}", getattr(defaults, name), f"Data validation threshold {name} (see "
                           "tfx_pipeline/validation_options.py).", flag_values=fv)


def from_flags() -> ValidationOptions:
    """The :class:`ValidationOptions` of the flags."""
    import os  # pylint: disable=g-import-not-at-top
    from absl import flags  # pylint: disable=g-import-not-at-top
    f = flags.FLAGS
    schema = f.schema if not f.schema or "://" in f.schema else os.path.abspath(f.schema)
    options = ValidationOptions(mode=f.validation, schema_file=schema,
                                **{name: f[f"validation_{name}"].value for name in _THRESHOLD_FLAGS})
    if schema:
        check_schema_file(schema)
    return options
