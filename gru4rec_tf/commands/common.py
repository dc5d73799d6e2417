"""Flags and helpers shared by the library's subcommands."""
import json
import os

from absl import flags
from absl import logging

from gru4rec_tf import fileio
from gru4rec_tf.commands import option_flags
from gru4rec_tf.evaluation.options import EvalOptions

from gru4rec_tf.data import contracts
from gru4rec_tf.data import event_columns

from gru4rec_tf.data import event_log


def define_data_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    fv = flag_values
    flags.DEFINE_string("session_key", event_columns.DEFAULT_SESSION_KEY, "Session ID column of the event logs.",
                        flag_values=fv)
    flags.DEFINE_string("item_key", event_columns.DEFAULT_ITEM_KEY, "Item ID column of the event logs.",
                        flag_values=fv)
    flags.DEFINE_string("time_key", event_columns.DEFAULT_TIME_KEY, "Timestamp column of the event logs.",
                        flag_values=fv)


def define_eval_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The evaluation's flags: one per field of :class:`~gru4rec_tf.evaluation.options.EvalOptions`, and
    ``--metrics_json``."""
    option_flags.define_option_flags(EvalOptions, flag_values)
    flags.DEFINE_string("metrics_json", None, "Write the metrics to this JSON file.", flag_values=flag_values)


def eval_options(fields=None):
    """The :class:`~gru4rec_tf.evaluation.options.EvalOptions` of the flags (of those named in ``fields``, the others
    at their defaults); a ValueError names the flag at fault."""
    with option_flags.flag_wording():
        return EvalOptions(**option_flags.option_values(EvalOptions, fields=fields))


def load_events(path: str):
    """Reads an event log with the column flags; bad input raises DataError naming the file."""
    f = flags.FLAGS
    keys = (f.session_key, f.item_key, f.time_key)
    if not all(keys) or len(set(keys)) != len(keys):
        raise ValueError(f"--session_key, --item_key and --time_key must name three different columns, got {keys}")
    return event_log.load_events(path, session_key=f.session_key, item_key=f.item_key, time_key=f.time_key)


def check_outputs(save_model: str = None, metrics_json: str = None) -> None:
    """Refuses output paths that would fail only at the end of a run (after training): raises ValueError."""
    config_path = os.path.join(save_model, contracts.MODEL_CONFIG_FILE) if save_model else None
    if save_model and os.path.exists(save_model) and not os.path.isfile(config_path):
        raise ValueError(f"--save_model {save_model} exists and is not a gru4rec_tf model directory "
                         f"(no {contracts.MODEL_CONFIG_FILE}); refusing to replace it")
    if metrics_json and os.path.isdir(metrics_json):
        raise ValueError(f"--metrics_json {metrics_json} is a directory, not a file")


def check_model_dir(path: str, flag: str = "--model") -> None:
    """Fails fast (before TensorFlow is imported) when ``path`` is not a model directory; load_model checks the rest."""
    config_path = os.path.join(path, contracts.MODEL_CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ValueError(f"{flag} {path} is not a gru4rec_tf model directory: {config_path} does not exist")
    if not os.access(config_path, os.R_OK):
        raise ValueError(f"{flag} {path} is not readable")


def write_json(path: str, payload: dict) -> None:
    """Writes ``payload`` to ``path`` atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with fileio.atomic_write_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logging.info("wrote %s", path)


def log_metrics(metrics: dict, cutoffs) -> None:
    for k in cutoffs:
        logging.info("Recall@%d: %.4f  MRR@%d: %.4f", k, metrics[f"recall@{k}"], k, metrics[f"mrr@{k}"])


def fail(message: str, command: str = "") -> None:
    """Ends the command with a one-line error (no traceback) and exit status 1.

    The line starts with ``gru4rec: error:``, or ``gru4rec COMMAND: error:`` when ``command`` is given.
    """
    raise SystemExit(f"gru4rec{' ' + command if command else ''}: error: {message}")
