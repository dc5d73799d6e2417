"""An independent, in-memory pandas implementation of the preprocessing rules, to check the Beam pipeline.

It shares only :class:`PreprocessOptions` with the pipeline: parsing, sessionising, cleaning, splitting and
ordering are written again here with vectorised pandas operations. It is also the "single machine" baseline
of ``bench/preprocess_speed.py``.

Output frames have the columns ``SessionId``, ``ItemId`` (both str, as in the input text), ``Time`` (float
seconds) and ``TimeUs`` (int64 microseconds), sessions ordered by start time (ties by session ID: integer-looking
IDs first, numerically, then text), events by time (ties by item ID text).

Example::

    >>> opts = PreprocessOptions(input="clicks.csv", output="unused", dedupe_consecutive=True, test_days=7)
    >>> raw = read_click_log_pandas(opts)
    >>> splits = preprocess_pandas(raw.events, opts)
    >>> sorted(splits), len(splits["train"])
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re

import numpy as np
import pandas as pd

from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.preprocessing.options import PreprocessOptions

__all__ = ["read_click_log_pandas", "preprocess_pandas", "RawLog"]

_SID, _ITEM, _US = "SessionId", "ItemId", "TimeUs"


@dataclasses.dataclass
class RawLog:
    """The rows of a click log as text (only the needed columns), plus the rows pandas could not split."""

    events: pd.DataFrame
    bad_rows: int


def _input_files(pattern: str) -> list[str]:
    if os.path.isdir(pattern):
        files = [os.path.join(pattern, f) for f in sorted(os.listdir(pattern)) if f[:1] not in "._"]
    else:
        files = sorted(glob.glob(pattern))
    if not files:
        raise DataError(f"{pattern}: file does not exist (or no file matches the pattern)")
    return files


def read_click_log_pandas(options: PreprocessOptions) -> RawLog:
    """Reads the input files with pandas, all needed columns as text (Parquet: as stored).

    Lines with too many fields are skipped and counted; lines with too few come back with NaN cells, which
    :func:`preprocess_pandas` rejects.
    """
    columns = list(options.columns.values())
    frames, bad = [], 0
    for path in _input_files(options.input):
        if options.format == "parquet":
            frames.append(pd.read_parquet(path, columns=columns))
            continue
        df = pd.read_csv(path, sep=options.text_delimiter, dtype=str, keep_default_na=False, na_values=[],
                         on_bad_lines="skip", engine="c", encoding="utf-8")
        with open(path, "rb") as fh:
            data_lines = sum(1 for line in fh if line.strip(b"\r\n")) - 1
        bad += data_lines - len(df)
        frames.append(df[columns])
    return RawLog(pd.concat(frames, ignore_index=True), bad)


def _id_text(col: pd.Series) -> pd.Series:
    """IDs as stripped text; whole floats lose their '.0'; missing values become ''."""
    if col.dtype.kind in "iu":
        return col.astype(str)
    if col.dtype.kind == "f":
        whole = col.notna() & np.isfinite(col) & (col == np.round(col))
        out = col.astype(object).map(repr)
        out[whole] = col[whole].astype(np.int64).astype(str)
        return out.where(col.notna() & np.isfinite(col), "")
    return col.astype(object).where(col.notna(), "").astype(str).str.strip()


def _time_us(col: pd.Series, time_format: str) -> pd.Series:
    """Microseconds (float, NaN when unparsable), rounded half-to-even like the pipeline."""
    if isinstance(col.dtype, pd.DatetimeTZDtype) or col.dtype.kind == "M":
        return _stamps_us(pd.to_datetime(col, utc=True))
    if time_format == "iso":
        return _iso_us(col)
    if col.dtype.kind in "iuf":
        values = col.astype(np.float64)
    else:
        text = col.astype(object).where(col.notna(), "nan")
        try:
            values = text.astype(np.float64)  # Python float() per value: correctly rounded
        except (ValueError, TypeError):
            values = text.map(_float_or_nan).astype(np.float64)
    scaled = np.rint(values * (1e6 if time_format == "unix_s" else 1e3))
    return scaled.where(np.isfinite(scaled) & (scaled.abs() < 2.0**62))


_TZ_SUFFIX = r"[T ]\d{2}.*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def _iso_us(col: pd.Series) -> pd.Series:
    """ISO-8601 text -> microseconds; naive times are UTC. Strings with and without an offset are parsed apart:
    in one call pandas would read the naive ones in the first string's offset."""
    text = col.astype(object).where(col.notna(), "").astype(str).str.strip()
    aware = text.str.contains(_TZ_SUFFIX, regex=True)
    out = pd.Series(np.nan, index=col.index)
    for mask in (aware, ~aware):
        if mask.any():
            out[mask] = _stamps_us(pd.to_datetime(text[mask], utc=True, errors="coerce", format="ISO8601"))
    return out


