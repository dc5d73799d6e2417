"""``gru4rec recommend``: batch recommendations for every session of a click log (or every item), on Beam.

Usage::

    gru4rec recommend --model SAVEDMODEL_OR_MODEL_DIR --sessions LOG --output DIR [--k 20] [--exclude_seen]
        [--format jsonl|parquet|tfrecord] [--item_to_item] [--overwrite] [--batch_size 64] [--model_version V]
        [the reading flags of gru4rec preprocess: --session_key, --item_key, --time_key, --user_key ...]
        [Beam options such as --runner, --direct_num_workers]

One record per session, ``{"session_id", "item_ids", "scores", "model_version"}``: the answer of the model's
``serving_default`` signature for that session (:mod:`gru4rec_tf.batch`). Flags this command does not know are
passed to Beam as pipeline options; a flag that Beam does not know either (a typo) fails the command. The flags are
the fields of :class:`gru4rec_tf.batch.options.RecommendOptions` (``--helpfull`` lists them).
"""
from __future__ import annotations

import difflib
import sys

from absl import flags
from absl import logging

from gru4rec_tf.batch.options import RecommendOptions
from gru4rec_tf.commands import common, option_flags

FLAGS = flags.FLAGS
COMMAND = "recommend"


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines one flag per ``RecommendOptions`` field, with its default and help (idempotent)."""
    option_flags.define_option_flags(RecommendOptions, flag_values)


def flags_parser(argv, flag_values: flags.FlagValues = FLAGS):
    """Parses this command's flags and returns the rest (program name first) for Beam's PipelineOptions.

    Example::

        >>> values = flags.FlagValues()
        >>> define_flags(values)
        >>> flags_parser(["gru4rec recommend", "--model=m", "--sessions=x.csv", "--output=out",
        ...               "--direct_num_workers=2"], values)
        ['gru4rec recommend', '--direct_num_workers=2']
    """
    try:
        return flag_values(argv, known_only=True)
    except flags.Error as err:
        sys.stderr.write(f"gru4rec {COMMAND}: {err}\nPass --helpfull for the flags.\n")
        sys.exit(1)


def _check_beam_args(args) -> None:
    from gru4rec_tf.commands.preprocess import unknown_beam_options  # pylint: disable=g-import-not-at-top
    unknown = unknown_beam_options(args)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(FLAGS), n=1)
            hints.append(f"--{name}" + (f" (did you mean --{close[0]}?)" if close else ""))
        raise ValueError(f"unknown flag(s) {', '.join(hints)}: neither a recommend flag nor a Beam pipeline option")


def _options() -> RecommendOptions:
    missing = [name for name in ("model", "output") if not FLAGS[name].value]
    if missing:
        raise ValueError(f"missing required flag(s): {', '.join('--' + m for m in missing)}")
    with option_flags.flag_wording():
        return RecommendOptions(**option_flags.option_values(RecommendOptions))


def main(argv) -> None:
    """Runs the batch recommendations; ``argv[1:]`` (flags this command does not know) go to Beam."""
    if "verbosity" in FLAGS and not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)  # progress and summary unless the user chose a verbosity
    from gru4rec_tf.batch import pipeline  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.event_columns import DataError  # pylint: disable=g-import-not-at-top
    beam_args = list(argv[1:])
    try:
        options = _options()
        _check_beam_args(beam_args)
        if beam_args:
            logging.info("recommend: Beam pipeline options: %s", " ".join(beam_args))
        summary = pipeline.build_and_run(options, beam_args)
    except (DataError, ValueError) as err:
        message = str(err)
        if message.startswith(("model ", "sessions ")):
            message = "--" + message
        common.fail(message, command=COMMAND)
    print(f"wrote {options.output}\n{pipeline.format_summary(summary)}")
