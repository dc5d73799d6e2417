"""stats.json: folding the pipeline's report triples into statistics, the end-of-run checks and the summary text.

Plain Python. The statistics are deterministic (no timings or paths of temporary files), so two runners that
compute the same result write the same stats.json.

Example::

    stats = assemble_stats(triples, options, files=["clicks.csv"])
    stats["train"]["events"], stats["test"]["sessions"], stats["input"]["rows_rejected"]
"""
from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from gru4rec_tf.data import contracts
from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.preprocessing.options import PreprocessOptions

__all__ = ["assemble_stats", "check_stats", "format_summary"]


def _iso(us) -> str:
    if us is None:
        return None
    try:
        stamp = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(microseconds=us)
    except OverflowError as err:  # a wrong time unit: 1.6e12 (milliseconds) read as seconds lands past year 9999
        raise DataError(f"an event time of {us / 1e6:.0f} s since 1970 lies beyond the year 9999: times in "
                        "milliseconds or microseconds read as seconds? Check time_format (unix_s, unix_ms, iso)"
                        ) from err
    return stamp.isoformat().replace("+00:00", "Z")


def _quantile(hist: dict[int, int], total: int, q: float) -> int:
    """Smallest length L with at least q of the sessions of length <= L."""
    seen = 0
    for length in sorted(hist):
        seen += hist[length]
        if seen >= q * total:
            return length
    return 0


_EMPTY_SUMMARY = {"events": 0, "sessions": 0, "items": 0, "hist": {}, "tmin": None, "tmax": None}


def _split_stats(summary: dict) -> dict:
    hist = {int(k): v for k, v in summary["hist"].items()}
    n = summary["sessions"]
    length = {
        "min": min(hist) if hist else 0,
        "max": max(hist) if hist else 0,
        "mean": round(summary["events"] / n, 6) if n else 0.0,
        "median": _quantile(hist, n, 0.5),
        "p90": _quantile(hist, n, 0.9),
        "p99": _quantile(hist, n, 0.99),
        "histogram": {str(k): hist[k] for k in sorted(hist)},
    }
    return {
        "events": summary["events"],
        "sessions": n,
        "items": summary["items"],
        "length": length,
        "time_min_us": summary["tmin"],
        "time_max_us": summary["tmax"],
        "time_min": _iso(summary["tmin"]),
        "time_max": _iso(summary["tmax"]),
    }


def _fold(triples: Iterable[Sequence]) -> dict[str, dict[str, object]]:
    sections: dict[str, dict[str, object]] = {}
    for section, key, value in triples:
        if section == "split_files":
            sections.setdefault(section, {}).setdefault(key, []).append(value)
        else:
            sections.setdefault(section, {})[key] = value
    return sections


def _input_stats(counters: dict, options: PreprocessOptions, files: Sequence[str]) -> dict:
    by_reason = {k.split(":", 1)[1]: v for k, v in sorted(counters.items()) if k.startswith("rows_rejected:")}
    ok, filtered = counters.get("rows_ok", 0), counters.get("rows_filtered_event_type", 0)
    rejected = sum(by_reason.values())
    rows = ok + rejected + filtered
    return {
        "files": list(files),
        "format": options.format,
        "rows": rows,
        "rows_ok": ok,
        "rows_rejected": rejected,
        "rows_filtered_event_type": filtered,
        "rejected_ratio": round(rejected / rows, 9) if rows else 0.0,
        "rejected_by_reason": by_reason,
    }


def _cleaning_stats(sec: dict, counters: dict, options: PreprocessOptions) -> dict:
    summaries = sec.get("summary", {})
    found = sec.get("cleaning_round", {})
    rounds = [found.get(str(r), [0, 0]) for r in range(1, options.filter_rounds + 1)]
    converged = rounds[-1][0] == 0
    return {
        "sessions_in": _split_stats(summaries.get("_grouped", _EMPTY_SUMMARY)),
        "events_removed_dedupe": counters.get("events_removed_dedupe", 0),
        "sessions_removed_short": counters.get("sessions_removed_short", 0),
        "rare_items_per_round": [r[0] for r in rounds],
        "rare_item_events_per_round": [r[1] for r in rounds],
        "converged": converged,
        "rounds_removing_items": next((i for i, r in enumerate(rounds) if r[0] == 0), len(rounds)),
        "sessions_out": _split_stats(summaries.get("_cleaned", _EMPTY_SUMMARY)),
    }