def _stamps_us(stamps: pd.Series) -> pd.Series:
    """UTC timestamps -> float microseconds (NaN for NaT)."""
    out = pd.Series(np.nan, index=stamps.index)
    valid = stamps.notna()
    out[valid] = (stamps[valid].astype("int64") // 1000).astype(np.float64)
    return out


def _float_or_nan(text) -> float:
    try:
        return float(text)
    except (ValueError, TypeError):
        return float("nan")


def _parse(events: pd.DataFrame, options: PreprocessOptions) -> pd.DataFrame:
    df = events
    complete = df.notna().all(axis=1) if df.dtypes.eq(object).all() else pd.Series(True, index=df.index)
    df = df[complete]
    if options.event_type_key and options.event_type_filter:
        df = df[_id_text(df[options.event_type_key]).isin(options.event_type_filter)]
    key_col = options.user_key or options.session_key
    out = pd.DataFrame({"key": _id_text(df[key_col]), _ITEM: _id_text(df[options.item_key]),
                        _US: _time_us(df[options.time_key], options.time_format)})
    out = out[(out["key"] != "") & (out[_ITEM] != "") & out[_US].notna()]
    out[_US] = out[_US].astype(np.int64)
    return out.reset_index(drop=True)


def _sessionize(df: pd.DataFrame, gap_us: int) -> pd.DataFrame:
    df = df.sort_values(["key", _US, _ITEM], kind="stable").reset_index(drop=True)
    new_user = df["key"].ne(df["key"].shift())
    new_session = new_user | (df[_US].diff() > gap_us)
    k = new_session.astype(np.int64).groupby(df["key"]).cumsum() - 1
    return pd.DataFrame({_SID: df["key"] + "#" + k.astype(str), _ITEM: df[_ITEM], _US: df[_US]})


def _sort_events(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values([_SID, _US, _ITEM], kind="stable").reset_index(drop=True)


def _drop_short(df: pd.DataFrame, min_length: int) -> pd.DataFrame:
    lengths = df.groupby(_SID, sort=False)[_ITEM].transform("size")
    return df[lengths >= min_length]


def _clean(df: pd.DataFrame, options: PreprocessOptions) -> pd.DataFrame:
    if options.dedupe_consecutive:
        repeat = df[_SID].eq(df[_SID].shift()) & df[_ITEM].eq(df[_ITEM].shift())
        df = df[~repeat]
    df = _drop_short(df, options.min_session_length)
    while True:
        counts = df[_ITEM].value_counts()
        rare = counts.index[counts < options.min_item_support]
        if len(rare) == 0:
            break
        df = _drop_short(df[~df[_ITEM].isin(rare)], options.min_session_length)
        if not options.iterate_filters:
            break
    return df


def _split(df: pd.DataFrame, days: float, split_on: str):
    if df.empty:
        return df, df
    split_us = int(df[_US].max()) - PreprocessOptions.days_us(days)
    by_session = df.groupby(_SID)[_US]
    key = by_session.transform("min") if split_on == "start" else by_session.transform("max")
    later = key >= split_us
    early = df[~later & (df[_US] < split_us)]
    early = _drop_short(early, 2)
    late = df[later & df[_ITEM].isin(set(early[_ITEM]))]
    return early, _drop_short(late, 2)


_INT_TEXT = re.compile(r"-?[0-9]+")


def _int_key(sid: str):
    return int(sid) if _INT_TEXT.fullmatch(sid) else None


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Sessions by (start, session ID order), events by (time, item); adds float ``Time`` seconds."""
    starts = df.groupby(_SID)[_US].min()
    sids = pd.Series(starts.index, dtype=object)
    as_int = sids.map(_int_key)
    order = pd.DataFrame({"start": starts.to_numpy(), "not_int": as_int.isna().to_numpy(),
                          "num": as_int.where(as_int.notna(), 0).to_numpy(dtype=object), "sid": sids.to_numpy()})
    order = order.sort_values(["start", "not_int", "num", "sid"], kind="stable")
    rank = pd.Series(np.arange(len(order)), index=order["sid"].to_numpy())
    out = df.assign(_rank=df[_SID].map(rank).to_numpy())
    out = out.sort_values(["_rank", _US, _ITEM], kind="stable").drop(columns="_rank").reset_index(drop=True)
    out["Time"] = out[_US].to_numpy() / 1e6
    return out[[_SID, _ITEM, "Time", _US]]


def preprocess_pandas(events_df: pd.DataFrame, options: PreprocessOptions) -> dict[str, pd.DataFrame]:
    """Applies the rules of the pipeline to a raw event frame (columns named as in ``options``).

    Returns ``{"train", "test"}`` (plus ``"train_tr"``, ``"valid"`` with ``valid_days``) and ``"_cleaned"`` (all
    sessions after cleaning, before the split), each ordered as described in the module docstring.
    """
    missing = [c for c in options.columns.values() if c not in events_df.columns]
    if missing:
        raise ValueError(f"events_df lacks column(s) {missing}; columns: {list(events_df.columns)}")
    df = _parse(events_df, options)
    if options.user_key:
        df = _sessionize(df, options.session_gap_us)
    else:
        df = df.rename(columns={"key": _SID})
    cleaned = _clean(_sort_events(df), options)
    train, test = _split(cleaned, options.test_days, options.split_on)
    out = {"_cleaned": cleaned, "train": train, "test": test}
    if options.valid_days is not None:
        out["train_tr"], out["valid"] = _split(train, options.valid_days, options.split_on)
    return {name: _ordered(frame) for name, frame in out.items()}
