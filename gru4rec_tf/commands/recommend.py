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

from absl import flags
from absl import logging

from gru4rec_tf.batch.options import RecommendOptions
from gru4rec_tf.commands import beam_command, common, option_flags

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
    return beam_command.parse_known_flags(COMMAND, argv, flag_values)


def main(argv) -> None:
    """Runs the batch recommendations; ``argv[1:]`` (flags this command does not know) go to Beam."""
    if "verbosity" in FLAGS and not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)  # progress and summary unless the user chose a verbosity
    from gru4rec_tf.batch import pipeline  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.event_columns import DataError  # pylint: disable=g-import-not-at-top
    beam_args = list(argv[1:])
    try:
        options = beam_command.options_from_flags(RecommendOptions, ("model", "output"), FLAGS)
        beam_command.check_beam_args(COMMAND, beam_args, FLAGS)
        if beam_args:
            logging.info("recommend: Beam pipeline options: %s", " ".join(beam_args))
        summary = pipeline.build_and_run(options, beam_args)
    except (DataError, ValueError) as err:
        message = str(err)
        if message.startswith(("model ", "sessions ")):
            message = "--" + message
        common.fail(message, command=COMMAND)
    print(f"wrote {options.output}\n{pipeline.format_summary(summary)}")