def assemble_stats(triples: Iterable[Sequence], options: PreprocessOptions, files: Sequence[str]) -> dict:
    """stats.json content from the report triples of :mod:`.beam_transforms`.

    Raises :class:`DataError`, naming the input, when an event time cannot be a date (a wrong time unit).
    """
    try:
        return _assemble(_fold(triples), options, files)
    except DataError as err:
        raise DataError(f"{', '.join(files) or options.input}: {err}") from err


def _assemble(sec: dict, options: PreprocessOptions, files: Sequence[str]) -> dict:
    counters = {k: int(v) for k, v in sec.get("counter", {}).items()}
    stats: dict = {
        "input": _input_stats(counters, options, files),
        "cleaning": _cleaning_stats(sec, counters, options),
    }
    summaries, split_times = sec.get("summary", {}), sec.get("split_time_us", {})
    for name in options.split_names:
        split = _split_stats(summaries.get(name, _EMPTY_SUMMARY))
        split["files"] = [{"name": f[0], "sessions": f[1], "events": f[2]}
                          for f in sorted(sec.get("split_files", {}).get(name, []))]
        split["vocabulary"] = contracts.vocab_file(name)
        if name in split_times:
            split["split_time_us"] = split_times[name]
            split["split_time"] = _iso(split_times[name])
        stats[name] = split
    vocab_sizes = sec.get("vocabulary", {})
    stats["vocabulary"] = {contracts.VOCAB_FILES[k]: int(vocab_sizes.get(k, 0))
                           for k in sorted(set(contracts.VOCABULARY_OF_SPLIT.values())) if k in options.split_names}
    stats["options"] = {k: v for k, v in options.to_json().items() if k not in ("output", "overwrite")}
    return stats


def check_stats(stats: dict, options: PreprocessOptions, rejected_examples: list[str]) -> None:
    """Fails (DataError / ValueError) on too many rejected rows, no rows, non-converged filters, empty train."""
    inp = stats["input"]
    if inp["rows"] == 0:
        raise DataError(f"{options.input}: no data rows")
    if inp["rejected_ratio"] > options.max_rejected_ratio:
        examples = "".join(f"\n  {line}" for line in rejected_examples)
        raise DataError(
            f"{options.input}: {inp['rows_rejected']} of {inp['rows']} rows are malformed "
            f"({100 * inp['rejected_ratio']:.2f}% > max_rejected_ratio {100 * options.max_rejected_ratio:g}%); "
            f"by reason: {inp['rejected_by_reason']}. First rejected rows:{examples}"
        )
    clean = stats["cleaning"]
    if options.iterate_filters and not clean["converged"]:
        raise ValueError(
            f"the item/session filters still removed events after max_filter_rounds={options.max_filter_rounds} "
            f"rounds (rare items per round: {clean['rare_items_per_round']}); raise max_filter_rounds"
        )
    if stats["train"]["sessions"] == 0:
        raise DataError(
            f"{options.input}: no training sessions left after cleaning and splitting "
            f"({clean['sessions_out']['sessions']} sessions after cleaning); loosen min_item_support / "
            "min_session_length or lower test_days"
        )


def format_summary(stats: dict) -> str:
    """A short human-readable summary of a run."""
    inp = stats["input"]
    clean = stats["cleaning"]
    lines = [
        f"rows read: {inp['rows']:,}  rejected: {inp['rows_rejected']:,} ({100 * inp['rejected_ratio']:.3f}%)  "
        f"filtered by event type: {inp['rows_filtered_event_type']:,}",
        f"sessions: {clean['sessions_in']['sessions']:,} -> {clean['sessions_out']['sessions']:,} after cleaning "
        f"(filter rounds that removed items: {clean['rounds_removing_items']}, "
        f"dedupe removed {clean['events_removed_dedupe']:,} events)",
    ]
    for name in ("train", "test", "train_tr", "valid"):
        if name in stats:
            s = stats[name]
            lines.append(f"{name:>8}: {s['events']:>12,} events {s['sessions']:>10,} sessions {s['items']:>9,} items"
                         f"  {s['time_min'] or '-'} .. {s['time_max'] or '-'}")
    return "\n".join(lines)
