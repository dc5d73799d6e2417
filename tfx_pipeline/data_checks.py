"""The session-level data checks of a span, on profiles drawn from its TFDV statistics. No TFX or TFDV import.

A :class:`DataProfile` is what the checks need of a span's events: counts, distinct sessions and items, the time
range and the share of rejected rows. The span is the new data of the run: the events after the end of the last
blessed model's data (without a blessed model: the newest ``test_days``, the period that becomes the test split).
With a window of several days (``--window_days``), a broken day is then the whole of the span rather than a
fraction of the window. The
:func:`check_span` rules compare it with the span of the last blessed model's data (which the model carries,
``data_profile/``) and return one :class:`Anomaly` per failed check, naming the value and the expected range.
TFDV's own schema and drift checks are in :mod:`tfx_pipeline.components.data_validator`.

Example::

    >>> day, dec6 = 86_400_000_000, 1_796_515_200_000_000   # 2026-12-06 00:00 UTC in microseconds
    >>> base = DataProfile(events=10_000, sessions=2_500, items=900, time_min_us=dec6 - day, time_max_us=dec6)
    >>> today = DataProfile(events=400, sessions=100, items=300, time_min_us=dec6, time_max_us=dec6 + day)
    >>> [a.check for a in check_span(today, base, ValidationOptions(), now_us=dec6 + day)]
    ['events_per_day', 'sessions_per_day']
    >>> check_span(DataProfile(0, 0, 0, 0, 0), base, ValidationOptions(), now_us=dec6)[0].check   # a repeated day
    'time_range'
"""
from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping

from tfx_pipeline.validation_options import ValidationOptions

DAY_US = 86_400_000_000
EARLIEST_US = int(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC).timestamp() * 1_000_000)


@dataclasses.dataclass(frozen=True)
class DataProfile:
    """What the checks need of a span (see the module docstring). ``sessions`` is None for user-keyed logs."""

    events: int
    sessions: int | None
    items: int
    time_min_us: int
    time_max_us: int
    rows_rejected: int = 0
    duplicate_events: int = 0  # events whose (item, time) another event of the span repeats (0 in older profiles)

    @property
    def days(self) -> float:
        """The span's length in days, at least one (a day of events is compared per day)."""
        return max((self.time_max_us - self.time_min_us) / DAY_US, 1.0)

    @property
    def rejected_share(self) -> float:
        return self.rows_rejected / max(self.events + self.rows_rejected, 1)

    @property
    def duplicate_share(self) -> float:
        return self.duplicate_events / max(self.events, 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> DataProfile:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One failed check: its name, the value found and the range expected (as text)."""

    check: str
    value: str
    expected: str

    def format(self) -> str:
        return f"{self.check}: {self.value} (expected {self.expected})"


def _when(time_us: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(time_us / 1e6, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError):
        return f"{time_us} us (beyond year 9999: times in milliseconds or microseconds read as seconds?)"


def check_time_range(profile: DataProfile, now_us: int) -> list[Anomaly]:
    """Event times must lie between 2000-01-01 and one day after ``now_us`` (catches a wrong time unit)."""
    if profile.events == 0:
        return [Anomaly("events", "0 events", ">= 1 event")]
    if profile.time_min_us < EARLIEST_US or profile.time_max_us > now_us + DAY_US:
        return [Anomaly("time_range", f"{_when(profile.time_min_us)} .. {_when(profile.time_max_us)}",
                        f"between 2000-01-01 and {_when(now_us + DAY_US)}")]
    return []


def _ratio(name: str, current: float, baseline: float, low: float, high: float) -> list[Anomaly]:
    ratio = current / baseline if baseline > 0 else float("inf")
    if low <= ratio <= high:
        return []
    return [Anomaly(name, f"{current:,.1f} ({ratio:.2f}x the last blessed model's data, {baseline:,.1f})",
                    f"{low:g}x .. {high:g}x")]


def check_volume(current: DataProfile, baseline: DataProfile, options: ValidationOptions) -> list[Anomaly]:
    """Events and sessions per day, and events per session, against the baseline's."""
    low, high = options.min_volume_ratio, options.max_volume_ratio
    found = _ratio("events_per_day", current.events / current.days, baseline.events / baseline.days, low, high)
    if current.sessions and baseline.sessions:
        found += _ratio("sessions_per_day", current.sessions / current.days, baseline.sessions / baseline.days,
                        low, high)
        change = options.max_events_per_session_change
        if not found:  # a collapsed day already explains a changed length
            found += _ratio("events_per_session", current.events / current.sessions,
                            baseline.events / baseline.sessions, 1 / change, change)
    return found


def check_duplicates(current: DataProfile, baseline: DataProfile, options: ValidationOptions) -> list[Anomaly]:
    """Events delivered twice: the share of the span's events whose item and time (to the microsecond) another
    event of the span repeats, an exact copy or the same click under another session key, may rise by at most
    ``max_duplicate_share_increase`` over the baseline's (a log stamped in whole seconds has some by chance, on
    both days). The volume bounds let a doubled day through: 2x is within a busy day's swing."""
    increase = current.duplicate_share - baseline.duplicate_share
    if increase > options.max_duplicate_share_increase:
        return [Anomaly("duplicate_events", f"{current.duplicate_share:.1%} of the span's events repeat another "
                        f"event's item and time (the last blessed model's data: {baseline.duplicate_share:.1%})",
                        f"at most {options.max_duplicate_share_increase:.0%} more")]
    return []


def check_gap(current: DataProfile, baseline_end_us: int, options: ValidationOptions) -> list[Anomaly]:
    """The span must not start long after the baseline's data ended (missing days)."""
    gap_days = (current.time_min_us - baseline_end_us) / DAY_US
    if gap_days > options.max_gap_days:
        return [Anomaly("time_gap", f"{gap_days:.1f} days without data before this span",
                        f"<= {options.max_gap_days:g} days")]
    return []


def check_span(current: DataProfile, baseline: DataProfile | None, options: ValidationOptions, *,
               now_us: int, new_item_share: float | None = None, baseline_end_us: int | None = None) -> list[Anomaly]:
    """Every session-level check of the span (the relative ones only when there is a baseline).

    With a baseline, the span is the events after ``baseline_end_us`` (the end of the last blessed model's data;
    default: ``baseline.time_max_us``): none at all means the run brought only old data (a re-delivered file).
    ``new_item_share``: the share of the span's events whose item the last blessed model does not know.
    """
    if baseline is None:
        return check_time_range(current, now_us)
    end = baseline.time_max_us if baseline_end_us is None else baseline_end_us
    if current.events == 0:
        return [Anomaly("time_range", f"no event after the last blessed model's data (ends {_when(end)}): a "
                        "repeated or old span", f"events after {_when(end)}")]
    found = check_time_range(current, now_us)
    if found:
        return found
    found += check_gap(current, end, options)
    found += check_volume(current, baseline, options)
    if new_item_share is not None and new_item_share > options.max_new_item_share:
        found.append(Anomaly("new_item_share", f"{new_item_share:.1%} of the span's events",
                             f"<= {options.max_new_item_share:.0%}"))
    found += check_duplicates(current, baseline, options)
    increase = current.rejected_share - baseline.rejected_share
    if increase > options.max_rejected_share_increase:
        found.append(Anomaly("rejected_rows", f"{current.rejected_share:.2%} of the rows (the last blessed model's "
                             f"data: {baseline.rejected_share:.2%})",
                             f"at most {options.max_rejected_share_increase:.0%} more"))
    return found
