"""``gru4rec preprocess``: raw click log -> session tensors, with the Beam pipeline (any runner).

Usage::

    gru4rec preprocess --input PATH --output DIR [--delimiter ,] [--session_key SessionId --item_key ItemId
        --time_key Time] [--user_key K --session_gap_s 3600] [--time_format unix_s|unix_ms|iso]
        [--event_type_key K --event_type_filter view,detail] [--dedupe_consecutive] [--min_item_support 5]
        [--min_session_length 2] [--iterate_filters] [--test_days D] [--valid_days D] [--split_on start|end]
        [--max_rejected_ratio 0.01] [Beam options such as --runner, --direct_num_workers]

Flags this command does not know are passed to Beam as pipeline options; a flag that Beam does not know either
(a typo) fails the command. Also runnable as ``python -m gru4rec_tf.preprocessing.cli``.
"""
from __future__ import annotations

import difflib
import sys

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the command's absl flags (only when called, so importing this module defines nothing).

    Idempotent: flags already defined (for example ``--session_key`` by another command) are kept.
    """

    def _define(kind: str, name: str, default, help_text: str, enum_values=None) -> None:
        if name in flag_values:
            return
        if kind == "enum":
            flags.DEFINE_enum(name, default, enum_values, help_text, flag_values=flag_values)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=flag_values)

    _define("string", "input", None, "Click log: file, glob or directory of CSV/TSV (with a header line) or Parquet.")
    _define("string", "output", None, "Output directory (must not exist or be empty, unless --overwrite).")
    _define("enum", "input_format", "auto", "Input format; auto = Parquet for .parquet/.pq, else delimited text.",
            enum_values=["auto", "csv", "parquet"])
    _define("string", "delimiter", None, "Text field delimiter (',', ';', 'tab'...); default: tab for .tsv/.txt, "
            "',' otherwise.")
    _define("string", "session_key", "SessionId", "Session ID column (not read with --user_key).")
    _define("string", "item_key", "ItemId", "Item ID column.")
    _define("string", "time_key", "Time", "Timestamp column.")
    _define("string", "user_key", None, "User ID column: build sessions per user, split at inactivity gaps.")
    _define("float", "session_gap_s", 3600.0, "Inactivity gap (seconds) that starts a new session (--user_key).")
    _define("string", "event_type_key", None, "Event type column (for --event_type_filter).")
    _define("list", "event_type_filter", [], "Keep only these event types (comma-separated), e.g. view,detail.")
    _define("enum", "time_format", "unix_s", "Timestamp format: unix seconds, unix milliseconds or ISO-8601.",
            enum_values=["unix_s", "unix_ms", "iso"])
    _define("boolean", "dedupe_consecutive", False, "Drop consecutive repeats of the same item in a session.")
    _define("integer", "min_item_support", 5, "Drop items with fewer events than this.")
    _define("integer", "min_session_length", 2, "Drop sessions with fewer events than this.")
    _define("boolean", "iterate_filters", False, "Repeat the item/session filters until nothing changes.")
    _define("integer", "max_filter_rounds", 20, "Filter rounds the pipeline unrolls with --iterate_filters.")
    _define("float", "test_days", 1.0, "Test = sessions starting (or ending) in the last D days.")
    _define("float", "valid_days", None, "Also split train into train_tr and valid (last D days of train).")
    _define("enum", "split_on", "start", "Assign a session to the later split by its start or its end.",
            enum_values=["start", "end"])
    _define("float", "max_rejected_ratio", 0.01, "Fail when more than this fraction of the rows is malformed.")
    _define("integer", "rows_per_shard", 200_000, "Sessions per output TFRecord file (about).")
    _define("boolean", "overwrite", False, "Replace a non-empty --output (once the new output is complete).")


def flags_parser(argv, flag_values: flags.FlagValues = FLAGS):
    """Parses this command's flags and returns the rest (program name first) for Beam's PipelineOptions.

    Example::

        >>> flags_parser(["gru4rec preprocess", "--input=x.csv", "--output=out", "--runner=DataflowRunner"])
        ['gru4rec preprocess', '--runner=DataflowRunner']
    """
    try:
        return flag_values(argv, known_only=True)
    except flags.Error as err:
        sys.stderr.write(f"gru4rec preprocess: {err}\nPass --helpfull for the flags.\n")
        sys.exit(1)


def unknown_beam_options(args) -> list:
    """Names of the ``--flags`` in ``args`` that no Beam ``PipelineOptions`` class defines (typos, mostly).

    Example::

        >>> unknown_beam_options(["--runner=DirectRunner", "--min_item_suport=3"])
        ['min_item_suport']
    """
    from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
    known = set(PipelineOptions([]).get_all_options())
    return sorted(set(PipelineOptions(list(args)).get_all_options(retain_unknown_options=True)) - known)


def _check_beam_args(args) -> None:
    unknown = unknown_beam_options(args)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(FLAGS), n=1)
            hints.append(f"--{name}" + (f" (did you mean --{close[0]}?)" if close else ""))
        raise ValueError(f"unknown flag(s) {', '.join(hints)}: neither a preprocess flag nor a Beam pipeline option")


def _options():
    from gru4rec_tf.preprocessing.options import PreprocessOptions  # pylint: disable=g-import-not-at-top
    missing = [name for name in ("input", "output") if not FLAGS[name].value]
    if missing:
        raise ValueError(f"missing required flag(s): {', '.join('--' + m for m in missing)}")
    return PreprocessOptions(
        input=FLAGS.input, output=FLAGS.output, input_format=FLAGS.input_format, delimiter=FLAGS.delimiter,
        session_key=FLAGS.session_key, item_key=FLAGS.item_key, time_key=FLAGS.time_key, user_key=FLAGS.user_key,
        session_gap_s=FLAGS.session_gap_s, event_type_key=FLAGS.event_type_key,
        event_type_filter=tuple(FLAGS.event_type_filter or ()), time_format=FLAGS.time_format,
        dedupe_consecutive=FLAGS.dedupe_consecutive, min_item_support=FLAGS.min_item_support,
        min_session_length=FLAGS.min_session_length, iterate_filters=FLAGS.iterate_filters,
        max_filter_rounds=FLAGS.max_filter_rounds, test_days=FLAGS.test_days, valid_days=FLAGS.valid_days,
        split_on=FLAGS.split_on, max_rejected_ratio=FLAGS.max_rejected_ratio, rows_per_shard=FLAGS.rows_per_shard,
        overwrite=FLAGS.overwrite,
    )


def main(argv) -> None:
    """Runs the preprocessing; ``argv[1:]`` (flags this command does not know) go to Beam."""
    if "verbosity" in FLAGS and not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)  # progress and summary unless the user chose a verbosity
    from gru4rec_tf.event_schema import DataError  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing import pipeline  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing.report import format_summary  # pylint: disable=g-import-not-at-top
    beam_args = list(argv[1:])
    try:
        options = _options()
        _check_beam_args(beam_args)
        if beam_args:
            logging.info("preprocess: Beam pipeline options: %s", " ".join(beam_args))
        stats = pipeline.build_and_run(options, beam_args)
    except (DataError, ValueError) as err:
        raise SystemExit(f"gru4rec preprocess: error: {err}") from None
    print(f"wrote {options.output}\n{format_summary(stats)}")


def run() -> None:
    """``python -m gru4rec_tf.preprocessing.cli`` entry point."""
    import gru4rec_tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    define_flags()
    app.run(main, argv=["gru4rec preprocess", *sys.argv[1:]], flags_parser=flags_parser)


if __name__ == "__main__":
    run()
