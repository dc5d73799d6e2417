"""``gru4rec preprocess``: raw click log -> session tensors, with the Beam pipeline (any runner).

Usage::

    gru4rec preprocess --input PATH --output DIR [--delimiter C] [--session_key K --item_key K --time_key K]
        [--user_key K --session_gap_s S] [--time_format unix_s|unix_ms|iso] [--event_type_key K
        --event_type_filter view,detail] [--dedupe_consecutive] [--min_item_support N] [--min_session_length N]
        [--iterate_filters] [--test_days D] [--valid_days D] [--split_on start|end] [--max_rejected_ratio R]
        [Beam options such as --runner, --direct_num_workers]

Flags this command does not know are passed to Beam as pipeline options; a flag that Beam does not know either
(a typo) fails the command. The flags are the fields of :class:`gru4rec_tf.preprocessing.options.PreprocessOptions`
(defaults and help texts included; ``--helpfull`` lists them).
"""
from __future__ import annotations

from absl import flags
from absl import logging

from gru4rec_tf.commands import beam_command, common, option_flags
from gru4rec_tf.preprocessing.options import PreprocessOptions

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines one flag per ``PreprocessOptions`` field, with its default and help (only when called).

    Idempotent: flags already defined (for example ``--session_key`` by another command) are kept.
    """
    option_flags.define_option_flags(PreprocessOptions, flag_values)


def flags_parser(argv, flag_values: flags.FlagValues = FLAGS):
    """Parses this command's flags and returns the rest (program name first) for Beam's PipelineOptions.

    Example::

        >>> values = flags.FlagValues()
        >>> define_flags(values)
        >>> flags_parser(["gru4rec preprocess", "--input=x.csv", "--output=out", "--runner=DataflowRunner"], values)
        ['gru4rec preprocess', '--runner=DataflowRunner']
    """
    return beam_command.parse_known_flags("preprocess", argv, flag_values)


def main(argv) -> None:
    """Runs the preprocessing; ``argv[1:]`` (flags this command does not know) go to Beam."""
    if "verbosity" in FLAGS and not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)  # progress and summary unless the user chose a verbosity
    from gru4rec_tf.data.event_columns import DataError  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing import pipeline  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.preprocessing.report import format_summary  # pylint: disable=g-import-not-at-top
    beam_args = list(argv[1:])
    try:
        options = beam_command.options_from_flags(PreprocessOptions, ("input", "output"), FLAGS)
        beam_command.check_beam_args("preprocess", beam_args, FLAGS)
        if beam_args:
            logging.info("preprocess: Beam pipeline options: %s", " ".join(beam_args))
        stats = pipeline.build_and_run(options, beam_args)
    except (DataError, ValueError) as err:
        common.fail(str(err), command="preprocess")
    print(f"wrote {options.output}\n{format_summary(stats)}")
