"""What the Beam commands (``gru4rec preprocess``, ``gru4rec recommend``) share: their own flags come from an options
class, and every flag they do not know goes to Beam as a pipeline option, unless Beam does not know it either.

Example::

    >>> from gru4rec_tf.preprocessing.options import PreprocessOptions
    >>> values = flags.FlagValues()
    >>> option_flags.define_option_flags(PreprocessOptions, values)
    >>> parse_known_flags("preprocess", ["gru4rec preprocess", "--input=x.csv", "--output=out",
    ...                                  "--runner=DirectRunner"], values)
    ['gru4rec preprocess', '--runner=DirectRunner']
    >>> try:
    ...     check_beam_args("preprocess", ["--runner=DirectRunner", "--min_item_suport=3"], values)
    ... except ValueError as err:
    ...     print(str(err).split(":")[0])
    unknown flag(s) --min_item_suport (did you mean --min_item_support?)
"""
import difflib
import sys

from absl import flags

from gru4rec_tf.commands import option_flags


def parse_known_flags(command: str, argv, flag_values: flags.FlagValues) -> list:
    """Parses the command's own flags and returns the rest (program name first) for Beam's PipelineOptions."""
    try:
        return flag_values(argv, known_only=True)
    except flags.Error as err:
        sys.stderr.write(f"gru4rec {command}: {err}\nPass --helpfull for the flags.\n")
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


def check_beam_args(command: str, args, flag_values: flags.FlagValues) -> None:
    """Raises ValueError naming each flag of ``args`` that is neither the command's nor Beam's, with a close match."""
    unknown = unknown_beam_options(args)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(flag_values), n=1)
            hints.append(f"--{name}" + (f" (did you mean --{close[0]}?)" if close else ""))
        raise ValueError(f"unknown flag(s) {', '.join(hints)}: neither a {command} flag nor a Beam pipeline option")


def options_from_flags(options_cls, required, flag_values: flags.FlagValues):
    """The options object of the parsed flags; a missing required flag or a bad value is a ValueError naming it."""
    missing = [name for name in required if not flag_values[name].value]
    if missing:
        raise ValueError(f"missing required flag(s): {', '.join('--' + m for m in missing)}")
    with option_flags.flag_wording(flag_values):
        return options_cls(**option_flags.option_values(options_cls, flag_values))
